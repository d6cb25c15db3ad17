"""`structconv segment MODEL IMAGE`: a saved QGN's prediction beside its quadtree leaves.

Run a saved QGN (keras_structconv.models.QGN, .keras) on an image file and save a figure: the
image, the colour-coded prediction, and the level of the quadtree leaf each pixel was predicted
at, with the leaf cells outlined.
"""

from __future__ import annotations

import argparse

import numpy as np

from keras_structconv.cli._common import add_subcommand


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_subcommand(subparsers, "segment", run, __doc__)
    parser.add_argument("model", help="a QGN .keras file")
    parser.add_argument("image", help="an image file (padded to the model's input size)")
    parser.add_argument("-o", "--output", default="segment.png", help="figure to write")
    parser.add_argument("--propagation", choices=("pred", "all"), default="pred",
                        help="decoder propagation scheme (default %(default)s: inference)")


def run(args: argparse.Namespace) -> int:
    from keras_structconv import viz

    path, prediction = viz.save_segmentation_figure(
        args.model, args.image, args.output, propagation=args.propagation
    )
    levels = prediction["levels"]
    shares = ", ".join(
        f"level {level}: {np.mean(levels == level):.1%}" for level in np.unique(levels)
    )
    print(f"pixels per leaf level: {shares}")
    print(f"wrote {path}")
    return 0
