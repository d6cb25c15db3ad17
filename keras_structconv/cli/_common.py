"""Pieces shared by the subcommands: adding a subcommand's parser, argparse value types."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def add_subcommand(
    subparsers: argparse._SubParsersAction,
    name: str,
    handler: Callable[[argparse.Namespace], int],
    doc: str | None = None,
    **parser_options,
) -> argparse.ArgumentParser:
    """Adds the parser of subcommand `name`, to which the caller adds its arguments.

    `structconv ... NAME` then calls `handler(args)` and exits with the status it returns.

    Args:
        subparsers: what `ArgumentParser.add_subparsers()` returned.
        name: the subcommand, e.g. `"quadtree-stats"`.
        handler: `function(args) -> exit status`.
        doc: the subcommand module's docstring, whose first line reads "`structconv NAME ...`:
            what it does.": that line after the colon is the subcommand's line in
            `structconv --help`, the whole docstring the text of `structconv NAME --help`.
        **parser_options: for `subparsers.add_parser` (they override what `doc` gives).

    Returns:
        The subcommand's `argparse.ArgumentParser`.

    Example:
    >>> def register(subparsers):  # in keras_structconv/cli/models.py
    ...     parser = add_subcommand(subparsers, "models", run, __doc__)
    ...     parser.add_argument("pattern", nargs="?", default="*")
    """
    if doc is not None:
        summary = doc.strip().splitlines()[0]
        from_doc = {"help": summary.split("`: ", 1)[-1].rstrip("."), "description": doc}
        parser_options = {**from_doc, **parser_options}
    parser = subparsers.add_parser(name, **parser_options)
    parser.set_defaults(handler=handler)
    return parser


def positive_int(text: str) -> int:
    """An integer >= 1, for `type=` of an argparse argument."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value
