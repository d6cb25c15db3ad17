"""Quadtree statistics of segmentation label maps (QGN paper, Table 5).

Reference: K. Chitta, J. M. Alvarez, M. Hebert, "Quadtree Generating Networks", WACV 2020,
Sec. 4.4 "Dataset sparsity" and Table 5.

Definition. Each label map (padded with the ignore value to a multiple of the root cell size
2^(L-1)) is converted to an L-level quadtree (see `labels.py`). For each level l the statistics
report the share of pixels whose leaf lies at level l (Q_l; Q_{L-1} is the root level), and the
quadtree/dense memory ratio = number of leaf cells / number of pixels. Ignore pixels (CamVid void,
and the padding) are a value like any class: an all-ignore cell is a leaf.

Two variants, both computed on the quadtrees of the padded maps:
- "padded": shares over all pixels of the padded maps, ratio = all leaf cells / padded pixels;
- "original": shares over the original (non-padding) pixels only, ratio = leaf cells holding at
  least one original pixel / original pixels (the padding itself is not counted).

`structconv quadtree-stats --data camvid --levels 6` prints these tables
(`keras_structconv/cli/quadtree_stats.py`).
"""

import dataclasses
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from keras_structconv.quadtree.labels import (
    pad_to_multiple,
    quadtree_cell_masks,
    validate_settings,
)

CAMVID_NUM_CLASSES = 11
CAMVID_VOID = 11
CAMVID_SPLITS = ("train", "val", "test")


# --------------------------------------------------------------------------------------------
# CamVid label maps (read straight from the npz files; see ../shared/data/README.md)
# --------------------------------------------------------------------------------------------


def default_camvid_dir():
    """$KERAS_STRUCTCONV_DATA/camvid, else <repo>/../shared/data/camvid."""
    env = os.environ.get("KERAS_STRUCTCONV_DATA")
    if env:
        return Path(env) / "camvid"
    return Path(__file__).resolve().parents[2].parent / "shared" / "data" / "camvid"


def load_camvid_label_maps(split, data_dir=None, ignore_index=255):
    """Raw CamVid label maps of one split, void (11) mapped to `ignore_index`.

    Args:
        split: "train", "val" or "test".
        data_dir: folder holding `{split}.npz`; default `default_camvid_dir()`.
        ignore_index: value given to void pixels.

    Returns:
        uint8 array `(N, 360, 480)` with class ids 0..10 and `ignore_index`.
    """
    if split not in CAMVID_SPLITS:
        raise ValueError(f"`split` must be one of {CAMVID_SPLITS}. Received: split={split!r}")
    if not 0 <= ignore_index <= 255 or ignore_index < CAMVID_NUM_CLASSES:
        raise ValueError(
            "`ignore_index` must be in [11, 255] (CamVid labels are uint8 class ids 0..10). "
            f"Received: ignore_index={ignore_index}"
        )
    folder = Path(data_dir) if data_dir is not None else default_camvid_dir()
    path = folder / f"{split}.npz"
    if not path.is_file():
        raise FileNotFoundError(
            f"CamVid file {path} not found: pass the folder holding train/val/test.npz "
            "(or set KERAS_STRUCTCONV_DATA to the folder holding camvid/)."
        )
    with np.load(path) as archive:
        labels = archive["labels"]
    return np.where(labels == CAMVID_VOID, np.uint8(ignore_index), labels).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class QuadtreeStatistics:
    """Counts over a set of label maps, and the Table 5 figures derived from them.

    Attributes:
        name: label of the set (e.g. the split).
        num_images: number of label maps.
        image_size: `(height, width)` of the padded maps the quadtrees were built on.
        padding: `((top, bottom), (left, right))` ignore padding added to each map.
        leaf_cells: int64 `(num_levels,)`, leaf cells at each level (index 0 = full resolution).
        tree_cells: int64 `(num_levels,)`, quadtree cells (leaves + composite) at each level.
        original_leaf_cells: int64 `(num_levels,)`, leaf cells holding at least one original
            (non-padding) pixel.
        original_leaf_pixels: int64 `(num_levels,)`, original pixels whose leaf is at level l.
    """

    name: str
    num_images: int
    image_size: tuple
    padding: tuple
    leaf_cells: np.ndarray
    tree_cells: np.ndarray
    original_leaf_cells: np.ndarray
    original_leaf_pixels: np.ndarray

    @property
    def num_levels(self):
        return len(self.leaf_cells)

    @property
    def num_pixels(self):
        """Pixels of the padded maps."""
        return self.num_images * self.image_size[0] * self.image_size[1]

    @property
    def num_original_pixels(self):
        (top, bottom), (left, right) = self.padding
        height, width = self.image_size
        return self.num_images * (height - top - bottom) * (width - left - right)

    @property
    def level_pixel_percent(self):
        """`(num_levels,)` % of the padded maps' pixels whose leaf is at level l (index l)."""
        pixels_per_cell = 4 ** np.arange(self.num_levels, dtype=np.int64)
        return 100.0 * self.leaf_cells * pixels_per_cell / self.num_pixels

    @property
    def memory_ratio_percent(self):
        """Quadtree/dense memory ratio in %: leaf cells / pixels of the padded maps."""
        return 100.0 * self.leaf_cells.sum() / self.num_pixels

    @property
    def original_level_pixel_percent(self):
        """`(num_levels,)` % of the original pixels whose leaf is at level l."""
        return 100.0 * self.original_leaf_pixels / self.num_original_pixels

    @property
    def original_memory_ratio_percent(self):
        """Leaf cells holding an original pixel / original pixels, in %."""
        return 100.0 * self.original_leaf_cells.sum() / self.num_original_pixels

    @property
    def level_sites(self):
        """int64 `(num_levels,)`: cells of the full grid at each level, over all maps."""
        height, width = self.image_size
        return np.array(
            [
                self.num_images * (height >> level) * (width >> level)
                for level in range(self.num_levels)
            ],
            dtype=np.int64,
        )

    @property
    def gt_active_fraction(self):
        """`(num_levels,)` fraction of each level's sites present in the quadtree (the sites a
        decoder computes under `gt` propagation); 1 at the top level."""
        return self.tree_cells / np.maximum(self.level_sites, 1)

    @property
    def gt_active_overall(self):
        """Sites present in the quadtree / all sites, over the levels below the top."""
        below_top = slice(0, self.num_levels - 1)
        return self.tree_cells[below_top].sum() / max(self.level_sites[below_top].sum(), 1)


def _original_pixels_per_cell(image_size, padding, num_levels):
    """Per level, `(h, w)` int64 map of the original (non-padding) pixels in each cell."""
    (top, bottom), (left, right) = padding
    height, width = image_size
    original = np.zeros(image_size, np.int64)
    original[top : height - bottom, left : width - right] = 1
    per_level = []
    for level in range(num_levels):
        size = 2**level
        blocks = original.reshape(height // size, size, width // size, size)
        per_level.append(blocks.sum(axis=(1, 3)))
    return per_level


def quadtree_statistics(
    labels,
    num_levels,
    num_classes,
    ignore_index=255,
    padding_placement="end",
    name="",
    batch_size=32,
):
    """Quadtree statistics (Table 5) of label maps `(N, H, W)`.

    Args:
        labels: integer array or tensor `(N, H, W)` of class ids and `ignore_index`; maps whose
            size is not a multiple of `2**(num_levels - 1)` are padded with `ignore_index`.
        num_levels: quadtree levels (6 in the paper: root cells of 32x32 pixels).
        num_classes: number of classes.
        ignore_index: label value of ignored pixels (also the padding value).
        padding_placement: "end" (bottom/right) or "symmetric"; see `pad_to_multiple`.
        name: label stored in the result.
        batch_size: maps processed at once (bounds memory).

    Returns:
        A `QuadtreeStatistics`.
    """
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(
            f"`labels` must have rank 3 (N, height, width). Received: labels.shape={labels.shape}"
        )
    if len(labels) == 0:
        raise ValueError(
            f"`labels` must hold at least one map. Received: labels.shape={labels.shape}"
        )
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1. Received: batch_size={batch_size}")
    validate_settings(num_levels, num_classes, ignore_index)
    # Per level, how often each cell is a leaf over all maps; the padding is the same for every
    # map, so the original-pixel figures follow from these maps.
    leaf_frequency = [0] * num_levels
    tree_cells = np.zeros(num_levels, np.int64)
    for start in range(0, len(labels), batch_size):
        chunk, padding = pad_to_multiple(
            labels[start : start + batch_size], 2 ** (num_levels - 1), ignore_index,
            padding_placement,
        )  # fmt: skip
        leaves, cells = quadtree_cell_masks(chunk, num_levels, num_classes, ignore_index)
        for level in range(num_levels):
            leaf_frequency[level] += tf.reduce_sum(tf.cast(leaves[level], tf.int64), 0).numpy()
            tree_cells[level] += int(tf.reduce_sum(tf.cast(cells[level], tf.int64)))
    image_size = tuple(chunk.shape[1:])
    original_pixels = _original_pixels_per_cell(image_size, padding, num_levels)
    return QuadtreeStatistics(
        name=name,
        num_images=len(labels),
        image_size=image_size,
        padding=padding,
        leaf_cells=np.array([f.sum() for f in leaf_frequency], np.int64),
        tree_cells=tree_cells,
        original_leaf_cells=np.array(
            [(f * (o > 0)).sum() for f, o in zip(leaf_frequency, original_pixels, strict=True)],
            np.int64,
        ),
        original_leaf_pixels=np.array(
            [(f * o).sum() for f, o in zip(leaf_frequency, original_pixels, strict=True)],
            np.int64,
        ),
    )


def format_statistics_table(statistics, pixels="padded", show_active=False):
    """Table 5 layout: one row per set, columns Q_{L-1} .. Q_0 (% of pixels) and the ratio.

    Args:
        statistics: sequence of `QuadtreeStatistics` with the same number of levels.
        pixels: "padded" (shares over the padded maps) or "original" (over original pixels).
        show_active: also print the fraction of sites present in the quadtree per level.
    """
    if pixels not in ("padded", "original"):
        raise ValueError(f"`pixels` must be 'padded' or 'original'. Received: pixels={pixels!r}")
    num_levels = statistics[0].num_levels
    top_down = range(num_levels - 1, -1, -1)
    level_names = "".join(f"{'Q' + str(level):>8}" for level in top_down)
    lines = [f"{'split':<8}{'images':>7}{level_names}{'ratio':>9}"]
    for stats in statistics:
        if pixels == "padded":
            shares, ratio = stats.level_pixel_percent, stats.memory_ratio_percent
        else:
            shares, ratio = stats.original_level_pixel_percent, stats.original_memory_ratio_percent
        percent = "".join(f"{shares[level]:>8.2f}" for level in top_down)
        lines.append(f"{stats.name:<8}{stats.num_images:>7}{percent}{ratio:>8.2f}%")
    if show_active:
        lines.append("")
        lines.append("fraction of sites in the quadtree (computed under `gt` propagation):")
        strides = "".join(f"{'/' + str(2**level):>8}" for level in range(num_levels))
        lines.append(f"{'split':<8}{strides}{'overall':>9}")
        for stats in statistics:
            fractions = "".join(f"{f:>8.3f}" for f in stats.gt_active_fraction)
            lines.append(f"{stats.name:<8}{fractions}{stats.gt_active_overall:>9.3f}")
    return "\n".join(lines)


def describe_padding(original_size, statistics):
    (top, bottom), (left, right) = statistics.padding
    height, width = statistics.image_size
    if top + bottom + left + right == 0:
        return f"label maps {height}x{width}, no padding"
    return (
        f"label maps {original_size[0]}x{original_size[1]} padded with void to {height}x{width} "
        f"(rows: {top} top, {bottom} bottom; columns: {left} left, {right} right)"
    )
