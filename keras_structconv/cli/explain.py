"""`structconv explain MODEL IMAGE`: draw the TreeConv2D explanation maps of a .keras model."""

from __future__ import annotations

import argparse

from keras_structconv.cli._common import add_subcommand


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_subcommand(subparsers, "explain", run, __doc__)
    parser.add_argument("model", help="a .keras model holding TreeConv2D layers")
    parser.add_argument("image", help="an image file (fed as 0-255 RGB)")
    parser.add_argument("-o", "--output", default="explain.png", help="figure to write")
    parser.add_argument("--layer", default=None, help="TreeConv2D layer name (default: the last)")


def run(args: argparse.Namespace) -> int:
    from keras_structconv import viz

    path = viz.save_explanation_figure(args.model, args.image, args.output, layer=args.layer)
    print(f"wrote {path}")
    return 0
