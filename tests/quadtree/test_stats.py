"""Quadtree statistics, Table 5 (keras_structconv/quadtree/stats.py)."""

import numpy as np
import pytest

from keras_structconv.quadtree import (
    QuadtreeStatistics,
    load_camvid_label_maps,
    quadtree_statistics,
)
from keras_structconv.quadtree.stats import format_statistics_table
from tests.quadtree.quadtree_reference import (
    SPEC_MAP,
    random_label_maps,
    reference_counts,
    reference_original_figures,
    reference_table_row,
)

# Left out of `make test-onednn-other`: label statistics: no convolution, matmul or pooling
# kernel.
pytestmark = pytest.mark.onednn_neutral


def test_spec_vector_statistics():
    # Leaves of the SPEC map: two 4x4 cells at level 2, seven 2x2 cells at level 1 (three of
    # them ignored), four pixels at level 0; no leaf at the root.
    stats = quadtree_statistics(SPEC_MAP[np.newaxis], num_levels=4, num_classes=3)
    np.testing.assert_allclose(stats.level_pixel_percent, [4 / 64 * 100, 43.75, 50.0, 0.0])
    assert stats.memory_ratio_percent == pytest.approx(13 / 64 * 100)
    np.testing.assert_allclose(stats.gt_active_fraction, [4 / 64, 8 / 16, 4 / 4, 1.0])
    assert stats.gt_active_overall == pytest.approx((4 + 8 + 4) / (64 + 16 + 4))
    assert stats.padding == ((0, 0), (0, 0)) and stats.image_size == (8, 8)


def test_random_maps_match_reference_with_small_batches():
    maps = random_label_maps(np.random.default_rng(7), 5, 32, 64, 4)
    stats = quadtree_statistics(maps, num_levels=6, num_classes=4, name="random", batch_size=2)
    leaf_cells, tree_cells = reference_counts(maps, 6)
    np.testing.assert_array_equal(stats.leaf_cells, leaf_cells.sum(axis=0))
    np.testing.assert_array_equal(stats.tree_cells, tree_cells.sum(axis=0))
    percent, ratio = reference_table_row(maps, 6)
    np.testing.assert_allclose(stats.level_pixel_percent[::-1], percent)
    assert stats.memory_ratio_percent == pytest.approx(ratio)
    assert stats.level_pixel_percent.sum() == pytest.approx(100.0)


@pytest.mark.parametrize(
    "placement, padding", [("end", ((0, 6), (0, 2))), ("symmetric", ((3, 3), (1, 1)))]
)
def test_pads_with_ignore_and_reports_padding(placement, padding):
    maps = random_label_maps(np.random.default_rng(8), 2, 26, 30, 3)
    stats = quadtree_statistics(maps, 4, 3, padding_placement=placement)
    assert stats.padding == padding and stats.image_size == (32, 32)
    padded = np.pad(maps, ((0, 0), *padding), constant_values=255)
    leaf_cells, _ = reference_counts(padded, 4)
    np.testing.assert_array_equal(stats.leaf_cells, leaf_cells.sum(axis=0))
    pixels, cells = reference_original_figures(padded, padding, 4)
    np.testing.assert_array_equal(stats.original_leaf_pixels, pixels)
    np.testing.assert_array_equal(stats.original_leaf_cells, cells)
    assert stats.num_original_pixels == maps.size == pixels.sum()
    assert stats.original_memory_ratio_percent == pytest.approx(100 * cells.sum() / maps.size)


def test_statistics_errors():
    with pytest.raises(ValueError, match="Received: labels.shape=\\(4, 4\\)"):
        quadtree_statistics(np.zeros((4, 4), int), 2, 3)
    with pytest.raises(ValueError, match="Received: num_levels=0"):
        quadtree_statistics(np.zeros((1, 4, 4), int), 0, 3)
    with pytest.raises(ValueError, match="at least one map"):
        quadtree_statistics(np.zeros((0, 4, 4), int), 2, 3)


def test_format_statistics_table():
    stats = QuadtreeStatistics(
        name="val",
        num_images=2,
        image_size=(4, 4),
        padding=((0, 2), (0, 0)),
        # 32 pixels: 8 leaves at level 0 (25 %), 6 leaves of 4 pixels at level 1 (75 %), which
        # has 2 composite cells, hence 8 level-0 sites in the tree out of 32. 16 pixels are
        # original: 8 at level 0, 8 at level 1, in 8 + 2 leaves.
        leaf_cells=np.array([8, 6]),
        tree_cells=np.array([8, 8]),
        original_leaf_cells=np.array([8, 2]),
        original_leaf_pixels=np.array([8, 8]),
    )
    table = format_statistics_table([stats], "padded", show_active=True).splitlines()
    assert table[0].split() == ["split", "images", "Q1", "Q0", "ratio"]
    assert table[1].split() == ["val", "2", "75.00", "25.00", "43.75%"]
    assert table[-1].split() == ["val", "0.250", "1.000", "0.250"]
    original = format_statistics_table([stats], "original").splitlines()
    assert original[1].split() == ["val", "2", "50.00", "50.00", "62.50%"]
    with pytest.raises(ValueError, match="Received: pixels='all'"):
        format_statistics_table([stats], "all")


def test_load_camvid_label_maps(camvid_dir):
    labels = load_camvid_label_maps("val", camvid_dir)
    with np.load(camvid_dir / "val.npz") as archive:
        raw = archive["labels"]
    assert labels.shape == (101, 360, 480) and labels.dtype == np.uint8
    np.testing.assert_array_equal(labels == 255, raw == 11)
    np.testing.assert_array_equal(labels[raw != 11], raw[raw != 11])
    assert set(np.unique(labels).tolist()) <= set(range(11)) | {255}


def test_load_camvid_errors(tmp_path):
    with pytest.raises(ValueError, match="Received: split='training'"):
        load_camvid_label_maps("training", tmp_path)
    with pytest.raises(FileNotFoundError, match="val.npz"):
        load_camvid_label_maps("val", tmp_path)
