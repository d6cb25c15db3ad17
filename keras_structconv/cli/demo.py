"""`structconv demo`: the zoo's operators beside the baseline; train, save and reload a model.

Load the zoo's CIFAR-10 models through the hub (from the repository's zoo/dist/ in a checkout,
else KERAS_STRUCTCONV_HUB_URL) and report their accuracy on the 500 embedded test images beside
the baseline ResNet-20's; then train a CIFAR ResNet-20 on the CIFAR-10 sample embedded in the
package, report its accuracy, save it as .keras and as a SavedModel, reload both and check that
their outputs match the trained model's.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

from keras_structconv import datasets, demo, hub
from keras_structconv.cli._common import add_subcommand, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_subcommand(subparsers, "demo", run, __doc__)
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=demo.DEMO_EPOCHS,
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
        type=positive_int,
        default=None,
        help="use at most N training and N test images (quick smoke runs)",
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=demo.DEMO_BATCH_SIZE, help="default %(default)s"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of weights, order, augmentation")
    parser.add_argument(
        "--min-accuracy",
        type=float,
        default=demo.DEMO_MIN_ACCURACY,
        help="exit with status 1 below this test accuracy (default %(default)s; chance is 0.1)",
    )
    parser.add_argument("--no-zoo", dest="zoo", action="store_false",
                        help="skip the zoo models (only train, save and reload)")


def show_zoo() -> bool:
    """Prints each zoo model's accuracy on the embedded test images beside the one its metadata
    reports; False when a model does not reproduce it (or fails to load)."""
    try:
        entries = demo.zoo_models()
    except (hub.HubError, ValueError) as error:
        print(f"Zoo: the hub manifest cannot be read: {type(error).__name__}: {error}")
        return False
    if not entries:
        print("Zoo: no zoo models are published yet (the hub manifest lists no *_cifar10 model); "
              "zoo/README.md says how they are trained and published.")
        return True
    _, (x_test, y_test) = datasets.load_embedded_cifar10()
    print(f"Zoo models through keras_structconv.hub, accuracy on the {len(y_test)} embedded "
          "test images (reported: at publication; measured: now); operators are compared with "
          "the baseline on the full test set:")
    reproduced = True
    baseline = None
    for entry in entries:
        handle = entry["handle"]
        reported = entry["metadata"].get("metrics", {}).get("embedded_test_top1")
        role = "baseline" if entry["name"] == demo.ZOO_BASELINE else "operator"
        try:
            measured = demo.zoo_accuracy(handle, x_test, y_test)
        except (hub.HubError, OSError, ValueError) as error:
            print(f"  {handle:<42} {role:<8} FAILED to load: {type(error).__name__}: {error}")
            reproduced = False
            continue
        if reported is None:
            verdict = "(no reported figure)"
        elif abs(measured - reported) <= demo.ZOO_TOLERANCE:
            verdict = f"reported {reported:.1%}: OK"
        else:
            verdict = f"reported {reported:.1%}: MISMATCH (> {demo.ZOO_TOLERANCE:g})"
            reproduced = False
        metrics = entry["metadata"].get("metrics", {})
        if role == "baseline":
            baseline = (measured, metrics)
        versus = "" if baseline is None or role == "baseline" else versus_baseline(
            measured, metrics, *baseline
        )
        print(f"  {handle:<42} {role:<8} {measured:6.1%}  {verdict}{versus}")
    return reproduced


def versus_baseline(measured, metrics, baseline_measured, baseline_metrics) -> str:
    """The comparison with the baseline: on the full test set when both models' metadata give
    it (`top1`); 500 embedded images can differ by a point or two by sampling alone."""
    top1, baseline_top1 = metrics.get("top1"), baseline_metrics.get("top1")
    if top1 is not None and baseline_top1 is not None:
        return (f"  full test set: {top1:.2%} vs the baseline's {baseline_top1:.2%} "
                f"({100 * (top1 - baseline_top1):+.2f} points)")
    return f"  {100 * (measured - baseline_measured):+.1f} points vs the baseline on these images"


def run(args: argparse.Namespace) -> int:
    """Trains, evaluates, saves, reloads and compares; returns the exit status."""
    started = time.perf_counter()
    zoo_ok = show_zoo() if args.zoo else True
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
    tolerance = demo.RELOAD_TOLERANCE
    for name, difference in differences.items():
        verdict = "OK" if difference <= tolerance else f"MISMATCH (> {tolerance:g})"
        print(f"Reloaded {name}: max abs diff of the outputs {difference:.3g}: {verdict}")
    if accuracy < args.min_accuracy:
        print(f"Test accuracy {accuracy:.1%} is below --min-accuracy {args.min_accuracy:.1%}")
    status = demo.demo_status(accuracy, args.min_accuracy, differences)
    if not zoo_ok:
        print("A zoo model did not load or reproduce its reported accuracy (see above)")
        status = 1
    print(f"Demo {'passed' if status == 0 else 'FAILED'} in {time.perf_counter() - started:.0f} s")
    return status
