"""CamVid loaders: void -> 255, bottom padding, and augmentation that keeps labels aligned."""

import numpy as np
import pytest

from keras_structconv.datasets import camvid
from keras_structconv.datasets.camvid import camvid_dataset, load_camvid, load_camvid_arrays
from tests.datasets.fake_archives import pil_decode, write_camvid_like

VOID = camvid.IGNORE_LABEL


def collect(dataset):
    batches = [(x.numpy(), y.numpy()) for x, y in dataset]
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def block_label_maps(count, height, width, block, seed=0):
    """uint8 (count, height, width) maps of `block`-pixel squares of classes 1..10 and void.

    No class 0: an image made of these labels is 0 only where the pipeline padded it.
    """
    rng = np.random.default_rng(seed)
    choices = np.array([*range(1, camvid.NUM_CLASSES), VOID], np.uint8)
    blocks = rng.choice(choices, size=(count, -(-height // block), -(-width // block)))
    return np.repeat(np.repeat(blocks, block, axis=1), block, axis=2)[:, :height, :width]


def as_image(labels):
    """The label maps replicated into 3 channels: an image equal to its label map."""
    return np.repeat(labels[..., None], 3, axis=-1)


def assert_image_equals_label(image, label):
    """Channels equal the label where labelled; where it is 255: void (255) or padding (0)."""
    labelled = label != VOID
    for channel in range(3):
        np.testing.assert_array_equal(image[..., channel][labelled], label[labelled])
    void = image[~labelled]
    assert np.all((void == 0) | (void == VOID))
    assert np.all(void == void[:, :1])


def test_augmented_image_equal_to_its_label_map_stays_equal():
    labels = block_label_maps(6, 60, 80, block=8, seed=1)
    images = as_image(labels)
    outputs = []
    for seed in range(2):
        dataset = camvid_dataset(
            images, labels, batch_size=3, augment=True, shuffle=True, crop_size=(48, 64),
            normalize=False, seed=seed, image_interpolation="nearest",
        )
        augmented_images, augmented_labels = collect(dataset)
        assert augmented_images.shape == (6, 64, 64, 3) and augmented_labels.shape == (6, 64, 64)
        for image, label in zip(augmented_images, augmented_labels, strict=True):
            assert_image_equals_label(image, label)
            # Classes 1..10 only: pixels that are 0 are padding, and padding is labelled void.
            assert np.all(label[(image == 0).all(axis=-1)] == VOID)
            assert np.all(label[48:] == VOID)
        outputs.append(augmented_labels)
    # The transforms do something: outputs differ between seeds and from the plain crop.
    assert not np.array_equal(outputs[0], outputs[1])
    assert not any(np.array_equal(out[:, :48], labels[:, :48, :64]) for out in outputs)


def test_bilinear_image_matches_label_inside_regions():
    labels = block_label_maps(4, 96, 128, block=16, seed=2)
    dataset = camvid_dataset(
        as_image(labels), labels, batch_size=4, augment=True, normalize=False, seed=3,
        pad_to=None,
    )
    images, augmented = collect(dataset)
    # Where the label is constant over a 5x5 window, bilinear sampling sees only that class.
    padded = np.pad(augmented, ((0, 0), (2, 2), (2, 2)), mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (5, 5), axis=(1, 2))
    inside = (windows == augmented[..., None, None]).all(axis=(-1, -2)) & (augmented != VOID)
    assert inside.mean() > 0.3
    for channel in range(3):
        np.testing.assert_allclose(images[..., channel][inside], augmented[inside], atol=1e-3)


def augmented_at_scale(scale, count, seed, data_seed, lowest_pixel=0):
    """`count` random 12x16 frames (labels 0..10, pixels from `lowest_pixel`) and the batch
    `camvid_dataset` makes of them at the fixed `scale`, nearest neighbour, without padding:
    `(images, labels, out_images, out_labels)`."""
    rng = np.random.default_rng(data_seed)
    labels = rng.integers(0, 11, size=(count, 12, 16)).astype(np.uint8)
    images = rng.integers(lowest_pixel, 256, size=(count, 12, 16, 3)).astype(np.uint8)
    dataset = camvid_dataset(
        images, labels, batch_size=count, augment=True, scale_range=(scale, scale), pad_to=None,
        normalize=False, seed=seed, image_interpolation="nearest",
    )
    return (images, labels, *collect(dataset))


def test_scale_two_is_a_window_of_the_doubled_frame_possibly_flipped():
    images, labels, out_images, out_labels = augmented_at_scale(2.0, 6, seed=1, data_seed=4)
    flips = []
    for image, label, out_image, out_label in zip(
        images, labels, out_images, out_labels, strict=True
    ):
        big_label = label.repeat(2, axis=0).repeat(2, axis=1)
        big_image = image.repeat(2, axis=0).repeat(2, axis=1)
        found = [
            (top, left, flip)
            for top in range(13)
            for left in range(17)
            for flip in (False, True)
            if np.array_equal(_window(big_label, top, left, flip), out_label)
            and np.array_equal(_window(big_image, top, left, flip), out_image)
        ]
        assert found, "augmented pair is no common window of the doubled image and label"
        flips.append(found[0][2])
    assert 0 < sum(flips) < len(flips)


def _window(frame, top, left, flip):
    window = frame[top : top + 12, left : left + 16]
    return window[:, ::-1] if flip else window


def test_scale_half_pads_bottom_right_with_void_before_the_flip():
    # Pixels from 1: a 0 in the output is padding.
    images, labels, out_images, out_labels = augmented_at_scale(
        0.5, 8, seed=2, data_seed=5, lowest_pixel=1
    )
    # Nearest neighbour at scale 1/2 with half-pixel centres samples the odd rows and columns.
    expected_labels = np.full((8, 12, 16), VOID)
    expected_labels[:, :6, :8] = labels[:, 1::2, 1::2]
    expected_images = np.zeros((8, 12, 16, 3))
    expected_images[:, :6, :8] = images[:, 1::2, 1::2]
    flips = []
    for i in range(8):
        flip = not np.array_equal(out_labels[i], expected_labels[i])
        flips.append(flip)
        expected_label = expected_labels[i][:, ::-1] if flip else expected_labels[i]
        expected_image = expected_images[i][:, ::-1] if flip else expected_images[i]
        np.testing.assert_array_equal(out_labels[i], expected_label)
        np.testing.assert_array_equal(out_images[i], expected_image)
    assert 0 < sum(flips) < 8


def test_same_seed_same_stream():
    labels = block_label_maps(4, 24, 32, block=4, seed=6)
    runs = [
        collect(camvid_dataset(as_image(labels), labels, 2, augment=True, shuffle=True, seed=9))
        for _ in range(2)
    ]
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


def test_pad_to_options():
    labels = block_label_maps(2, 36, 48, block=4)
    images = as_image(labels)
    for pad_to, size in (("auto", (64, 64)), (None, (36, 48)), ((40, 50), (40, 50))):
        out_images, out_labels = collect(
            camvid_dataset(images, labels, batch_size=2, pad_to=pad_to, normalize=False)
        )
        assert out_labels.shape == (2, *size) and out_images.shape == (2, *size, 3)
        np.testing.assert_array_equal(out_labels[:, :36, :48], labels)
        np.testing.assert_array_equal(out_images[:, :36, :48], images)
        assert np.all(out_labels[:, 36:] == VOID) and np.all(out_labels[:, :, 48:] == VOID)
        assert np.all(out_images[:, 36:] == 0) and np.all(out_images[:, :, 48:] == 0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"pad_to": (32, 48)}, r"Received: pad_to=\(32, 48\)"),
        ({"pad_to": "big"}, "Received: pad_to='big'"),
        ({"crop_size": (0, 5), "augment": True}, r"Received: crop_size=\(0, 5\)"),
        ({"scale_range": (2.0, 1.0)}, r"Received: scale_range=\(2.0, 1.0\)"),
        ({"image_interpolation": "cubic"}, "Received: image_interpolation='cubic'"),
        ({"batch_size": -1}, "Received: batch_size=-1"),
    ],
)
def test_argument_errors(kwargs, message):
    labels = block_label_maps(2, 36, 48, block=4)
    with pytest.raises(ValueError, match=message):
        camvid_dataset(as_image(labels), labels, **kwargs)


def test_label_shape_error():
    with pytest.raises(ValueError, match=r"Received: images.shape=\(2, 8, 8, 3\)"):
        camvid_dataset(np.zeros((2, 8, 8, 3), np.uint8), np.zeros((2, 8, 9), np.uint8))


def test_file_void_becomes_255_and_out_of_range_labels_are_corrupt(tmp_path):
    labels = block_label_maps(3, 24, 32, block=8, seed=7)
    labels[labels == VOID] = camvid.VOID_IN_FILE
    arrays = write_camvid_like(tmp_path / "val.npz", labels)
    images, mapped = load_camvid_arrays("val", data_dir=tmp_path)
    np.testing.assert_array_equal(mapped, np.where(labels == 11, 255, labels))
    np.testing.assert_array_equal(images, pil_decode(arrays["jpeg_bytes"], arrays["jpeg_offsets"]))
    labels[0, 0, 0] = 12
    write_camvid_like(tmp_path / "test.npz", labels)
    with pytest.raises(ValueError, match="Corrupt dataset file") as info:
        load_camvid_arrays("test", data_dir=tmp_path)
    assert str(tmp_path / "test.npz") in str(info.value)


def test_load_camvid_rejects_an_unknown_option(tmp_path):
    write_camvid_like(tmp_path / "val.npz", np.zeros((2, 24, 32), np.uint8))
    with pytest.raises(TypeError, match="batchsize"):
        load_camvid("val", data_dir=tmp_path, batchsize=2)


def test_missing_folder_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="CamVid data folder not found"):
        load_camvid("val", data_dir=tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="train.npz"):
        load_camvid("train", data_dir=tmp_path)


def test_real_val_split_decodes_and_maps_void(camvid_dir):
    images, labels = load_camvid_arrays("val", data_dir=camvid_dir)
    assert images.shape == (101, 360, 480, 3) and labels.shape == (101, 360, 480)
    with np.load(camvid_dir / "val.npz") as archive:
        raw_labels = archive["labels"]
        indices = [0, 50, 100]
        reference = pil_decode(archive["jpeg_bytes"], archive["jpeg_offsets"], indices)
    np.testing.assert_array_equal(images[indices], reference)
    np.testing.assert_array_equal(labels == VOID, raw_labels == camvid.VOID_IN_FILE)
    np.testing.assert_array_equal(labels[raw_labels != 11], raw_labels[raw_labels != 11])
    assert set(np.unique(labels)) <= {*range(11), VOID}


def test_real_eval_batches_are_padded_at_the_bottom_and_standardized(camvid_dir):
    images, labels = load_camvid_arrays("val", data_dir=camvid_dir)
    raw = next(iter(load_camvid("val", data_dir=camvid_dir, batch_size=2, normalize=False)))
    batch_images, batch_labels = raw[0].numpy(), raw[1].numpy()
    assert batch_images.shape == (2, 384, 480, 3) and batch_labels.shape == (2, 384, 480)
    np.testing.assert_array_equal(batch_images[:, :360], images[:2])
    np.testing.assert_array_equal(batch_labels[:, :360], labels[:2])
    assert np.all(batch_images[:, 360:] == 0) and np.all(batch_labels[:, 360:] == VOID)
    normalized = next(iter(load_camvid("val", data_dir=camvid_dir, batch_size=2)))[0].numpy()
    expected = (batch_images / 255.0 - np.array(camvid.MEAN)) / np.array(camvid.STD)
    np.testing.assert_allclose(normalized, expected, rtol=0, atol=1e-5)


def test_real_label_maps_stay_aligned(camvid_dir):
    _, labels = load_camvid_arrays("val", data_dir=camvid_dir)
    labels = labels[:4]
    dataset = camvid_dataset(
        as_image(labels), labels, batch_size=4, augment=True, crop_size=(352, 480),
        normalize=False, seed=11, image_interpolation="nearest",
    )
    augmented_images, augmented_labels = collect(dataset)
    assert augmented_labels.shape == (4, 352, 480)
    for image, label in zip(augmented_images, augmented_labels, strict=True):
        assert_image_equals_label(image, label)
