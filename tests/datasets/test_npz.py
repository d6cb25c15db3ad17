"""The npz reader: folder resolution, corrupt-file errors naming the file, decoding, caching."""

import numpy as np
import pytest

from keras_structconv.datasets import _npz
from keras_structconv.datasets.cifar10 import load_cifar10_arrays
from tests.datasets.fake_archives import encode_jpegs, pil_decode, random_images, write_cifar_like


@pytest.fixture
def no_data_env(monkeypatch, tmp_path):
    """Neither the environment variable nor the repository default point at any data."""
    monkeypatch.delenv(_npz.DATA_ENV_VAR, raising=False)
    monkeypatch.setattr(_npz, "_DEFAULT_DATA_ROOT", tmp_path / "no_shared_data")


def test_decode_equals_pil():
    images = random_images(20, 24, 40, seed=3)
    jpeg_bytes, offsets = encode_jpegs(images)
    decoded = _npz.decode_jpegs(jpeg_bytes, offsets)
    assert decoded.dtype == np.uint8 and decoded.shape == (20, 24, 40, 3)
    np.testing.assert_array_equal(decoded, pil_decode(jpeg_bytes, offsets))


def test_missing_folder_from_argument(no_data_env, tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="KERAS_STRUCTCONV_DATA") as info:
        load_cifar10_arrays("test", data_dir=missing)
    assert str(missing) in str(info.value) and "Received: data_dir=" in str(info.value)


def test_missing_folder_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(_npz.DATA_ENV_VAR, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="data folder not found") as info:
        load_cifar10_arrays("test")
    assert str(tmp_path / "cifar10") in str(info.value)


def test_missing_default_folder(no_data_env):
    with pytest.raises(FileNotFoundError, match="Pass `data_dir=`"):
        load_cifar10_arrays("test")


def test_missing_split_file_names_it_and_hints_at_the_dataset_folder(no_data_env, tmp_path):
    (tmp_path / "cifar10").mkdir()
    write_cifar_like(tmp_path / "cifar10" / "test.npz")
    with pytest.raises(FileNotFoundError, match="Did you mean data_dir=") as info:
        load_cifar10_arrays("test", data_dir=tmp_path)
    assert str(tmp_path / "test.npz") in str(info.value)
    with pytest.raises(FileNotFoundError, match="train.npz"):
        load_cifar10_arrays("train", data_dir=tmp_path / "cifar10")


def test_environment_variable_points_at_root(monkeypatch, tmp_path):
    (tmp_path / "cifar10").mkdir()
    arrays = write_cifar_like(tmp_path / "cifar10" / "test.npz", seed=5)
    monkeypatch.setenv(_npz.DATA_ENV_VAR, str(tmp_path))
    x, y = load_cifar10_arrays("test")
    np.testing.assert_array_equal(y, arrays["labels"])
    np.testing.assert_array_equal(x, pil_decode(arrays["jpeg_bytes"], arrays["jpeg_offsets"]))


def _bad_archives(tmp_path):
    """{name: path} of broken CIFAR-format files."""
    good = tmp_path / "good.npz"
    arrays = write_cifar_like(good)
    offsets, jpeg_bytes = arrays["jpeg_offsets"], arrays["jpeg_bytes"]
    swapped = offsets.copy()
    swapped[[1, 2]] = swapped[[2, 1]]
    cases = {
        "missing_key": {"labels": None},
        "offsets_short_of_end": {"jpeg_offsets": offsets[:-1]},
        "offsets_past_end": {"jpeg_offsets": np.append(offsets[:-1], offsets[-1] + 10)},
        "offsets_not_increasing": {"jpeg_offsets": swapped},
        "labels_count": {"labels": arrays["labels"][:-1]},
        "label_range": {"labels": arrays["labels"] + 5},
        "bytes_not_jpeg": {"jpeg_bytes": np.zeros_like(jpeg_bytes)},
        "class_names": {"class_names": np.array(list("abcdefghij"))},
    }
    paths = {}
    for name, override in cases.items():
        paths[name] = tmp_path / f"{name}.npz"
        write_cifar_like(paths[name], **override)
    data = good.read_bytes()
    paths["truncated"] = tmp_path / "truncated.npz"
    paths["truncated"].write_bytes(data[: len(data) // 2])
    paths["truncated_tail"] = tmp_path / "truncated_tail.npz"
    paths["truncated_tail"].write_bytes(data[:-30])
    paths["not_an_archive"] = tmp_path / "not_an_archive.npz"
    paths["not_an_archive"].write_bytes(b"this is not numpy data at all")
    paths["single_array"] = tmp_path / "single_array.npz"
    with open(paths["single_array"], "wb") as file:
        np.save(file, np.arange(3))
    return paths


def test_corrupt_archives_raise_value_error_naming_the_file(tmp_path):
    for name, path in _bad_archives(tmp_path).items():
        folder = tmp_path / name
        folder.mkdir()
        path.rename(folder / "test.npz")
        with pytest.raises(ValueError, match="Corrupt dataset file") as info:
            load_cifar10_arrays("test", data_dir=folder)
        assert str(folder / "test.npz") in str(info.value), name


def test_arrays_are_cached_and_read_only(tmp_path):
    write_cifar_like(tmp_path / "test.npz")
    x1, y1 = load_cifar10_arrays("test", data_dir=tmp_path)
    x2, y2 = load_cifar10_arrays("test", data_dir=tmp_path)
    assert x1 is x2 and y1 is y2
    with pytest.raises(ValueError, match="read-only"):
        x1[0, 0, 0, 0] = 1


def test_rewritten_file_is_decoded_again(tmp_path):
    write_cifar_like(tmp_path / "test.npz", seed=1)
    first, _ = load_cifar10_arrays("test", data_dir=tmp_path)
    arrays = write_cifar_like(tmp_path / "test.npz", count_per_class=2, seed=2)
    second, _ = load_cifar10_arrays("test", data_dir=tmp_path)
    assert len(first) == 30 and len(second) == 20
    np.testing.assert_array_equal(second, pil_decode(arrays["jpeg_bytes"], arrays["jpeg_offsets"]))
