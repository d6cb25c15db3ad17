"""`structconv make-sample`: draw the embedded CIFAR-10 sample anew from the full JPEG npz copy.

Draw a class-balanced, seeded subset of CIFAR-10's train.npz and test.npz and store its original
JPEG files (no re-encoding) with their positions in the full files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from keras_structconv.cli._common import add_subcommand, positive_int
from keras_structconv.datasets import cifar10, make_sample


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_subcommand(subparsers, "make-sample", run, __doc__)
    parser.add_argument("--data-dir", default=None, help="folder holding train.npz and test.npz")
    parser.add_argument("--output", type=Path, default=cifar10.EMBEDDED_PATH,
                        help="the npz file to write (default: the package's embedded sample)")
    parser.add_argument("--seed", type=int, default=make_sample.DEFAULT_SEED)
    parser.add_argument("--train-per-class", type=positive_int,
                        default=make_sample.DEFAULT_PER_CLASS["train"])
    parser.add_argument("--test-per-class", type=positive_int,
                        default=make_sample.DEFAULT_PER_CLASS["test"])


def run(args: argparse.Namespace) -> int:
    """Writes the sample file and prints its size; returns the exit status (0)."""
    per_class = {"train": args.train_per_class, "test": args.test_per_class}
    arrays = make_sample.write_sample(args.output, args.data_dir, per_class, args.seed)
    sizes = ", ".join(f"{split} {len(arrays[f'{split}_labels'])}" for split in cifar10.SPLITS)
    print(f"wrote {args.output} ({args.output.stat().st_size / 1e6:.2f} MB; {sizes} images)")
    return 0
