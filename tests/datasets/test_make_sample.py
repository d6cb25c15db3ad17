"""The embedded sample is what `make_sample` draws from the full data; `write_sample` works."""

import numpy as np
import pytest

from keras_structconv.datasets import _npz, cifar10, make_sample
from tests.datasets.fake_archives import pil_decode, write_small_cifar


def test_shipped_sample_equals_its_images_in_the_full_dataset(cifar10_dir):
    sample = cifar10.load_embedded_cifar10()
    stored_indices = cifar10.embedded_sample_indices()
    for split, (x, y) in zip(cifar10.SPLITS, sample, strict=True):
        with np.load(cifar10_dir / f"{split}.npz") as archive:
            jpeg_bytes, offsets, labels = (
                archive["jpeg_bytes"], archive["jpeg_offsets"], archive["labels"]
            )
        indices = make_sample.balanced_indices(
            labels, make_sample.DEFAULT_PER_CLASS[split], make_sample.DEFAULT_SEED
        )
        np.testing.assert_array_equal(stored_indices[split], indices)
        np.testing.assert_array_equal(y, labels[indices])
        np.testing.assert_array_equal(x, pil_decode(jpeg_bytes, offsets, indices))


def test_write_sample_writes_a_balanced_sample_of_the_original_jpeg_files(tmp_path):
    source = tmp_path / "cifar10"
    full = write_small_cifar(source)
    output = tmp_path / "new" / "sample.npz"
    returned = make_sample.write_sample(output, source, {"train": 2, "test": 1}, seed=5)
    with np.load(output) as written:
        assert sorted(written.files) == sorted(returned)
    for split, per_class in (("train", 2), ("test", 1)):
        images, arrays = _npz.load_jpeg_archive(
            output, keys=("labels", "indices"), extra_keys=("class_names",), prefix=f"{split}_"
        )
        indices = arrays["indices"]
        np.testing.assert_array_equal(np.bincount(arrays["labels"]), np.full(10, per_class))
        np.testing.assert_array_equal(arrays["labels"], full[split]["labels"][indices])
        np.testing.assert_array_equal(
            images, pil_decode(full[split]["jpeg_bytes"], full[split]["jpeg_offsets"], indices)
        )
        np.testing.assert_array_equal(
            indices, make_sample.balanced_indices(full[split]["labels"], per_class, 5)
        )


def test_balanced_indices_are_seeded_and_reject_too_many_per_class():
    labels = np.repeat(np.arange(10), 5)
    first = make_sample.balanced_indices(labels, 3, seed=0)
    np.testing.assert_array_equal(first, make_sample.balanced_indices(labels, 3, seed=0))
    assert not np.array_equal(first, make_sample.balanced_indices(labels, 3, seed=1))
    np.testing.assert_array_equal(np.bincount(labels[first]), np.full(10, 3))
    with pytest.raises(ValueError, match="Received: per_class=6"):
        make_sample.balanced_indices(labels, 6, seed=0)
