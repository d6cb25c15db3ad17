"""Run options of a resumable training run: fixed when the run starts, checked on every resume.

A zoo training script stores the options that define its run (model, seed, epochs, ...) in the
run folder's `config.json` at the first session. A later session resumes with the stored options;
giving an option again is allowed only with the stored value, so a resumed run never silently
mixes two configurations. Options are named as the scripts' flags (`batch_size` is
`--batch-size`) in the error message.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any


def resolve_run_options(
    defaults: Mapping[str, Any],
    given: Mapping[str, Any],
    stored: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The options of a run: the stored ones when resuming, else the given ones over `defaults`.

    Args:
        defaults: `{name: default}` of every run option.
        given: the options of this session, `{name: value}`; None (or a missing name) means not
            given. Lists and tuples are compared as lists (as JSON stores them).
        stored: the options stored by the run's first session, or None for a new run.

    Returns:
        `{name: value}` for every name of `defaults`, plus any other stored name.

    Raises:
        ValueError: a given option differs from the stored one; the message lists every such
            option, e.g. "--seed: stored 0, given 1".

    Example:
    >>> resolve_run_options({"seed": 0, "epochs": 10}, {"seed": None, "epochs": 5})
    {'seed': 0, 'epochs': 5}
    >>> resolve_run_options({"seed": 0}, {"seed": None}, stored={"seed": 3})
    {'seed': 3}
    """
    options = dict(defaults)
    if stored is not None:
        options.update(stored)
    conflicts = []
    for name in defaults:
        value = given.get(name)
        if value is None:
            continue
        value = list(value) if isinstance(value, list | tuple) else value
        if stored is not None and stored.get(name) != value:
            flag = "--" + name.replace("_", "-")
            conflicts.append(f"{flag}: stored {stored.get(name)!r}, given {value!r}")
        options[name] = value
    if conflicts:
        raise ValueError(
            "The run folder holds a run with other options (resume without them, or use a new "
            "folder): " + "; ".join(conflicts)
        )
    return options


def lower_priority(niceness: int) -> None:
    """Raises this process's niceness to at least `niceness` (never lowers it: only root could).

    Example:
    >>> lower_priority(10)  # doctest: +SKIP
    """
    current = os.nice(0)
    if niceness > current:
        os.nice(niceness - current)
