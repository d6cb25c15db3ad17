"""`structconv models [PATTERN]`: list the registered model builders."""

from __future__ import annotations

import argparse

from keras_structconv.cli._common import add_subcommand


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_subcommand(subparsers, "models", run, __doc__)
    parser.add_argument("pattern", nargs="?", default="*", help="shell pattern, e.g. 'ps_*'")


def run(args: argparse.Namespace) -> int:
    from keras_structconv import models

    names = models.list_models(args.pattern)
    for name in names:
        builder = models.get_builder(name)
        summary = (builder.__doc__ or "").strip().splitlines()
        print(f"{name:<24} {builder.__module__}.{builder.__qualname__}"
              + (f": {summary[0]}" if summary else ""))
    if not names:
        print(f"no registered model matches {args.pattern!r}")
        return 1
    return 0
