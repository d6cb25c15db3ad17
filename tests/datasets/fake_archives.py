"""Small JPEG-in-npz archives written with PIL, and an independent PIL decoder, for the tests."""

import io

import numpy as np
from PIL import Image


def encode_jpegs(images, quality=95):
    """(jpeg_bytes uint8, jpeg_offsets int64) of uint8 (N, H, W, 3) images, encoded by PIL."""
    files = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(np.asarray(image, np.uint8)).save(buffer, format="JPEG", quality=quality)
        files.append(buffer.getvalue())
    offsets = np.concatenate([[0], np.cumsum([len(f) for f in files])]).astype(np.int64)
    return np.frombuffer(b"".join(files), np.uint8), offsets


def pil_decode(jpeg_bytes, offsets, indices=None):
    """uint8 (n, H, W, 3): images `indices` (default all) decoded by PIL, one by one."""
    indices = range(len(offsets) - 1) if indices is None else indices
    raw = np.asarray(jpeg_bytes).tobytes()
    return np.stack(
        [
            np.asarray(Image.open(io.BytesIO(raw[offsets[i] : offsets[i + 1]])).convert("RGB"))
            for i in indices
        ]
    )


def random_images(count, height=32, width=32, seed=0):
    """Smooth random RGB images (JPEG keeps them recognisable)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(count, height // 4 + 1, width // 4 + 1, 3))
    images = np.repeat(np.repeat(coarse, 4, axis=1), 4, axis=2)[:, :height, :width]
    return images.astype(np.uint8)


def write_cifar_like(path, count_per_class=3, seed=0, class_names=None, **overrides):
    """A CIFAR-10-format npz with `count_per_class` 32x32 images per class; returns its arrays."""
    labels = np.repeat(np.arange(10, dtype=np.uint8), count_per_class)
    jpeg_bytes, offsets = encode_jpegs(random_images(len(labels), seed=seed))
    if class_names is None:
        from keras_structconv.datasets.cifar10 import CLASS_NAMES

        class_names = CLASS_NAMES
    arrays = {
        "jpeg_bytes": jpeg_bytes,
        "jpeg_offsets": offsets,
        "labels": labels,
        "class_names": np.array(class_names),
    }
    arrays.update(overrides)
    arrays = {key: value for key, value in arrays.items() if value is not None}
    np.savez(path, **arrays)
    return arrays


def write_camvid_like(path, labels, seed=0):
    """A CamVid-format npz with the given uint8 (N, H, W) label maps; returns its arrays."""
    labels = np.asarray(labels, np.uint8)
    count, height, width = labels.shape
    jpeg_bytes, offsets = encode_jpegs(random_images(count, height, width, seed=seed))
    arrays = {
        "jpeg_bytes": jpeg_bytes,
        "jpeg_offsets": offsets,
        "labels": labels,
        "names": np.array([f"frame_{i:03d}.png" for i in range(count)]),
    }
    np.savez(path, **arrays)
    return arrays


def write_small_cifar(folder):
    """Fake full CIFAR-10 files in a new `folder`: 4 train and 3 test images per class.

    Returns {split: the arrays written}."""
    folder.mkdir()
    return {
        "train": write_cifar_like(folder / "train.npz", count_per_class=4, seed=1),
        "test": write_cifar_like(folder / "test.npz", count_per_class=3, seed=2),
    }
