"""`structconv explain MODEL IMAGE`: the TreeConv2D explanation maps of a saved model."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="draw the TreeConv2D explanation maps of a .keras model for an image",
    )
    parser.add_argument("model", help="a .keras model holding TreeConv2D layers")
    parser.add_argument("image", help="an image file (fed as 0-255 RGB)")
    parser.add_argument("-o", "--output", default="explain.png", help="figure to write")
    parser.add_argument("--layer", default=None, help="TreeConv2D layer name (default: the last)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from keras_structconv import viz

    path = viz.save_explanation_figure(args.model, args.image, args.output, layer=args.layer)
    print(f"wrote {path}")
    return 0
