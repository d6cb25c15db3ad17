"""CIFAR-10 loaders: decoded pixels, labels, standardisation, pad-4 crop + flip, seeds."""

import numpy as np
import pytest

from keras_structconv.datasets import cifar10
from keras_structconv.datasets.cifar10 import (
    cifar10_dataset,
    load_cifar10,
    load_cifar10_arrays,
    load_embedded_cifar10,
)
from tests.datasets.fake_archives import pil_decode


def collect(dataset):
    """(images, labels) of a whole dataset, concatenated over batches."""
    batches = [(x.numpy(), y.numpy()) for x, y in dataset]
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def standardized(images):
    return (images.astype(np.float64) / 255.0 - np.array(cifar10.MEAN)) / np.array(cifar10.STD)


@pytest.fixture(scope="module")
def embedded():
    return load_embedded_cifar10()


def test_embedded_sample_equals_pil_decode_of_its_bytes(embedded):
    with np.load(cifar10.EMBEDDED_PATH) as archive:
        for split, (x, y) in zip(cifar10.SPLITS, embedded, strict=True):
            reference = pil_decode(archive[f"{split}_jpeg_bytes"], archive[f"{split}_jpeg_offsets"])
            np.testing.assert_array_equal(x, reference)
            np.testing.assert_array_equal(y, archive[f"{split}_labels"])
            assert x.dtype == np.uint8 and y.dtype == np.int32


def test_embedded_sample_is_balanced_and_small(embedded):
    (x_train, y_train), (x_test, y_test) = embedded
    assert x_train.shape == (2000, 32, 32, 3) and x_test.shape == (500, 32, 32, 3)
    np.testing.assert_array_equal(np.bincount(y_train, minlength=10), np.full(10, 200))
    np.testing.assert_array_equal(np.bincount(y_test, minlength=10), np.full(10, 50))
    assert cifar10.EMBEDDED_PATH.stat().st_size < 5_000_000


def test_full_test_split_equals_pil_decode(cifar10_dir):
    x, y = load_cifar10_arrays("test", data_dir=cifar10_dir)
    assert x.shape == (10_000, 32, 32, 3) and y.shape == (10_000,)
    with np.load(cifar10_dir / "test.npz") as archive:
        jpeg_bytes, offsets = archive["jpeg_bytes"], archive["jpeg_offsets"]
        np.testing.assert_array_equal(y, archive["labels"])
        assert tuple(archive["class_names"]) == cifar10.CLASS_NAMES
    indices = np.random.default_rng(0).choice(10_000, size=400, replace=False)
    np.testing.assert_array_equal(x[indices], pil_decode(jpeg_bytes, offsets, indices))
    np.testing.assert_array_equal(np.bincount(y), np.full(10, 1000))


def test_standardized_real_images_have_zero_mean_and_unit_std(cifar10_dir):
    x, y = load_cifar10_arrays("test", data_dir=cifar10_dir)
    images, _ = collect(cifar10_dataset(x[::5], y[::5], batch_size=2000))  # 200 per class
    np.testing.assert_allclose(images.mean(axis=(0, 1, 2)), 0.0, atol=0.05)
    np.testing.assert_allclose(images.std(axis=(0, 1, 2)), 1.0, atol=0.05)


def test_plain_pipeline_keeps_order_values_and_batches(embedded):
    _, (x, y) = embedded
    dataset = cifar10_dataset(x[:300], y[:300], batch_size=128, normalize=False)
    assert [int(b[1].shape[0]) for b in dataset] == [128, 128, 44]
    images, labels = collect(dataset)
    assert images.dtype == np.float32 and labels.dtype == np.int32
    np.testing.assert_array_equal(images, x[:300].astype(np.float32))
    np.testing.assert_array_equal(labels, y[:300])


def test_standardization_formula(embedded):
    _, (x, y) = embedded
    images, _ = collect(cifar10_dataset(x, y, batch_size=250))
    np.testing.assert_allclose(images, standardized(x), rtol=0, atol=1e-5)


def test_labels_of_shape_n_by_1_are_accepted(embedded):
    _, (x, y) = embedded
    _, labels = collect(cifar10_dataset(x[:10], y[:10, None].astype(np.uint8), batch_size=4))
    np.testing.assert_array_equal(labels, y[:10])


def crop_candidates(image, padding=4):
    """(2 * 81, 32, 32, 3): every 32x32 window of the zero-padded image, then the flipped ones."""
    padded = np.pad(image, ((padding, padding), (padding, padding), (0, 0)))
    size = 2 * padding + 1
    windows = np.stack(
        [padded[top : top + 32, left : left + 32] for top in range(size) for left in range(size)]
    )
    return np.concatenate([windows, windows[:, :, ::-1]])


def test_augmentation_is_a_window_of_the_zero_padded_image_possibly_flipped(embedded):
    (x, y), _ = embedded
    x, y = x[::8], y[::8]  # 250 images of all classes
    images, labels = collect(
        cifar10_dataset(x, y, batch_size=64, augment=True, normalize=False, seed=0)
    )
    np.testing.assert_array_equal(labels, y)
    placements = []
    for original, augmented in zip(x, images, strict=True):
        candidates = crop_candidates(original).astype(np.float32)
        matches = np.flatnonzero((candidates == augmented).all(axis=(1, 2, 3)))
        assert matches.size, "augmented image is no window of the padded image"
        placements.append(matches[0])
    placements = np.array(placements)
    flipped = placements >= 81
    offsets = placements % 81
    # Per-image randomness: both flips and most of the 81 offsets occur (expected ~77 distinct).
    assert 0.35 < flipped.mean() < 0.65
    assert len(np.unique(offsets)) >= 60


def test_augmented_normalized_output_is_the_standardized_window(embedded):
    (x, y), _ = embedded
    raw, _ = collect(cifar10_dataset(x[:64], y[:64], 64, augment=True, normalize=False, seed=3))
    normalized, _ = collect(cifar10_dataset(x[:64], y[:64], 64, augment=True, seed=3))
    np.testing.assert_allclose(normalized, standardized(raw), rtol=0, atol=1e-5)


def test_seed_reproduces_epochs_differ_and_shuffle_permutes(embedded):
    (x, y), _ = embedded
    x, y = x[::20], y[::20]  # 100 images, 10 per class, sorted by class

    def build(seed):
        return cifar10_dataset(x, y, batch_size=32, augment=True, shuffle=True, seed=seed)

    first = build(7)
    epoch1, epoch2 = collect(first), collect(first)
    again = collect(build(7))
    other = collect(build(8))
    np.testing.assert_array_equal(epoch1[0], again[0])
    np.testing.assert_array_equal(epoch1[1], again[1])
    assert not np.array_equal(epoch1[0], epoch2[0])
    assert not np.array_equal(epoch1[0], other[0])
    for _, labels in (epoch1, epoch2, other):
        np.testing.assert_array_equal(np.sort(labels), np.sort(y))
    assert not np.array_equal(epoch1[1], y)


def test_load_cifar10_embedded_source_uses_the_same_pipeline(embedded):
    (x_train, y_train), (x_test, y_test) = embedded
    test = collect(load_cifar10("test", source="embedded", batch_size=100))
    reference = collect(cifar10_dataset(x_test, y_test, batch_size=100))
    np.testing.assert_array_equal(test[0], reference[0])
    np.testing.assert_array_equal(test[1], reference[1])
    train = load_cifar10("train", source="embedded", batch_size=50, augment=True, seed=3)
    reference = cifar10_dataset(x_train, y_train, 50, augment=True, shuffle=True, seed=3)
    for (a, b), (c, d) in zip(train.take(2), reference.take(2), strict=True):
        np.testing.assert_array_equal(a.numpy(), c.numpy())
        np.testing.assert_array_equal(b.numpy(), d.numpy())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"split": "val"}, "Received: split='val'"),
        ({"source": "web"}, "Received: source='web'"),
        ({"batch_size": 0}, "Received: batch_size=0"),
        ({"seed": "a"}, "Received: seed='a'"),
    ],
)
def test_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_cifar10(**{"source": "embedded", **kwargs})


@pytest.mark.parametrize("source", ["embedded", "tfds"])
def test_unknown_pipeline_option_is_a_type_error(source):
    # Raised before any data is read (for "tfds": before tensorflow_datasets is imported).
    with pytest.raises(TypeError, match="batchsize"):
        load_cifar10("test", source=source, batchsize=10)


def test_array_shape_errors():
    with pytest.raises(ValueError, match=r"Received: images.shape=\(4, 32, 32\)"):
        cifar10_dataset(np.zeros((4, 32, 32), np.uint8), np.zeros(4))
    with pytest.raises(ValueError, match=r"Received: labels.shape=\(3,\)"):
        cifar10_dataset(np.zeros((4, 32, 32, 3), np.uint8), np.zeros(3))
