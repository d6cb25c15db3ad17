"""The `structconv` command: each subcommand parses its arguments, calls the library, prints.

    structconv demo            train a ResNet-20 on the embedded CIFAR-10 sample, save, reload
    structconv doctor          the runtime facts that decide speed (oneDNN, CPU, threads, XLA)
    structconv models          the registered model builders
    structconv quadtree-stats  quadtree statistics of CamVid (QGN paper, Table 5)
    structconv aog-draw N      draw the AND-OR grammar of an AOG block
    structconv explain M I     TreeConv2D explanation maps of a saved model for an image
    structconv segment M I     a saved QGN's prediction beside its quadtree leaves
    structconv hub ...         list, pull, publish and serve zoo models
    structconv tune ...        KerasTuner search over the operators' hyper-parameters
    structconv make-sample     draw the embedded CIFAR-10 sample anew from the full dataset

Adding a subcommand: a module `keras_structconv/cli/<name>.py` with `register(subparsers)`, which
adds its parser with `_common.add_subcommand(subparsers, name, handler, help=...)` (`handler`:
`function(args) -> exit status`) and then its arguments, listed in `SUBCOMMANDS`. Only this
package parses arguments or prints; the library returns values.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["SUBCOMMANDS", "build_parser", "main"]

# Modules of keras_structconv.cli, in the order `structconv --help` lists them.
SUBCOMMANDS = (
    "demo",
    "doctor",
    "models",
    "quadtree_stats",
    "aog_draw",
    "explain",
    "segment",
    "hub",
    "tune",
    "make_sample",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="structconv",
        description="keras_structconv: structured convolution operators for Keras 3.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(f"keras_structconv.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
