"""CamVid (Brostow et al., 2008), SegNet's 11-class 360x480 version, for semantic segmentation.

Reference: G. J. Brostow, J. Fauqueur, R. Cipolla, "Semantic object classes in video: A
high-definition ground truth database", Pattern Recognition Letters, 2009; split and classes of
V. Badrinarayanan et al., "SegNet", TPAMI 2017 (train 367, val 101, test 233 frames).

Data: the JPEG-in-npz copy of `shared/data/README.md` (`train.npz`, `val.npz`, `test.npz`), from
`data_dir`, `$KERAS_STRUCTCONV_DATA/camvid` or `<repo>/../shared/data/camvid`. TensorFlow Datasets
has no CamVid, so there is no `source="tfds"` here.

Labels: classes 0..10 (`CLASS_NAMES`); the file's void class 11 becomes `IGNORE_LABEL` = 255,
so a loss can skip it (`keras.losses.SparseCategoricalCrossentropy(ignore_class=255)`).

Geometry: 360 is not a multiple of 32, so by default (`pad_to="auto"`) images are padded at the
**bottom** (and right, when needed) to the next multiple of 32, 360x480 -> 384x480; the padded
label is void (255) and the padded pixels are black (0 before standardisation). Padding only at
the bottom/right keeps pixel (0, 0) of the output on pixel (0, 0) of the frame, so predictions
are un-padded by slicing `[:360, :480]`.

Augmentation (training), applied identically to image and label: random scale in `scale_range`
(bilinear for the image, nearest neighbour for the label), pad bottom/right to at least
`crop_size` (image 0, label 255), random crop of `crop_size`, random horizontal flip.
"""

import numpy as np
import tensorflow as tf

from keras_structconv.datasets import _npz, _pipeline

CLASS_NAMES = (
    "sky", "building", "pole", "road", "pavement", "tree", "sign_symbol", "fence", "car",
    "pedestrian", "bicyclist",
)
NUM_CLASSES = 11
VOID_IN_FILE = 11
IGNORE_LABEL = 255
# ImageNet statistics, in [0, 1]: segmentation backbones are usually ImageNet-pretrained.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
SPLITS = ("train", "val", "test")
PAD_MULTIPLE = 32
INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "area")

_TITLE = "CamVid"


def load_camvid_arrays(split="train", data_dir=None):
    """CamVid split as NumPy arrays, decoded once per process.

    Args:
        split: `"train"`, `"val"` or `"test"`.
        data_dir: folder holding `train.npz`, `val.npz`, `test.npz`. Default:
            `$KERAS_STRUCTCONV_DATA/camvid`, else `<repo>/../shared/data/camvid`.

    Returns:
        `(images, labels)`: uint8 (N, 360, 480, 3) RGB and uint8 (N, 360, 480) with classes
        0..10 and void = 255. Read-only (cached for the process).

    Raises:
        FileNotFoundError: the folder or the split file does not exist.
        ValueError: the file is corrupt (names the file).
    """
    _pipeline.check_choice("split", split, SPLITS)
    folder = _npz.resolve_data_dir(
        "camvid", data_dir, tuple(f"{name}.npz" for name in SPLITS), _TITLE
    )
    images, arrays = _npz.load_jpeg_archive(
        _npz.split_file(folder, "camvid", split, _TITLE), keys=("labels", "names"),
        postprocess=_checked_camvid,
    )
    return images, arrays["labels"]


def camvid_dataset(
    images,
    labels,
    batch_size=4,
    augment=False,
    shuffle=False,
    crop_size=None,
    scale_range=(0.5, 2.0),
    pad_to="auto",
    normalize=True,
    seed=None,
    drop_remainder=False,
    image_interpolation="bilinear",
):
    """Batched `tf.data.Dataset` of `(image float32, label int32)` from segmentation arrays.

    Args:
        images: uint8 (N, H, W, C) array.
        labels: integer (N, H, W) array, classes 0..10 and void = 255 (as returned by
            `load_camvid_arrays`).
        batch_size: examples per batch.
        augment: random scale, crop and horizontal flip, identical for image and label.
        shuffle: shuffle the examples, anew each epoch.
        crop_size: `(height, width)` of the random crop when `augment` (default: (H, W)).
            Unused without `augment`.
        scale_range: `(min, max)` of the random scale factor when `augment`; None: no scaling.
        pad_to: `"auto"`: pad bottom/right to the next multiple of 32 (360x480 -> 384x480);
            `(height, width)`: pad bottom/right to that size (at least the output size);
            None: no padding. Padded labels are 255, padded pixels 0.
        normalize: `True`: `(x / 255 - MEAN) / STD` per channel (ImageNet statistics);
            `False`: float32 pixels in [0, 255].
        seed: integer for reproducible order and augmentation, or None.
        drop_remainder: drop the last incomplete batch.
        image_interpolation: resize method of the image during random scaling (`"bilinear"`,
            `"nearest"`, `"bicubic"`, `"area"`); labels always use nearest neighbour.

    Returns:
        A `tf.data.Dataset` of `(float32 (B, h, w, C), int32 (B, h, w))`.

    Example:
    >>> images, labels = load_camvid_arrays("train")  # doctest: +SKIP
    >>> train = camvid_dataset(images, labels, augment=True, shuffle=True, seed=0)  # doctest: +SKIP
    """
    images, labels = _checked_arrays(images, labels)
    _pipeline.check_positive_int("batch_size", batch_size)
    _pipeline.check_seed(seed)
    _pipeline.check_choice("image_interpolation", image_interpolation, INTERPOLATIONS)
    height, width = images.shape[1:3]
    crop_size = _checked_size("crop_size", crop_size) if crop_size is not None else (height, width)
    scale_range = _checked_scale_range(scale_range)
    output_size = crop_size if augment else (height, width)
    target_size = _padded_size(pad_to, output_size)

    shuffle_seed, augment_seed = _pipeline.derived_seeds(seed, 2)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    dataset = _pipeline.maybe_shuffle(dataset, shuffle, len(images), shuffle_seed)
    if augment:
        dataset = tf.data.Dataset.zip((dataset, _pipeline.seed_stream(augment_seed)))

        def augment_pair(pair, op_seed):
            image, label = _to_float_and_int(*pair)
            return random_scale_crop_flip(
                image, label, op_seed, crop_size, scale_range, image_interpolation
            )

        dataset = dataset.map(augment_pair, num_parallel_calls=tf.data.AUTOTUNE)
    else:
        dataset = dataset.map(_to_float_and_int, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)

    def pad_and_normalize(image, label):
        image, label = pad_bottom_right(image, label, target_size)
        if normalize:
            image = _pipeline.standardize(image, MEAN, STD)
        return image, label

    dataset = dataset.map(pad_and_normalize, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def load_camvid(split="train", data_dir=None, *, shuffle=None, **dataset_options):
    """CamVid as a batched `tf.data.Dataset` of `(image float32, label int32)`.

    TensorFlow Datasets has no CamVid: this reads the JPEG npz copy only.

    Args:
        split: `"train"`, `"val"` or `"test"`.
        data_dir: folder holding the split files (default: `$KERAS_STRUCTCONV_DATA/camvid`, else
            `<repo>/../shared/data/camvid`).
        shuffle: shuffle anew each epoch; None means `split == "train"`.
        **dataset_options: the other arguments of `camvid_dataset`, with its defaults
            (`batch_size=4`, `augment`, `crop_size`, `scale_range`, `pad_to`, `normalize`,
            `seed`, `drop_remainder`, `image_interpolation`).

    Returns:
        A `tf.data.Dataset` of `(float32 (B, h, w, 3), int32 (B, h, w))`: (384, 480) by default,
        labels 0..10 and 255 for void and padding.

    Example:
    >>> train = load_camvid("train", augment=True, crop_size=(352, 480), seed=0)  # doctest: +SKIP
    >>> val = load_camvid("val")  # doctest: +SKIP
    """
    images, labels = load_camvid_arrays(split, data_dir)
    if shuffle is None:
        shuffle = split == "train"
    return camvid_dataset(images, labels, shuffle=shuffle, **dataset_options)


def random_scale_crop_flip(
    image, label, seed, crop_size, scale_range=(0.5, 2.0), image_interpolation="bilinear"
):
    """One geometric transform, drawn from `seed`, applied to an image and its label map.

    Args:
        image: float32 (H, W, C).
        label: int32 (H, W).
        seed: int32/int64 (2,) seed of the stateless random ops.
        crop_size: `(height, width)` of the output.
        scale_range: `(min, max)` of the uniform scale factor, or None for no scaling.
        image_interpolation: resize method of the image; the label uses nearest neighbour.

    Returns:
        `(image float32 (height, width, C), label int32 (height, width))`; where the scaled
        frame is smaller than the crop, the image is 0 and the label 255.
    """
    scale_seed, top_seed, left_seed, flip_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 4)
    )
    crop_height, crop_width = crop_size
    if scale_range is not None:
        scale = tf.random.stateless_uniform([], scale_seed, scale_range[0], scale_range[1])
        size = tf.cast(tf.shape(label), tf.float32) * scale
        size = tf.maximum(tf.cast(tf.round(size), tf.int32), 1)
        image = tf.image.resize(image, size, method=image_interpolation)
        label = tf.image.resize(label[..., None], size, method="nearest")[..., 0]
    shape = tf.shape(label)
    image, label = pad_bottom_right(
        image, label, (tf.maximum(shape[0], crop_height), tf.maximum(shape[1], crop_width))
    )
    shape = tf.shape(label)
    top = tf.random.stateless_uniform(
        [], top_seed, 0, shape[0] - crop_height + 1, dtype=tf.int32
    )
    left = tf.random.stateless_uniform(
        [], left_seed, 0, shape[1] - crop_width + 1, dtype=tf.int32
    )
    image = image[top : top + crop_height, left : left + crop_width]
    label = label[top : top + crop_height, left : left + crop_width]
    flip = tf.random.stateless_uniform([], flip_seed) < 0.5
    image = tf.cond(flip, lambda: tf.reverse(image, axis=[1]), lambda: image)
    label = tf.cond(flip, lambda: tf.reverse(label, axis=[1]), lambda: label)
    image.set_shape([crop_height, crop_width, image.shape[-1]])
    label.set_shape([crop_height, crop_width])
    return image, label


def pad_bottom_right(image, label, size):
    """Pad image (..., H, W, C) with 0 and label (..., H, W) with 255 up to `size` (h, w)."""
    if size is None:
        return image, label
    height, width = tf.shape(label)[-2], tf.shape(label)[-1]
    extra = [[0, 0]] * (label.shape.rank - 2)
    paddings = extra + [[0, size[0] - height], [0, size[1] - width]]
    image = tf.pad(image, paddings + [[0, 0]])
    label = tf.pad(label, paddings, constant_values=IGNORE_LABEL)
    return image, label


def _to_float_and_int(image, label):
    return tf.cast(image, tf.float32), tf.cast(label, tf.int32)


def _padded_size(pad_to, output_size):
    if pad_to is None:
        return None
    if isinstance(pad_to, str):
        _pipeline.check_choice("pad_to", pad_to, ("auto",))
        return tuple(-(-side // PAD_MULTIPLE) * PAD_MULTIPLE for side in output_size)
    pad_to = _checked_size("pad_to", pad_to)
    if pad_to[0] < output_size[0] or pad_to[1] < output_size[1]:
        raise ValueError(
            "`pad_to` must be at least the output size (the crop size with augment=True, else "
            f"the image size). Received: pad_to={pad_to}, output size={tuple(output_size)}"
        )
    return pad_to


def _checked_size(name, size):
    if (
        not isinstance(size, tuple | list)
        or len(size) != 2
        or not all(isinstance(s, int | np.integer) and not isinstance(s, bool) and s > 0
                   for s in size)
    ):
        raise ValueError(
            f"`{name}` must be a (height, width) pair of positive integers. Received: "
            f"{name}={size!r}"
        )
    return int(size[0]), int(size[1])


def _checked_scale_range(scale_range):
    if scale_range is None:
        return None
    valid = (
        isinstance(scale_range, tuple | list)
        and len(scale_range) == 2
        and all(isinstance(s, int | float) and not isinstance(s, bool) for s in scale_range)
        and 0 < scale_range[0] <= scale_range[1]
    )
    if not valid:
        raise ValueError(
            "`scale_range` must be (min, max) with 0 < min <= max, or None. "
            f"Received: scale_range={scale_range!r}"
        )
    return float(scale_range[0]), float(scale_range[1])


def _checked_arrays(images, labels):
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim != 4 or labels.shape != images.shape[:3]:
        raise ValueError(
            "`images` must be (N, H, W, C) and `labels` (N, H, W) with the same N, H, W. "
            f"Received: images.shape={images.shape}, labels.shape={labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            "`labels` must be integers (classes, void = 255). "
            f"Received: labels.dtype={labels.dtype}"
        )
    return images, labels


def _checked_camvid(path, images, arrays):
    """Labels with void 11 -> 255, after checking shapes and the label range."""
    labels = arrays["labels"]
    if labels.shape != images.shape[:3] or labels.dtype != np.uint8 or labels.max() > VOID_IN_FILE:
        raise ValueError(
            "Corrupt dataset file: expected uint8 label maps of the images' size with values "
            f"0..{VOID_IN_FILE}. Received: images.shape={images.shape}, "
            f"labels.shape={labels.shape}, labels.dtype={labels.dtype}, path={str(path)!r}"
        )
    mapped = np.where(labels == VOID_IN_FILE, np.uint8(IGNORE_LABEL), labels)
    return images, {"labels": mapped, "names": arrays["names"]}
