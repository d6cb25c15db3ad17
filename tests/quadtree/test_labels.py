"""T-pyramid training labels and the compact quadtree (keras_structconv/quadtree/labels.py)."""

import numpy as np
import pytest
import tensorflow as tf

from keras_structconv.quadtree import (
    decode_quadtree,
    encode_quadtree,
    pad_to_multiple,
    quadtree_cell_counts,
    tpyramid_labels,
)
from keras_structconv.quadtree.labels import CompactQuadtree
from keras_structconv.quadtree.stats import load_camvid_label_maps
from tests.quadtree.quadtree_reference import (
    SPEC_LEVELS,
    SPEC_MAP,
    random_label_maps,
    reference_counts,
    reference_quadtree,
    reference_tpyramid,
)

# Left out of `make test-onednn-other`: label and quadtree arithmetic on integer maps: no
# convolution, matmul or pooling kernel.
pytestmark = pytest.mark.onednn_neutral

CAMVID_CLASSES = 11


def padded_camvid(split, camvid_dir, count=None):
    labels = load_camvid_label_maps(split, camvid_dir)
    if count is not None:
        labels = labels[:count]
    return pad_to_multiple(labels, 32, 255)[0].numpy()


# --------------------------------------------------------------------------------------------
# tpyramid_labels
# --------------------------------------------------------------------------------------------


def test_spec_test_vector_batched_and_unbatched():
    batched = tpyramid_labels(SPEC_MAP[np.newaxis], num_levels=4, num_classes=3)
    unbatched = tpyramid_labels(SPEC_MAP, num_levels=4, num_classes=3)
    assert len(batched) == len(unbatched) == 4
    for level, expected in enumerate(SPEC_LEVELS):
        assert batched[level].dtype == tf.int32
        np.testing.assert_array_equal(batched[level].numpy()[0], expected)
        np.testing.assert_array_equal(unbatched[level].numpy(), expected)


@pytest.mark.parametrize(
    "num_levels, height, width, num_classes",
    [(1, 4, 6, 3), (2, 6, 10, 2), (3, 12, 8, 4), (4, 16, 24, 5), (5, 32, 48, 3), (6, 64, 32, 2)],
)
def test_matches_numpy_reference_on_random_maps(num_levels, height, width, num_classes):
    rng = np.random.default_rng(num_levels)
    maps = random_label_maps(rng, 3, height, width, num_classes).astype(np.uint8)
    levels = tpyramid_labels(maps, num_levels, num_classes)
    expected = reference_tpyramid(maps, num_levels)
    for level in range(num_levels):
        np.testing.assert_array_equal(levels[level].numpy(), expected[level])
    # The maps are built to exercise every label kind: composite, classes and ignored leaves.
    values = np.concatenate([e.ravel() for e in expected])
    assert {-1, 0, 1}.issubset(set(values.tolist())) or num_levels == 1


def test_matches_numpy_reference_on_camvid(camvid_dir):
    maps = padded_camvid("train", camvid_dir, count=3)
    levels = tpyramid_labels(maps, 6, CAMVID_CLASSES)
    expected = reference_tpyramid(maps, 6)
    for level in range(6):
        np.testing.assert_array_equal(levels[level].numpy(), expected[level])


def test_every_pixel_is_supervised_once_at_its_leaf_level():
    maps = random_label_maps(np.random.default_rng(0), 2, 32, 32, 4, ignore_rate=0.0)
    levels = tpyramid_labels(maps, 5, 4)
    leaf_cover = sum(
        np.kron((level.numpy() > 0).astype(int), np.ones((1, 2**i, 2**i), int))
        for i, level in enumerate(levels)
    )
    np.testing.assert_array_equal(leaf_cover, np.ones_like(maps))


def test_inside_tf_data_map_matches_eager():
    maps = random_label_maps(np.random.default_rng(1), 4, 16, 24, 3).astype(np.uint8)
    dataset = tf.data.Dataset.from_tensor_slices(maps).map(
        lambda y: tpyramid_labels(y, num_levels=4, num_classes=3)
    )
    assert [spec.shape.as_list() for spec in dataset.element_spec] == [
        [16, 24],
        [8, 12],
        [4, 6],
        [2, 3],
    ]
    eager = tpyramid_labels(maps, num_levels=4, num_classes=3)
    batched = next(iter(dataset.batch(4)))
    for from_data, expected in zip(batched, eager, strict=True):
        np.testing.assert_array_equal(from_data.numpy(), expected.numpy())


def test_graph_mode_with_unknown_shape():
    maps = random_label_maps(np.random.default_rng(2), 2, 8, 16, 3).astype(np.int32)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None], tf.int32)])
    def graph_labels(labels):
        return tpyramid_labels(labels, num_levels=3, num_classes=3)

    expected = reference_tpyramid(maps, 3)
    for level, output in enumerate(graph_labels(maps)):
        np.testing.assert_array_equal(output.numpy(), expected[level])
    with pytest.raises(tf.errors.InvalidArgumentError, match="divisible by"):
        graph_labels(maps[:, :6])
    with pytest.raises(tf.errors.InvalidArgumentError, match="class ids"):
        graph_labels(np.full((1, 8, 8), 7, np.int32))


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "labels, kwargs, message",
    [
        (np.full((1, 4, 4), 5), {}, r"class ids in \[0, 2\].*Received: labels with values \{5\}"),
        (np.full((1, 4, 4), -1), {}, r"Received: labels with values \{-1\}"),
        (np.zeros((1, 4, 6)), {}, "integer dtype"),
        (np.zeros((1, 6, 8), int), {}, r"divisible by 2\*\*\(num_levels - 1\) = 4.*to 8x8"),
        (np.zeros((2, 4, 4, 1), int), {}, r"rank 3.*Received: labels.shape=\(2, 4, 4, 1\)"),
        (np.zeros(4, int), {}, "rank 3"),
        (np.zeros((1, 4, 4), int), {"num_levels": 0}, "Received: num_levels=0"),
        (np.zeros((1, 4, 4), int), {"num_classes": 0}, "Received: num_classes=0"),
        (np.zeros((1, 4, 4), int), {"ignore_index": 1}, "Received: ignore_index=1"),
    ],
)
def test_errors(labels, kwargs, message):
    arguments = {"num_levels": 3, "num_classes": 3, "ignore_index": 255, **kwargs}
    with pytest.raises(ValueError, match=message):
        tpyramid_labels(labels, **arguments)


def test_divisibility_error_says_how_to_pad():
    with pytest.raises(ValueError) as info:
        tpyramid_labels(np.zeros((1, 360, 480), np.uint8), num_levels=6, num_classes=11)
    message = str(info.value)
    assert "384x480" in message and "pad_to_multiple" in message
    assert message.endswith("Received: labels.shape=(1, 360, 480), num_levels=6")


# --------------------------------------------------------------------------------------------
# pad_to_multiple
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "placement, expected_padding", [("end", ((0, 24), (0, 4))), ("symmetric", ((12, 12), (2, 2)))]
)
def test_pad_to_multiple(placement, expected_padding):
    maps = np.random.default_rng(3).integers(0, 5, (2, 360, 476)).astype(np.uint8)
    padded, padding = pad_to_multiple(maps, 32, 255, placement)
    assert padding == expected_padding
    expected = np.pad(maps, ((0, 0), *expected_padding), constant_values=255)
    np.testing.assert_array_equal(padded.numpy(), expected)


def test_pad_to_multiple_errors():
    with pytest.raises(ValueError, match="Received: placement='top'"):
        pad_to_multiple(np.zeros((4, 4)), 4, placement="top")
    with pytest.raises(ValueError, match="Received: multiple=0"):
        pad_to_multiple(np.zeros((4, 4)), 0)


# --------------------------------------------------------------------------------------------
# Compact quadtree
# --------------------------------------------------------------------------------------------


def test_encode_spec_vector_leaves():
    tree = encode_quadtree(SPEC_MAP, num_levels=4, num_classes=3)
    expected_leaves = {
        0: [((6, 6), 255), ((6, 7), 0), ((7, 6), 0), ((7, 7), 0)],
        1: [((0, 2), 1), ((0, 3), 1), ((1, 2), 1), ((1, 3), 2)]
        + [((2, 2), 255), ((2, 3), 255), ((3, 2), 255)],
        2: [((0, 0), 0), ((1, 0), 0)],
        3: [],
    }
    assert tree.num_levels == 4 and tree.batch_size == 1 and tree.image_size == (8, 8)
    for level, leaves in expected_leaves.items():
        positions = [tuple(p) for p in tree.positions[level].to_list()[0]]
        classes = tree.classes[level].to_list()[0]
        assert list(zip(positions, classes, strict=True)) == leaves
    np.testing.assert_array_equal(tree.num_leaves().numpy(), [[4, 7, 2, 0]])


def test_encode_matches_reference_leaves_and_round_trips_random_maps():
    maps = random_label_maps(np.random.default_rng(4), 3, 32, 64, 4).astype(np.uint8)
    tree = encode_quadtree(maps, num_levels=5, num_classes=4)
    positions = [p.to_list() for p in tree.positions]
    classes = [c.to_list() for c in tree.classes]
    for image, label_map in enumerate(maps):
        leaves, _ = reference_quadtree(label_map, 5)
        encoded = [
            (level, row, col, value)
            for level in range(5)
            for (row, col), value in zip(
                positions[level][image], classes[level][image], strict=True
            )
        ]
        assert sorted(encoded) == sorted(leaves)
    decoded = decode_quadtree(tree, dtype="uint8")
    assert decoded.dtype == tf.uint8
    np.testing.assert_array_equal(decoded.numpy(), maps)


def test_cell_counts_match_reference():
    maps = random_label_maps(np.random.default_rng(5), 3, 32, 32, 3)
    leaf_cells, tree_cells = quadtree_cell_counts(maps, num_levels=6, num_classes=3)
    expected_leaves, expected_cells = reference_counts(maps, 6)
    np.testing.assert_array_equal(leaf_cells.numpy(), expected_leaves)
    np.testing.assert_array_equal(tree_cells.numpy(), expected_cells)


def test_round_trip_every_camvid_test_map(camvid_dir):
    maps = padded_camvid("test", camvid_dir)
    assert maps.shape == (233, 384, 480)
    for start in range(0, len(maps), 64):
        chunk = maps[start : start + 64]
        tree = encode_quadtree(chunk, num_levels=6, num_classes=CAMVID_CLASSES)
        np.testing.assert_array_equal(tree.decode(dtype="uint8").numpy(), chunk)
        # Compact: far fewer leaves than pixels.
        assert int(tf.reduce_sum(tree.num_leaves())) < 0.15 * chunk.size


def test_decode_rejects_leaves_that_do_not_tile_the_map():
    tree = encode_quadtree(SPEC_MAP, num_levels=4, num_classes=3)
    missing_one = CompactQuadtree(
        positions=(tree.positions[0][:, 1:], *tree.positions[1:]),
        classes=(tree.classes[0][:, 1:], *tree.classes[1:]),
        image_size=tree.image_size,
        ignore_index=tree.ignore_index,
    )
    with pytest.raises(ValueError, match="Received: 1 uncovered and 0 multiply covered pixels"):
        decode_quadtree(missing_one)
