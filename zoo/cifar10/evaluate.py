"""Check that every CIFAR-10 zoo model loads by handle and reproduces its reported accuracy.

    python zoo/cifar10/evaluate.py [HANDLE ...] [--data-dir D] [--source npz|embedded]
        [--tolerance 0.0005]

Without handles: every `*_cifar10` model of the manifest in effect (the packaged one, or
`KERAS_STRUCTCONV_HUB_URL`'s). Each is loaded with `keras_structconv.hub.load(handle)` (as a
user would, through the cache and its checksums), evaluated on the full CIFAR-10 test set
(10,000 images; `--source embedded`: the 500 images embedded in the package) and compared with
the accuracy its metadata reports (`top1`, or `embedded_test_top1`). Exit status 1 when a model
is off by more than --tolerance (default 0.0005, 5 images in 10,000: the same weights give the
same predictions but for near-ties that float rounding may flip between machines and oneDNN
settings) or fails to load.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

SUFFIX = "_cifar10"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("handles", nargs="*", help="default: every *_cifar10 manifest model")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder with CIFAR-10's test.npz (default: the loader's)")
    parser.add_argument("--source", choices=("npz", "embedded"), default="npz")
    parser.add_argument("--tolerance", type=float, default=0.0005)
    return parser


def zoo_handles() -> list[str]:
    from keras_structconv import hub

    return [model["handle"] for model in hub.list_models() if model["name"].endswith(SUFFIX)]


def accuracy_of(model, images, labels) -> float:
    import numpy as np

    predictions = np.argmax(model.predict(images, batch_size=500, verbose=0), axis=-1)
    return float(np.mean(predictions == labels))


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    from keras_structconv import datasets, hub

    handles = args.handles or zoo_handles()
    if not handles:
        print("No CIFAR-10 zoo model is published in the manifest yet.")
        return 0
    if args.source == "embedded":
        _, (images, labels) = datasets.load_embedded_cifar10()
        key = "embedded_test_top1"
    else:
        images, labels = datasets.load_cifar10_arrays("test", args.data_dir)
        key = "top1"
    failures = 0
    print(f"{'handle':<45} {'reported':>9} {'measured':>9}  verdict ({len(labels)} test images)")
    for handle in handles:
        try:
            reported = hub.info(handle)["metadata"]["metrics"][key]
            measured = accuracy_of(hub.load(handle, progress=False), images, labels)
        except (hub.HubError, KeyError, OSError, ValueError) as error:
            failures += 1
            print(f"{handle:<45} FAILED: {type(error).__name__}: {error}")
            continue
        ok = abs(measured - reported) <= args.tolerance
        failures += not ok
        verdict = "OK" if ok else f"MISMATCH (> {args.tolerance:g})"
        print(f"{handle:<45} {reported:>9.2%} {measured:>9.2%}  {verdict}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
