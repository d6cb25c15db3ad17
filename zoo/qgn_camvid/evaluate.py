"""Evaluate a trained QGN on CamVid in the three propagation modes; print a Markdown table.

    python zoo/qgn_camvid/evaluate.py MODEL.keras [--run-dir RUN_DIR] [--split test]
        [--modes all gt pred] [--output results.md]

For every mode: pixel accuracy and mean IoU over the 11 classes with void pixels (and the
bottom padding 360 -> 384) left out, the IoU of every class, and the fraction of decoder sites
evaluated relative to "all" (how sparse the decoding was). `gt` propagates the ground-truth
composite cells (an upper bound: it uses the test labels for the quadtree structure), `pred` is
the real inference, `all` the dense decoder. With --run-dir the training time, steps and the
training command come from the run's state.json and config.json.

The model is rebuilt for the 384x480 test frames when it was trained on another crop size
(`QGN.with_input_shape`, same weights).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

MODES = ("all", "gt", "pred")


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="a QGN .keras file")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder with CamVid's npz files (default: the loader's)")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="first N images only (smoke)")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="training run folder (adds training time, steps and command)")
    parser.add_argument("--output", type=Path, default=None,
                        help="also write the Markdown to this file (and .json beside it)")
    parser.add_argument("--nice", type=int, default=10)
    return parser


def per_class_iou(confusion):
    """IoU of every class from a (K, K) confusion matrix; NaN for a class absent from both the
    labels and the predictions."""
    import numpy as np

    true_positives = np.diag(confusion)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - true_positives
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, true_positives / union, np.nan)


def site_fraction(model, dataset, mode):
    """Decoder sites evaluated in `mode` over all levels, relative to propagation "all"."""
    import numpy as np

    active = total = 0
    for images, labels in dataset:
        level_labels = model.level_labels(labels) if mode == "gt" else None
        outputs = model.decode(images, level_labels, propagation=mode)
        active += sum(int(np.asarray(index).shape[0]) for index in outputs["indices"])
        total += sum(int(np.prod(mask.shape)) for mask in outputs["masks"])
    return active / total


def evaluate(model, dataset, modes):
    """{mode: {"pixel_accuracy", "mean_iou", "class_iou", "site_fraction", "seconds"}}."""
    results = {}
    for mode in modes:
        model.propagation = mode
        started = time.perf_counter()
        metrics = model.evaluate(dataset, verbose=0, return_dict=True)
        seconds = time.perf_counter() - started
        results[mode] = {
            "pixel_accuracy": float(metrics["pixel_accuracy"]),
            "mean_iou": float(metrics["mean_iou"]),
            "loss": float(metrics["loss"]),
            "class_iou": [float(v) for v in per_class_iou(model.confusion_matrix())],
            "seconds": seconds,
            "site_fraction": 1.0 if mode == "all" else site_fraction(model, dataset, mode),
        }
    return results


def run_summary(run_dir):
    """(steps, training hours, command) of a training run folder, or None."""
    if run_dir is None:
        return None
    state = json.loads((run_dir / "state.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    options = []
    for key, value in sorted(config.items()):
        if value is None:
            continue
        flag = "--" + key.replace("_", "-")
        values = value if isinstance(value, list) else [value]
        options.append(f"{flag} {' '.join(str(v) for v in values)}")
    command = f"python zoo/qgn_camvid/train.py {run_dir.name} " + " ".join(options)
    return {
        "steps": state.get("steps_done", 0),
        "train_hours": state["train_seconds"] / 3600,
        "all_sessions_hours": state["all_sessions_seconds"] / 3600,
        "sessions": len(state["sessions"]),
        "finished": bool(state.get("finished")),
        "command": command,
    }


def markdown(results, split, images, class_names, run=None, model_path=None):
    lines = [
        f"QGN on CamVid {split} ({images} images, 11 classes, void ignored)"
        + (f", model `{model_path}`" if model_path else ""),
        "",
        "| propagation | pixel accuracy | mIoU | decoder sites vs all | eval time (s) |",
        "|---|---|---|---|---|",
    ]
    for mode, r in results.items():
        lines.append(
            f"| {mode} | {100 * r['pixel_accuracy']:.1f}% | {100 * r['mean_iou']:.1f}% | "
            f"{r['site_fraction']:.3f} | {r['seconds']:.0f} |"
        )
    lines += ["", "| class | " + " | ".join(results) + " |",
              "|---|" + "---|" * len(results)]
    for index, name in enumerate(class_names):
        cells = [
            "n/a" if r["class_iou"][index] != r["class_iou"][index]
            else f"{100 * r['class_iou'][index]:.1f}"
            for r in results.values()
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if run is not None:
        lines += [
            "",
            f"Training: {run['steps']} steps, {run['train_hours']:.2f} h of wall-clock training "
            f"({run['all_sessions_hours']:.2f} h over {run['sessions']} session(s), lost partial "
            f"epochs included){'' if run['finished'] else ', run NOT finished'}.",
            "",
            f"Command: `{run['command']}`",
        ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    current = os.nice(0)
    if args.nice > current:
        os.nice(args.nice - current)

    import keras

    from keras_structconv import datasets

    model = keras.models.load_model(args.model)
    images, labels = datasets.load_camvid_arrays(args.split, args.data_dir)
    if args.limit is not None:
        images, labels = images[: args.limit], labels[: args.limit]
    dataset = datasets.camvid_dataset(images, labels, batch_size=args.batch_size, pad_to="auto")
    frame_shape = tuple(dataset.element_spec[0].shape[1:])
    if tuple(model.image_shape) != frame_shape:
        model = model.with_input_shape(frame_shape)
    model.compile(jit_compile=False)
    results = evaluate(model, dataset.cache(), args.modes)
    text = markdown(results, args.split, len(images), datasets.CAMVID_CLASS_NAMES,
                    run_summary(args.run_dir), args.model)
    print(text)
    if args.output is not None:
        args.output.write_text(text)
        args.output.with_suffix(".json").write_text(json.dumps(
            {"split": args.split, "images": len(images), "results": results,
             "run": run_summary(args.run_dir)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
