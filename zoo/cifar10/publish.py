"""Publish finished CIFAR-10 zoo runs into the hub: one archive and manifest entry per run.

    python zoo/cifar10/publish.py RUN_DIR [RUN_DIR ...] [--out zoo/dist] [--version 1]
        [--no-package-manifest] [--allow-sample] [--license L] [--overwrite]

Each RUN_DIR is a finished `zoo/cifar10/train.py` run (results.json and `<model>_cifar10.keras`).
Its model is published as `keras_structconv/<model>_cifar10/<version>` with
`keras_structconv.hub.publish` (the archive holds the SavedModel, the `.keras` file and
metadata.json), with metrics from results.json plus the accuracy on the 500 test images embedded
in the package (`embedded_test_top1`, what the test suite checks without the dataset). With the
default --out (the repository's zoo/dist/) the entry also goes into the packaged manifest
(keras_structconv/hub/manifest.json), so that `hub.load(handle)` works from a fresh clone.

Equivalent for one run, with the hub's command (metrics as a JSON file):
`structconv hub publish RUN_DIR/resnet20_cifar10.keras --name resnet20_cifar10 --version 1
--out zoo/dist --metrics RUN_DIR/results.json --also-manifest keras_structconv/hub/manifest.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DIST = REPO / "zoo" / "dist"
PACKAGE_MANIFEST = REPO / "keras_structconv" / "hub" / "manifest.json"
DATA = "CIFAR-10 training set (Krizhevsky, 2009), 50,000 images; the npz copy of shared/data"
# Paper of each operator, by the registry name's prefix (the first match wins).
PAPERS = (
    ("ps_", "PSConv: Squeezing Feature Pyramid into One Compact Poly-Scale Convolutional Layer "
            "(Li, Yao, Chen, ECCV 2020)"),
    ("tree_", "Grammatically Recognizing Images with Tree Convolution "
              "(Wang, Wang, Wang, Liang, Lin, KDD 2020)"),
    ("tam_", "Tree-structured Attention Module for Image Classification "
             "(anonymous ICLR 2020 submission)"),
    ("aognet", "AOGNets: Compositional Grammatical Architectures for Deep Learning "
               "(Li, Song, Wu, CVPR 2019)"),
    ("", "Deep Residual Learning for Image Recognition (He, Zhang, Ren, Sun, CVPR 2016)"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR")
    parser.add_argument("--out", type=Path, default=DEFAULT_DIST,
                        help="hub folder (default: the repository's zoo/dist)")
    parser.add_argument("--version", type=int, default=1, help="version of every archive (1)")
    parser.add_argument("--no-package-manifest", dest="package_manifest", action="store_false",
                        help="do not add the entries to keras_structconv/hub/manifest.json "
                             "(never added when --out is not the default)")
    parser.add_argument("--allow-sample", action="store_true",
                        help="also publish runs trained on the embedded sample (smoke tests)")
    parser.add_argument("--license", default=None,
                        help="licence of the weights, stored in the metadata (default: none)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace archives of the same name and version")
    return parser


def paper_of(model_name: str) -> str:
    return next(paper for prefix, paper in PAPERS if model_name.startswith(prefix))


def read_run(run_dir: Path, allow_sample: bool) -> dict:
    """results.json of a finished run, checked."""
    path = run_dir / "results.json"
    if not path.is_file():
        raise SystemExit(f"{run_dir} is not a finished run (no results.json); finish it with "
                         "zoo/cifar10/train.py first")
    results = json.loads(path.read_text())
    if results.get("source") != "npz" and not allow_sample:
        raise SystemExit(f"{run_dir} was trained on {results.get('dataset')!r}, not the full "
                         "CIFAR-10: pass --allow-sample to publish it anyway")
    return results


def embedded_accuracy(model_path: Path) -> float:
    """Accuracy of the saved model on the 500 test images embedded in the package."""
    import numpy as np

    from keras_structconv import datasets, export

    _, (x_test, y_test) = datasets.load_embedded_cifar10()
    model = export.load_model(model_path, compile=False)
    predictions = np.argmax(model.predict(x_test, batch_size=250, verbose=0), axis=-1)
    return float(np.mean(predictions == y_test))


def metrics_of(results: dict, model_path: Path) -> dict:
    return {
        "top1": results["test_accuracy"],
        "top1_dataset": f"{results['dataset']} test set, {results['test_images']} images",
        "embedded_test_top1": embedded_accuracy(model_path),
        "seed": results["seed"],
        "epochs": results["epochs"],
        "training_seconds": results["training_seconds"],
        "training_cpu_seconds": results["training_cpu_seconds"],
        "train_images_per_second": results["train_images_per_second"],
        "inference_images_per_second": results["inference_images_per_second"],
        "machine": "2 CPU cores" if results["environment"]["cpu_count"] == 2
        else f"{results['environment']['cpu_count']} CPU cores",
    }


def publish_run(run_dir: Path, args: argparse.Namespace):
    from keras_structconv import datasets, hub

    results = read_run(run_dir, args.allow_sample)
    model_path = run_dir / results["model_file"]
    name = f"{results['model']}_cifar10"
    entry = hub.publish(
        model_path,
        name=name,
        version=args.version,
        out_dir=args.out,
        metrics=metrics_of(results, model_path),
        labels=list(datasets.CIFAR10_CLASS_NAMES),
        license=args.license,
        paper=paper_of(results["model"]),
        description=f"{results['model']} trained on CIFAR-10 with the zoo's recipe "
                    "(zoo/cifar10/README.md); outputs class probabilities.",
        training={"command": " && ".join(results["commands"]), "data": DATA,
                  "recipe": results["recipe"], "sessions": results["sessions"]},
        overwrite=args.overwrite,
    )
    if args.package_manifest and args.out.resolve() == DEFAULT_DIST.resolve():
        hub.manifest.write_entry(PACKAGE_MANIFEST, entry)
    return entry


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    names = [read_run(run, args.allow_sample)["model"] for run in args.run_dirs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise SystemExit(f"Several runs of {', '.join(duplicates)}: publish one run per model "
                         "and version (the seed-0 run), or give them different --version")
    for run_dir in args.run_dirs:
        entry = publish_run(run_dir, args)
        top1 = entry.metadata["metrics"]["top1"]
        print(f"published {entry.handle}: {args.out / entry.url} ({entry.size / 1e6:.1f} MB), "
              f"top-1 {top1:.2%}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
