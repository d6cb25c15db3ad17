"""The embedded CIFAR-10 sample `keras_structconv/datasets/data/cifar10_sample.npz`, drawn anew.

Draws a class-balanced subset (200 train + 50 test images per class by default, seed 0) of the
JPEG npz copy of CIFAR-10 and stores the original JPEG files, unchanged (no re-encoding: the
decoded pixels equal the full dataset's), in the same format with `train_` / `test_` key
prefixes (`train_jpeg_bytes`, `train_jpeg_offsets`, `train_labels`, `train_class_names`, ...),
plus `{split}_indices`: the positions of the images in the full split files.

Command line (from the repository root):

    structconv make-sample [--data-dir ../shared/data/cifar10]
        [--output keras_structconv/datasets/data/cifar10_sample.npz] [--seed 0]
"""

from pathlib import Path

import numpy as np

from keras_structconv.datasets import _npz, cifar10

DEFAULT_PER_CLASS = {"train": 200, "test": 50}
DEFAULT_SEED = 0


def balanced_indices(labels, per_class, seed):
    """Sorted positions of `per_class` images of every class, drawn without replacement."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    chosen = []
    for label in range(cifar10.NUM_CLASSES):
        candidates = np.flatnonzero(labels == label)
        if len(candidates) < per_class:
            raise ValueError(
                f"`per_class` exceeds the {len(candidates)} images of class {label}. "
                f"Received: per_class={per_class}"
            )
        chosen.append(rng.choice(candidates, size=per_class, replace=False))
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def build_sample(data_dir=None, per_class=None, seed=DEFAULT_SEED):
    """The arrays of the sample file, {key: array}, from the full CIFAR-10 npz files."""
    per_class = per_class or DEFAULT_PER_CLASS
    folder = _npz.resolve_data_dir("cifar10", data_dir, ("train.npz", "test.npz"), "CIFAR-10")
    arrays = {}
    for split in cifar10.SPLITS:
        path = _npz.split_file(folder, "cifar10", split, "CIFAR-10")
        jpeg_bytes, offsets, loaded = _npz.read_jpeg_archive(
            path, keys=("labels",), extra_keys=("class_names",)
        )
        indices = balanced_indices(loaded["labels"], per_class[split], seed)
        files = [jpeg_bytes[offsets[i] : offsets[i + 1]] for i in indices]
        arrays[f"{split}_jpeg_bytes"] = np.concatenate(files)
        arrays[f"{split}_jpeg_offsets"] = np.concatenate(
            [[0], np.cumsum([len(f) for f in files])]
        ).astype(np.int64)
        arrays[f"{split}_labels"] = loaded["labels"][indices]
        arrays[f"{split}_class_names"] = loaded["class_names"]
        arrays[f"{split}_indices"] = indices
    return arrays


def write_sample(output=cifar10.EMBEDDED_PATH, data_dir=None, per_class=None, seed=DEFAULT_SEED):
    """Draws the sample (`build_sample`) and writes it to `output` as a compressed npz file.

    Args:
        output: the file to write (default: the package's embedded sample); its folder is
            created when missing.
        data_dir: folder holding the full `train.npz` and `test.npz` (default:
            `$KERAS_STRUCTCONV_DATA/cifar10`, else `<repo>/../shared/data/cifar10`).
        per_class: `{"train": n, "test": m}` images per class (default 200 and 50).
        seed: seed of the draw.

    Returns:
        The arrays written, `{key: array}`.

    Example:
    >>> arrays = write_sample("sample.npz", per_class={"train": 2, "test": 1})  # doctest: +SKIP
    >>> len(arrays["train_labels"]), len(arrays["test_labels"])  # doctest: +SKIP
    (20, 10)
    """
    arrays = build_sample(data_dir, per_class, seed)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(output, **arrays)
    return arrays
