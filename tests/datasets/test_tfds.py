"""The TFDS bridge, with `tfds.load` mocked: no test may download (there is no network here)."""

import sys
import types

import numpy as np
import pytest
import tensorflow as tf

from keras_structconv.datasets.cifar10 import cifar10_dataset, load_cifar10, load_embedded_cifar10


def install_fake_tfds(monkeypatch, load):
    module = types.ModuleType("tensorflow_datasets")
    module.load = load
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", module)


def test_tfds_source_calls_load_cifar10_and_shares_the_pipeline(monkeypatch, tmp_path):
    _, (x, y) = load_embedded_cifar10()
    calls = []

    def load(name, **kwargs):
        calls.append((name, kwargs))
        return tf.data.Dataset.from_tensor_slices((x, y.astype(np.int64)))

    install_fake_tfds(monkeypatch, load)
    for augment in (False, True):
        dataset = load_cifar10(
            "test", data_dir=tmp_path, source="tfds", batch_size=100, augment=augment, seed=4
        )
        reference = cifar10_dataset(x, y, batch_size=100, augment=augment, seed=4)
        for (a, b), (c, d) in zip(dataset, reference, strict=True):
            assert b.dtype == tf.int32
            np.testing.assert_array_equal(a.numpy(), c.numpy())
            np.testing.assert_array_equal(b.numpy(), d.numpy())
    expected = dict(split="test", as_supervised=True, data_dir=tmp_path, shuffle_files=False)
    assert calls == [("cifar10", expected)] * 2


def test_offline_tfds_raises_a_clear_error(monkeypatch):
    def load(name, **kwargs):
        raise ConnectionError("Failed to establish a new connection")

    install_fake_tfds(monkeypatch, load)
    with pytest.raises(RuntimeError, match="needs network access.*source='npz'") as info:
        load_cifar10("train", source="tfds")
    assert isinstance(info.value.__cause__, ConnectionError)


def test_missing_tfds_package_raises_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(ImportError, match="tensorflow-datasets"):
        load_cifar10("train", source="tfds")
