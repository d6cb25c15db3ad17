"""CIFAR-10 (Krizhevsky, 2009) as NumPy arrays or batched `tf.data` pipelines.

Reference: A. Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", 2009.

Sources:
- `"npz"`: the JPEG-in-npz copy described in `shared/data/README.md` (`train.npz`, 50,000
  images; `test.npz`, 10,000), from `data_dir`, `$KERAS_STRUCTCONV_DATA/cifar10` or
  `<repo>/../shared/data/cifar10`. Its pixels differ slightly from the original binary release
  (JPEG coding).
- `"embedded"`: 2,000 train + 500 test images of that copy shipped inside the package
  (`data/cifar10_sample.npz`, 200 / 50 per class; regenerate with `structconv make-sample`).
  Enough for demos and smoke tests.
- `"tfds"`: TensorFlow Datasets' `"cifar10"` (the original pixels); downloads on first use, so it
  needs network access.

All three go through one pipeline (`cifar10_dataset`): optional shuffle, batching, the standard
augmentation (zero-pad 4 pixels, random 32x32 crop, random horizontal flip; He et al., 2016) and
per-channel standardisation `(x / 255 - MEAN) / STD`, all on raw pixels in that order (the padding
is black, as in torchvision's `RandomCrop(32, padding=4)`).
"""

import inspect
from pathlib import Path

import numpy as np
import tensorflow as tf

from keras_structconv.datasets import _npz, _pipeline

CLASS_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
NUM_CLASSES = 10
# Per-channel mean and standard deviation of the 50,000 original training images, in [0, 1].
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
SPLITS = ("train", "test")
SOURCES = ("npz", "embedded", "tfds")
PADDING = 4

EMBEDDED_PATH = Path(__file__).resolve().parent / "data" / "cifar10_sample.npz"

_TITLE = "CIFAR-10"
_SPLIT_SIZES = {"train": 50_000, "test": 10_000}


def load_cifar10_arrays(split="train", data_dir=None):
    """CIFAR-10 split as NumPy arrays, decoded once per process.

    Args:
        split: `"train"` or `"test"`.
        data_dir: folder holding `train.npz` and `test.npz`. Default:
            `$KERAS_STRUCTCONV_DATA/cifar10`, else `<repo>/../shared/data/cifar10`.

    Returns:
        `(x, y)`: `x` uint8 (N, 32, 32, 3) RGB, `y` int32 (N,) in 0..9, sorted by class as stored.
        `x` is read-only (cached for the process): copy it to modify it in place.

    Raises:
        FileNotFoundError: the folder or the split file does not exist.
        ValueError: the file is corrupt (names the file).

    Example:
    >>> x_train, y_train = load_cifar10_arrays("train")  # doctest: +SKIP
    """
    _pipeline.check_choice("split", split, SPLITS)
    folder = _npz.resolve_data_dir("cifar10", data_dir, ("train.npz", "test.npz"), _TITLE)
    return _load_archive_split(_npz.split_file(folder, "cifar10", split, _TITLE), prefix="")


def load_embedded_cifar10():
    """The CIFAR-10 sample shipped in the package: 2,000 train and 500 test images.

    Classes are balanced (200 / 50 images each), drawn with a fixed seed from the npz copy of
    CIFAR-10 (`structconv make-sample` regenerates the file); images are kept in their original
    order, i.e. sorted by class: shuffle before training (`cifar10_dataset(..., shuffle=True)`).

    Returns:
        `((x_train, y_train), (x_test, y_test))`, `x` uint8 (N, 32, 32, 3) read-only, `y` int32.

    Example:
    >>> (x_train, y_train), (x_test, y_test) = load_embedded_cifar10()
    >>> x_train.shape, x_test.shape
    ((2000, 32, 32, 3), (500, 32, 32, 3))
    """
    return tuple(_load_archive_split(EMBEDDED_PATH, prefix=f"{split}_") for split in SPLITS)


def embedded_sample_indices():
    """Positions of the embedded images in the full `train.npz` / `test.npz`: {split: int64}."""
    with np.load(EMBEDDED_PATH, allow_pickle=False) as archive:
        return {split: archive[f"{split}_indices"] for split in SPLITS}


def cifar10_dataset(
    images,
    labels,
    batch_size=128,
    augment=False,
    shuffle=False,
    seed=None,
    normalize=True,
    drop_remainder=False,
):
    """Batched `tf.data.Dataset` of `(image float32, label int32)` from arrays.

    The pipeline used by every CIFAR-10 source: shuffle (whole set as buffer, new order each
    epoch), batch, augment (pad 4 with zeros, random crop back to the input size, random
    horizontal flip, independently per image), standardise.

    Args:
        images: uint8 (N, H, W, C) array, e.g. from `load_cifar10_arrays` or
            `load_embedded_cifar10` (any size/channels; `MEAN`/`STD` assume CIFAR-10 RGB).
        labels: integer (N,) or (N, 1) array.
        batch_size: images per batch.
        augment: apply the random crop and flip.
        shuffle: shuffle the examples, anew each epoch.
        seed: integer for a reproducible order and augmentation, or None.
        normalize: `True`: `(x / 255 - MEAN) / STD` per channel; `False`: float32 pixels in
            [0, 255] (e.g. for a model with its own preprocessing).
        drop_remainder: drop the last incomplete batch.

    Returns:
        A `tf.data.Dataset` of `(float32 (B, H, W, C), int32 (B,))`.

    Example:
    >>> (x, y), _ = load_embedded_cifar10()
    >>> train = cifar10_dataset(x, y, batch_size=64, augment=True, shuffle=True, seed=0)
    >>> [tuple(t.shape) for t in next(iter(train))]
    [(64, 32, 32, 3), (64,)]
    """
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim != 4:
        raise ValueError(
            f"`images` must be a (N, H, W, C) array. Received: images.shape={images.shape}"
        )
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.shape != images.shape[:1]:
        raise ValueError(
            "`labels` must hold one integer per image, shape (N,) or (N, 1). "
            f"Received: labels.shape={labels.shape}, images.shape={images.shape}"
        )
    pairs = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int32)))
    return _batched_pipeline(
        pairs, len(images), batch_size=batch_size, augment=augment, shuffle=shuffle, seed=seed,
        normalize=normalize, drop_remainder=drop_remainder,
    )


def load_cifar10(split="train", data_dir=None, *, source="npz", shuffle=None, **dataset_options):
    """CIFAR-10 as a batched `tf.data.Dataset` of `(image float32, label int32)`.

    Args:
        split: `"train"` or `"test"`.
        data_dir: for `source="npz"`, the folder holding `train.npz`/`test.npz` (default:
            `$KERAS_STRUCTCONV_DATA/cifar10`, else `<repo>/../shared/data/cifar10`); for
            `source="tfds"`, TensorFlow Datasets' `data_dir` (None: its default); unused for
            `source="embedded"`.
        source: `"npz"` (the JPEG npz copy), `"embedded"` (the sample shipped in the package) or
            `"tfds"` (TensorFlow Datasets `"cifar10"`, needs network access the first time).
        shuffle: shuffle anew each epoch; None means `split == "train"`.
        **dataset_options: the other arguments of `cifar10_dataset`, with its defaults
            (`batch_size=128`, `augment`, `seed`, `normalize`, `drop_remainder`).

    Returns:
        A `tf.data.Dataset` of `(float32 (B, 32, 32, 3), int32 (B,))`.

    Example:
    >>> train = load_cifar10("train", batch_size=128, augment=True, seed=0)  # doctest: +SKIP
    >>> model.fit(train, epochs=10)  # doctest: +SKIP
    """
    _pipeline.check_choice("source", source, SOURCES)
    _pipeline.check_choice("split", split, SPLITS)
    if shuffle is None:
        shuffle = split == "train"
    if source == "tfds":
        from keras_structconv.datasets import _tfds

        options = _pipeline_options(shuffle=shuffle, **dataset_options)
        pairs = _tfds.load_cifar10_pairs(split, data_dir)
        return _batched_pipeline(pairs, _SPLIT_SIZES[split], **options)
    if source == "embedded":
        x, y = load_embedded_cifar10()[SPLITS.index(split)]
    else:
        x, y = load_cifar10_arrays(split, data_dir)
    return cifar10_dataset(x, y, shuffle=shuffle, **dataset_options)


def random_crop_and_flip(images, seed, padding=PADDING):
    """Zero-pad `padding` pixels, crop back to (H, W) at a random place, flip with p = 0.5.

    Each image of the batch gets its own crop offset and flip.

    Args:
        images: (B, H, W, C) tensor, any dtype.
        seed: int32/int64 (2,) seed of the stateless random ops.
        padding: pixels of zeros added on each side before cropping.

    Returns:
        A tensor like `images`.
    """
    seeds = tf.random.experimental.stateless_split(seed, 3)
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    padded = tf.pad(images, [[0, 0], [padding, padding], [padding, padding], [0, 0]])
    top = tf.random.stateless_uniform([batch], seeds[0], 0, 2 * padding + 1, dtype=tf.int32)
    left = tf.random.stateless_uniform([batch], seeds[1], 0, 2 * padding + 1, dtype=tf.int32)
    rows = top[:, None] + tf.range(height)[None, :]
    cols = left[:, None] + tf.range(width)[None, :]
    # Gathers with per-image indices: one vectorised crop for the whole batch.
    cropped = tf.gather(padded, rows, axis=1, batch_dims=1)
    cropped = tf.gather(cropped, cols, axis=2, batch_dims=1)
    flip = tf.random.stateless_uniform([batch], seeds[2]) < 0.5
    return tf.where(flip[:, None, None, None], tf.reverse(cropped, axis=[2]), cropped)


def _pipeline_options(**options):
    """`options` over the defaults of `cifar10_dataset`'s pipeline arguments, the one place those
    defaults are written (an unknown name raises TypeError, as in a call)."""
    bound = inspect.signature(cifar10_dataset).bind(None, None, **options)
    bound.apply_defaults()
    return {name: value for name, value in bound.arguments.items()
            if name not in ("images", "labels")}


def _batched_pipeline(pairs, num_examples, *, batch_size, augment, shuffle, seed, normalize,
                      drop_remainder):
    """Shuffle, batch, augment, standardise an unbatched dataset of (uint8 image, int32 label)."""
    _pipeline.check_positive_int("batch_size", batch_size)
    _pipeline.check_seed(seed)
    shuffle_seed, augment_seed = _pipeline.derived_seeds(seed, 2)
    dataset = _pipeline.maybe_shuffle(pairs, shuffle, num_examples, shuffle_seed)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    if augment:
        dataset = tf.data.Dataset.zip((dataset, _pipeline.seed_stream(augment_seed)))
        dataset = dataset.map(
            lambda pair, op_seed: (random_crop_and_flip(pair[0], op_seed), pair[1]),
            num_parallel_calls=tf.data.AUTOTUNE,
        )

    def to_float(images, labels):
        images = tf.cast(images, tf.float32)
        if normalize:
            images = _pipeline.standardize(images, MEAN, STD)
        return images, labels

    dataset = dataset.map(to_float, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _load_archive_split(path, prefix):
    images, arrays = _npz.load_jpeg_archive(
        path, keys=("labels",), extra_keys=("class_names",), prefix=prefix,
        postprocess=_checked_cifar10,
    )
    return images, arrays["labels"]


def _checked_cifar10(path, images, arrays):
    """int32 labels, after checking the class names, image size and label range."""
    labels, class_names = arrays["labels"], arrays["class_names"]
    if tuple(str(name) for name in class_names) != CLASS_NAMES:
        raise ValueError(
            f"Corrupt dataset file: its class names must be {CLASS_NAMES}. "
            f"Received: class_names={list(class_names)}, path={str(path)!r}"
        )
    if images.shape[1:] != (32, 32, 3) or labels.ndim != 1 or labels.max() >= NUM_CLASSES:
        raise ValueError(
            "Corrupt dataset file: expected 32x32 RGB images and labels in 0..9. Received: "
            f"images.shape={images.shape}, labels.shape={labels.shape}, "
            f"max label={labels.max()}, path={str(path)!r}"
        )
    return images, {"labels": labels.astype(np.int32), "class_names": class_names}
