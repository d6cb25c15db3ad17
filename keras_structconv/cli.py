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

from keras_structconv import aog, datasets, models
from keras_structconv.quadtree.stats import add_quadtree_stats_parser

DEMO_EPOCHS = 10
DEMO_BATCH_SIZE = 32
DEMO_PEAK_LR = 0.1
DEMO_MIN_ACCURACY = 0.35
# Largest |difference| of the softmax outputs tolerated between the trained model and a reload.
RELOAD_TOLERANCE = 1e-4


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
    (x_train, y_train), (x_test, y_test) = _demo_data(args.limit, args.seed)
    output_dir = args.output_dir or Path(tempfile.mkdtemp(prefix="structconv-demo-"))
    output_dir.mkdir(parents=True, exist_ok=True)
    print(
        f"Training ResNet-20 on {len(x_train)} embedded CIFAR-10 images for {args.epochs} "
        f"epoch(s), batch {args.batch_size}, seed {args.seed}; output: {output_dir}"
    )
    model = train_demo_model(x_train, y_train, args.epochs, args.batch_size, args.seed)
    test_images = _standardized(x_test)
    probabilities = model.predict(test_images, batch_size=250, verbose=0)
    accuracy = float(np.mean(np.argmax(probabilities, axis=-1) == y_test))
    print(f"Test accuracy on {len(y_test)} embedded test images: {accuracy:.1%} (chance: 10%)")

    keras_path, export_path = save_demo_model(model, output_dir)
    print(f"Saved {keras_path} and the SavedModel {export_path}")
    differences = reload_differences(probabilities, test_images, keras_path, export_path)
    for name, difference in differences.items():
        verdict = "OK" if difference <= RELOAD_TOLERANCE else f"MISMATCH (> {RELOAD_TOLERANCE:g})"
        print(f"Reloaded {name}: max abs diff of the outputs {difference:.3g}: {verdict}")
    if accuracy < args.min_accuracy:
        print(f"Test accuracy {accuracy:.1%} is below --min-accuracy {args.min_accuracy:.1%}")
    status = demo_status(accuracy, args.min_accuracy, differences)
    print(f"Demo {'passed' if status == 0 else 'FAILED'} in {time.perf_counter() - started:.0f} s")
    return status


def train_demo_model(images, labels, epochs, batch_size, seed):
    """ResNet-20 trained with the standard CIFAR augmentation (pad-4 crop, flip), progress bar."""
    train = datasets.cifar10_dataset(
        images, labels, batch_size=batch_size, augment=True, shuffle=True, seed=seed
    )
    model = models.ResNet20()
    model.compile(
        optimizer=demo_optimizer(epochs * len(train)),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )
    # The dataset reshuffles itself each epoch (seeded); fit must not try to.
    model.fit(train, epochs=epochs, shuffle=False, verbose=1)
    return model


def demo_status(accuracy, min_accuracy, differences):
    """Exit status: 0 when the accuracy reaches `min_accuracy` and every reload matches, else 1."""
    reloads_match = all(d <= RELOAD_TOLERANCE for d in differences.values())
    return 0 if accuracy >= min_accuracy and reloads_match else 1


def _demo_data(limit, seed):
    """The embedded sample; with `limit`, a seeded random subset of each split."""
    splits = datasets.load_embedded_cifar10()
    if limit is None:
        return splits
    rng = np.random.default_rng(seed)
    subsets = []
    for x, y in splits:
        keep = np.sort(rng.permutation(len(x))[:limit])
        subsets.append((x[keep], y[keep]))
    return tuple(subsets)


def _standardized(images):
    """The test images through the same standardisation as training (no augmentation)."""
    dataset = datasets.cifar10_dataset(images, np.zeros(len(images)), batch_size=len(images))
    return np.concatenate([x.numpy() for x, _ in dataset])


def demo_optimizer(total_steps):
    """SGD (Nesterov momentum 0.9), linear warm-up over the first 10% of steps, cosine decay to 0.

    The warm-up keeps the first steps from diverging at a peak rate high enough for so few epochs.
    """
    warmup = max(1, total_steps // 10)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, max(1, total_steps - warmup), warmup_target=DEMO_PEAK_LR, warmup_steps=warmup
    )
    return keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True, weight_decay=5e-4)


def save_demo_model(model, output_dir):
    """Writes `resnet20_demo.keras` and the SavedModel folder `resnet20_demo_savedmodel`."""
    keras_path = Path(output_dir) / "resnet20_demo.keras"
    export_path = Path(output_dir) / "resnet20_demo_savedmodel"
    model.save(keras_path)
    model.export(str(export_path), verbose=False)
    return keras_path, export_path


def reload_differences(expected, images, keras_path, export_path):
    """Max |expected - reloaded output| for the `.keras` file and the SavedModel, on `images`."""
    reloaded = keras.models.load_model(keras_path)
    from_keras = reloaded.predict(images, batch_size=250, verbose=0)
    serving = keras.layers.TFSMLayer(str(export_path), call_endpoint="serve", dtype="float32")
    from_savedmodel = np.concatenate(
        [np.asarray(serving(images[i : i + 250])) for i in range(0, len(images), 250)]
    )
    return {
        ".keras (keras.models.load_model)": float(np.max(np.abs(from_keras - expected))),
        "SavedModel (keras.layers.TFSMLayer)": float(np.max(np.abs(from_savedmodel - expected))),
    }


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
