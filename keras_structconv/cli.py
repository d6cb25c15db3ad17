"""The `structconv` command line: one function per subcommand, each parses, calls, prints.

    structconv demo [--epochs N] [--output-dir DIR]

`demo` trains a CIFAR ResNet-20 (He et al., 2016) on the 2,000-image CIFAR-10 sample embedded in the
package, reports its accuracy on the 500 embedded test images, saves it as `.keras` and as a
SavedModel (`model.export`), reloads both and checks that they predict what the trained model
predicts. It exits with status 1 when a reload differs or the accuracy is below `--min-accuracy`.

Adding a subcommand: write `_add_<name>_parser(subparsers)` that registers the arguments and
`set_defaults(handler=<function(args) -> exit status>)`, and list it in `SUBCOMMANDS`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

from keras_structconv import aog, demo
from keras_structconv.demo import (
    DEMO_BATCH_SIZE,
    DEMO_EPOCHS,
    DEMO_MIN_ACCURACY,
    RELOAD_TOLERANCE,
)
from keras_structconv.quadtree.stats import add_quadtree_stats_parser

# --------------------------------------------------------------------------------------------------
# demo


def _add_demo_parser(subparsers):
    parser = subparsers.add_parser(
        "demo",
        help="train a ResNet-20 on the embedded CIFAR-10 sample, save, reload and check it",
        description=(
            "Train a CIFAR ResNet-20 on the CIFAR-10 sample embedded in the package, report its "
            "accuracy on the 500 embedded test images, save it as .keras and as a SavedModel, "
            "reload both and check that their outputs match the trained model's."
        ),
    )
    parser.add_argument(
        "--epochs",
        type=_positive_int,
        default=DEMO_EPOCHS,
        help="training epochs over the 2,000 images (default %(default)s)",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help="where the .keras file and the SavedModel go (default: a new temporary folder)",
    )
    parser.add_argument(
        "--limit",
        type=_positive_int,
        default=None,
        help="use at most N training and N test images (quick smoke runs)",
    )
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=DEMO_BATCH_SIZE,
        help="default %(default)s",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of weights, order, augmentation")
    parser.add_argument(
        "--min-accuracy",
        type=float,
        default=DEMO_MIN_ACCURACY,
        help="exit with status 1 below this test accuracy (default %(default)s; chance is 0.1)",
    )
    parser.set_defaults(handler=run_demo)


def run_demo(args) -> int:
    """Trains, evaluates, saves, reloads and compares; returns the exit status."""
    started = time.perf_counter()
    keras.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = demo.demo_data(args.limit, args.seed)
    output_dir = args.output_dir or Path(tempfile.mkdtemp(prefix="structconv-demo-"))
    output_dir.mkdir(parents=True, exist_ok=True)
    print(
        f"Training ResNet-20 on {len(x_train)} embedded CIFAR-10 images for {args.epochs} "
        f"epoch(s), batch {args.batch_size}, seed {args.seed}; output: {output_dir}"
    )
    model = demo.train_demo_model(x_train, y_train, args.epochs, args.batch_size, args.seed)
    test_images = demo.standardized(x_test)
    probabilities = model.predict(test_images, batch_size=250, verbose=0)
    accuracy = float(np.mean(np.argmax(probabilities, axis=-1) == y_test))
    print(f"Test accuracy on {len(y_test)} embedded test images: {accuracy:.1%} (chance: 10%)")

    keras_path, export_path = demo.save_demo_model(model, output_dir)
    print(f"Saved {keras_path} and the SavedModel {export_path}")
    differences = demo.reload_differences(probabilities, test_images, keras_path, export_path)
    for name, difference in differences.items():
        verdict = "OK" if difference <= RELOAD_TOLERANCE else f"MISMATCH (> {RELOAD_TOLERANCE:g})"
        print(f"Reloaded {name}: max abs diff of the outputs {difference:.3g}: {verdict}")
    if accuracy < args.min_accuracy:
        print(f"Test accuracy {accuracy:.1%} is below --min-accuracy {args.min_accuracy:.1%}")
    status = demo.demo_status(accuracy, args.min_accuracy, differences)
    print(f"Demo {'passed' if status == 0 else 'FAILED'} in {time.perf_counter() - started:.0f} s")
    return status


# --------------------------------------------------------------------------------------------------
# aog-draw


def _add_aog_draw_parser(subparsers):
    parser = subparsers.add_parser(
        "aog-draw", help="draw the AND-OR grammar of an AOG building block"
    )
    parser.add_argument("num_primitives", type=_positive_int, help="N, the number of primitives")
    parser.add_argument("--prune", type=int, choices=(0, 1, 2), default=None,
                        help="syntactic-symmetry pruning mode (1: left <= right, 2: left >= right)")
    parser.add_argument("--no-lateral", dest="lateral", action="store_false",
                        help="leave out the lateral connections")
    parser.add_argument("-o", "--output", default="aog.png", help="image file to write")
    parser.set_defaults(handler=run_aog_draw)


def run_aog_draw(args) -> int:
    path, grammar = aog.draw_main(
        args.num_primitives, prune=args.prune, lateral=args.lateral, output=args.output
    )
    print(repr(grammar))
    print(f"wrote {path}")
    return 0


# --------------------------------------------------------------------------------------------------
# segment


def _add_segment_parser(subparsers):
    parser = subparsers.add_parser(
        "segment",
        help="segment an image with a saved QGN; draw the prediction beside the quadtree leaves",
        description=(
            "Run a saved QGN (keras_structconv.models.QGN, .keras) on an image file and save a "
            "figure: the image, the colour-coded prediction, and the level of the quadtree leaf "
            "each pixel was predicted at, with the leaf cells outlined."
        ),
    )
    parser.add_argument("model", help="a QGN .keras file")
    parser.add_argument("image", help="an image file (padded to the model's input size)")
    parser.add_argument("-o", "--output", default="segment.png", help="figure to write")
    parser.add_argument("--propagation", choices=("pred", "all"), default="pred",
                        help="decoder propagation scheme (default %(default)s: inference)")
    parser.set_defaults(handler=run_segment)


def run_segment(args) -> int:
    from keras_structconv import viz

    path, prediction = viz.segment_main(
        args.model, args.image, args.output, propagation=args.propagation
    )
    levels = prediction["levels"]
    shares = ", ".join(
        f"level {level}: {np.mean(levels == level):.1%}" for level in np.unique(levels)
    )
    print(f"pixels per leaf level: {shares}")
    print(f"wrote {path}")
    return 0


# --------------------------------------------------------------------------------------------------
# explain


def _add_explain_parser(subparsers):
    parser = subparsers.add_parser(
        "explain",
        help="draw the TreeConv2D explanation maps of a .keras model for an image",
    )
    parser.add_argument("model", help="a .keras model holding TreeConv2D layers")
    parser.add_argument("image", help="an image file (fed as 0-255 RGB)")
    parser.add_argument("-o", "--output", default="explain.png", help="figure to write")
    parser.add_argument("--layer", default=None, help="TreeConv2D layer name (default: the last)")
    parser.set_defaults(handler=run_explain)


def run_explain(args) -> int:
    from keras_structconv import viz

    print(f"wrote {viz.explain_main(args.model, args.image, args.output, layer=args.layer)}")
    return 0


# --------------------------------------------------------------------------------------------------
# Parser and entry point

SUBCOMMANDS = (
    _add_demo_parser,
    add_quadtree_stats_parser,
    _add_aog_draw_parser,
    _add_explain_parser,
    _add_segment_parser,
)


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="structconv",
        description="keras_structconv: structured convolution operators for Keras 3.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add_parser in SUBCOMMANDS:
        add_parser(subparsers)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
