"""The data of a search: a fixed train subset and a validation split held out of the train set.

The test split is never searched on: it is kept for the final evaluation of the best model.
The split is a seeded permutation of the train set: its first `val_size` images are the
validation split, the next `train_subset` the training images, the same in every process of a
distributed search and in every resumed run.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from keras_structconv.datasets import load_cifar10_arrays, load_embedded_cifar10

__all__ = ["DATASETS", "SearchData", "load_search_data"]

DATASETS = ("cifar10", "sample")


@dataclasses.dataclass(frozen=True)
class SearchData:
    """uint8 images and int32 labels of the train subset, the validation and the test split."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    description: str


def load_search_data(
    data: str = "cifar10",
    *,
    data_dir: str | None = None,
    train_subset: int | None = None,
    val_size: int | None = None,
    seed: int = 0,
) -> SearchData:
    """Loads CIFAR-10 (or the embedded sample) and splits its train set.

    Args:
        data: "cifar10" (the npz copy, see `keras_structconv.datasets`) or "sample" (the
            2,000 / 500 images embedded in the package).
        data_dir: the CIFAR-10 folder (default: `$KERAS_STRUCTCONV_DATA/cifar10`, ...).
        train_subset: number of training images (default: all but the validation ones).
        val_size: validation images held out of the train set (default 5,000 for CIFAR-10,
            500 for the sample).
        seed: seed of the permutation choosing both.

    Returns:
        A `SearchData`.

    Example:

    >>> data = load_search_data("sample", train_subset=256, val_size=128)
    >>> data.x_train.shape, data.x_val.shape, data.x_test.shape
    ((256, 32, 32, 3), (128, 32, 32, 3), (500, 32, 32, 3))
    """
    if data not in DATASETS:
        raise ValueError(f"`data` must be one of {', '.join(DATASETS)}. Received: data={data!r}")
    if data == "sample":
        (x, y), (x_test, y_test) = load_embedded_cifar10()
        name = "the embedded CIFAR-10 sample (2,000 train / 500 test images)"
    else:
        x, y = load_cifar10_arrays("train", data_dir)
        x_test, y_test = load_cifar10_arrays("test", data_dir)
        name = "CIFAR-10 (50,000 train / 10,000 test images)"
    val_size = (500 if data == "sample" else 5000) if val_size is None else val_size
    available = len(x) - val_size
    if not 0 < val_size < len(x):
        raise ValueError(f"`val_size` must be in 1..{len(x) - 1}. Received: val_size={val_size}")
    if train_subset is not None and not 0 < train_subset <= available:
        raise ValueError(
            f"`train_subset` must be in 1..{available} ({len(x)} train images, {val_size} held "
            f"out for validation). Received: train_subset={train_subset}"
        )
    order = np.random.default_rng(seed).permutation(len(x))
    val = order[:val_size]
    train = order[val_size:][:train_subset]
    description = (
        f"{name}: {len(train):,} training images and {len(val):,} validation images held out "
        f"of the train split (permutation seed {seed}); the {len(x_test):,} test images only "
        "evaluate the best model"
    )
    return SearchData(x[train], y[train], x[val], y[val], x_test, y_test, description)
