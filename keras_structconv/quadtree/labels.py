"""Quadtree labels: T-pyramid training labels and the compact quadtree of a label map.

Reference: K. Chitta, J. M. Alvarez, M. Hebert, "Quadtree Generating Networks: Efficient
Hierarchical Scene Parsing with Sparse Convolutions", WACV 2020 (arXiv:1907.11821), Sec. 3.1,
Eq. 1-3.

Definition. Level 0 is the label map; a cell at level l+1 covers 2x2 cells of level l and takes
their value when all four agree, else it is *composite* (merge operator M, Eq. 2-3). A cell is a
*leaf* of the quadtree when it is not composite and it is at the top level or its parent is
composite. Ignore pixels are a value like any other: an ignore pixel mixed with a class makes the
cell composite, and a cell whose pixels are all ignore is an ignored leaf.

Label conventions (SPEC 5). Label maps (what dataset loaders emit) hold class ids 0..K-1 and an
ignore value (255). Training labels hold 0 = composite, c+1 = class c, -1 = ignore or not
supervised at this level.

Two data forms are built here:
- `tpyramid_labels`: the per-level training labels, dense, one tensor per level, for the loss.
- `encode_quadtree` / `decode_quadtree`: the compact quadtree (only the leaf cells of each level
  with their class, ragged per image) and its lossless decode back to the label map.
"""

import dataclasses

import numpy as np
import tensorflow as tf

COMPOSITE = 0
NOT_SUPERVISED = -1
# Internal value of an ignore pixel in the value pyramid (classes are stored as c + 1 > 0 and
# composite as 0, so -1 keeps every value distinct and doubles as the training label).
_IGNORED = -1


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def validate_settings(num_levels, num_classes, ignore_index):
    """ValueError unless num_levels >= 1, num_classes >= 1 and ignore_index is not a class id."""
    if isinstance(num_levels, bool) or not isinstance(num_levels, (int, np.integer)):
        raise ValueError(
            f"`num_levels` must be an integer >= 1. Received: num_levels={num_levels!r}"
        )
    if num_levels < 1:
        raise ValueError(f"`num_levels` must be an integer >= 1. Received: num_levels={num_levels}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise ValueError(
            f"`num_classes` must be an integer >= 1. Received: num_classes={num_classes!r}"
        )
    if num_classes < 1:
        raise ValueError(
            f"`num_classes` must be an integer >= 1. Received: num_classes={num_classes}"
        )
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
        raise ValueError(
            f"`ignore_index` must be an integer. Received: ignore_index={ignore_index!r}"
        )
    if 0 <= ignore_index < num_classes:
        raise ValueError(
            "`ignore_index` must not be a class id in [0, num_classes - 1]. "
            f"Received: ignore_index={ignore_index}, num_classes={num_classes}"
        )


def _as_label_tensor(labels):
    """`labels` as an int32 tensor of rank 3 (B, H, W), plus whether a batch axis was added."""
    labels = tf.convert_to_tensor(labels)
    if not labels.dtype.is_integer:
        raise ValueError(
            "`labels` must have an integer dtype (class ids). "
            f"Received: labels.dtype={labels.dtype.name}"
        )
    rank = labels.shape.rank
    if rank not in (2, 3):
        raise ValueError(
            "`labels` must have rank 3 (batch, height, width) or rank 2 (height, width). "
            f"Received: labels.shape={labels.shape}"
        )
    labels = tf.cast(labels, tf.int32)
    unbatched = rank == 2
    if unbatched:
        labels = labels[tf.newaxis]
    return labels, unbatched


def _padding_hint(size, factor):
    return -(-size // factor) * factor


def _check_divisible(labels, num_levels):
    """Raise (static shape) or assert (dynamic shape) that H and W are multiples of 2^(L-1)."""
    factor = 2 ** (num_levels - 1)
    height, width = labels.shape[1], labels.shape[2]
    if height is not None and width is not None:
        if height % factor or width % factor:
            raise ValueError(
                f"`labels` height and width must be divisible by 2**(num_levels - 1) = {factor}. "
                f"Pad the label maps with the ignore value to "
                f"{_padding_hint(height, factor)}x{_padding_hint(width, factor)} "
                "(`keras_structconv.quadtree.pad_to_multiple(labels, "
                f"{factor}, ignore_index)`) or crop them. "
                f"Received: labels.shape={tuple(labels.shape)}, num_levels={num_levels}"
            )
        return labels
    shape = tf.shape(labels)
    check = tf.debugging.assert_equal(
        (shape[1] % factor) + (shape[2] % factor),
        0,
        message=(
            f"`labels` height and width must be divisible by 2**(num_levels - 1) = {factor}; "
            "pad the label maps with the ignore value (pad_to_multiple) or crop them."
        ),
    )
    with tf.control_dependencies([check]):
        return tf.identity(labels)


def _check_values(labels, num_classes, ignore_index):
    """Every value is a class id 0..K-1 or the ignore value (eager: ValueError; graph: assert)."""
    valid = ((labels >= 0) & (labels < num_classes)) | (labels == ignore_index)
    if tf.executing_eagerly():
        if not bool(tf.reduce_all(valid)):
            bad = np.unique(tf.boolean_mask(labels, ~valid).numpy())
            shown = ", ".join(str(v) for v in bad[:10]) + (", ..." if bad.size > 10 else "")
            raise ValueError(
                f"`labels` must hold class ids in [0, {num_classes - 1}] or the ignore value "
                f"{ignore_index}. Received: labels with values {{{shown}}} "
                f"(num_classes={num_classes}, ignore_index={ignore_index})"
            )
        return labels
    check = tf.debugging.Assert(
        tf.reduce_all(valid),
        [
            f"`labels` must hold class ids in [0, {num_classes - 1}] or the ignore value "
            f"{ignore_index}. Received: labels min/max",
            tf.reduce_min(labels),
            tf.reduce_max(labels),
        ],
    )
    with tf.control_dependencies([check]):
        return tf.identity(labels)


# --------------------------------------------------------------------------------------------
# Pyramid construction (vectorised: one loop iteration per level, never per pixel)
# --------------------------------------------------------------------------------------------


def _merge(values):
    """Merge operator M (Eq. 2) on every 2x2 block: the common value, else composite (0)."""
    shape = tf.shape(values)
    blocks = tf.reshape(values, [shape[0], shape[1] // 2, 2, shape[2] // 2, 2])
    low = tf.reduce_min(blocks, axis=[2, 4])
    high = tf.reduce_max(blocks, axis=[2, 4])
    return tf.where(low == high, high, COMPOSITE)


def _upsample(cells, factor):
    """Nearest upsampling of (B, h, w) by an integer factor (each cell becomes factor x factor)."""
    if factor == 1:
        return cells
    shape = tf.shape(cells)
    tiled = tf.broadcast_to(
        cells[:, :, tf.newaxis, :, tf.newaxis],
        [shape[0], shape[1], factor, shape[2], factor],
    )
    return tf.reshape(tiled, [shape[0], shape[1] * factor, shape[2] * factor])


def _pyramid(labels, num_levels, num_classes, ignore_index):
    """Validated value pyramid and the "parent is composite or top level" masks.

    Returns `(values, heads, unbatched)`: `values[l]` is (B, H/2^l, W/2^l) int32 with -1 for an
    ignored cell, 0 composite, c+1 class c; `heads[l]` is True where the cell is the top level or
    its parent is composite, i.e. where the cell exists in the quadtree (a leaf or a composite
    node); `values[l]` at those cells is the training label.
    """
    validate_settings(num_levels, num_classes, ignore_index)
    labels, unbatched = _as_label_tensor(labels)
    labels = _check_divisible(labels, num_levels)
    labels = _check_values(labels, num_classes, ignore_index)
    values = [tf.where(labels == ignore_index, _IGNORED, labels + 1)]
    for _ in range(num_levels - 1):
        values.append(_merge(values[-1]))
    heads = [None] * num_levels
    heads[-1] = tf.ones_like(values[-1], dtype=tf.bool)
    for level in range(num_levels - 2, -1, -1):
        heads[level] = _upsample(values[level + 1] == COMPOSITE, 2)
    return values, heads, unbatched


def tpyramid_labels(labels, num_levels, num_classes, ignore_index=255):
    """Per-level quadtree training labels of a batch of label maps (T-pyramid, Eq. 2-3).

    Each cell is supervised only at the level where it enters the quadtree: at the top level,
    or where its parent is composite. There it is labelled 0 (composite: its children are
    supervised one level below), c+1 (a leaf of class c) or -1 (a leaf whose pixels are all
    ignore). Every cell below a leaf is -1. This follows the authors' released code; the
    paper's T-pyramid (a complete quadtree) labels every cell of every level instead.

    Vectorised TensorFlow (one step per level), usable in graph mode and inside `tf.data`
    (`dataset.map(lambda x, y: (x, tpyramid_labels(y, 6, 11)))`).

    Args:
        labels: integer tensor `(batch, height, width)` or `(height, width)` of class ids
            `0..num_classes-1` or `ignore_index`. Height and width must be multiples of
            `2**(num_levels - 1)` (pad with `pad_to_multiple`).
        num_levels: number of quadtree levels (>= 1); level 0 is full resolution.
        num_classes: number of classes K (the network predicts K + 1 channels per level).
        ignore_index: label value of ignored pixels (not a class id).

    Returns:
        A tuple of `num_levels` int32 tensors, index 0 = full resolution, index l of shape
        `(batch, height / 2**l, width / 2**l)` (no batch axis for a rank-2 input), values in
        `{-1, 0, 1, ..., num_classes}`.

    Raises:
        ValueError: bad `num_levels`/`num_classes`/`ignore_index`, rank not 2 or 3, a non-integer
            dtype, a static size not divisible by `2**(num_levels - 1)`, or (eagerly) a value that
            is neither a class id nor `ignore_index`. In graph mode the last two checks (for
            dynamic sizes and values) are runtime assertions (`tf.errors.InvalidArgumentError`).

    Example:
        >>> labels = tf.constant([[[0, 0], [0, 1]]])
        >>> [t.numpy().tolist() for t in tpyramid_labels(labels, num_levels=2, num_classes=2)]
        [[[[1, 1], [1, 2]]], [[[0]]]]
    """
    values, heads, unbatched = _pyramid(labels, num_levels, num_classes, ignore_index)
    outputs = [
        tf.where(head, value, NOT_SUPERVISED) for value, head in zip(values, heads, strict=True)
    ]
    if unbatched:
        outputs = [output[0] for output in outputs]
    return tuple(outputs)


def _leaf_masks(labels, num_levels, num_classes, ignore_index):
    """Per-level values, quadtree-cell masks and leaf masks (see `_pyramid`); always batched."""
    values, heads, _ = _pyramid(labels, num_levels, num_classes, ignore_index)
    leaves = [head & (value != COMPOSITE) for value, head in zip(values, heads, strict=True)]
    return values, heads, leaves


def quadtree_cell_masks(labels, num_levels, num_classes, ignore_index=255):
    """Where the quadtree's leaves and cells are, per level.

    Args: as `tpyramid_labels` (a rank-2 input counts as a batch of one).

    Returns:
        `(leaves, tree_cells)`, two tuples of `num_levels` bool tensors, index l of shape
        `(batch, height / 2**l, width / 2**l)`: True at the leaves (ignored leaves included),
        and at the cells present in the quadtree (leaves plus composite nodes; below the top
        level these are the sites a decoder computes under `gt` propagation).
    """
    _, heads, leaves = _leaf_masks(labels, num_levels, num_classes, ignore_index)
    return tuple(leaves), tuple(heads)


def quadtree_cell_counts(labels, num_levels, num_classes, ignore_index=255):
    """Leaf cells and quadtree cells (leaf or composite) per image and level.

    Args: as `tpyramid_labels` (a rank-2 input counts as a batch of one).

    Returns:
        `(leaf_cells, tree_cells)`, two int64 tensors of shape `(batch, num_levels)`: the counts
        of the masks of `quadtree_cell_masks`.
    """
    leaves, heads = quadtree_cell_masks(labels, num_levels, num_classes, ignore_index)

    def count(masks):
        return tf.stack([tf.reduce_sum(tf.cast(m, tf.int64), axis=[1, 2]) for m in masks], axis=1)

    return count(leaves), count(heads)


# --------------------------------------------------------------------------------------------
# Compact quadtree
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CompactQuadtree:
    """The leaf cells of a batch of quadtrees (Eq. 1 with only the leaves stored).

    Attributes:
        positions: tuple, one entry per level (index 0 = full resolution), of int32
            `tf.RaggedTensor` of shape `(batch, None, 2)`: the (row, col) of each leaf in that
            level's grid (a leaf at level l covers pixels `[row*2**l, (row+1)*2**l)` x
            `[col*2**l, (col+1)*2**l)`), in row-major order.
        classes: tuple of int32 `tf.RaggedTensor` of shape `(batch, None)`, aligned with
            `positions`: the class id of each leaf, `ignore_index` for ignored leaves.
        image_size: `(height, width)` of the label maps.
        ignore_index: label value of ignored pixels.
    """

    positions: tuple
    classes: tuple
    image_size: tuple
    ignore_index: int

    @property
    def num_levels(self):
        return len(self.positions)

    @property
    def batch_size(self):
        return int(self.positions[0].nrows())

    def num_leaves(self):
        """int64 tensor `(batch, num_levels)`: leaf cells per image and level."""
        return tf.stack([c.row_lengths() for c in self.classes], axis=1)

    def decode(self, dtype="int32"):
        """The label maps, `(batch, height, width)`; see `decode_quadtree`."""
        return decode_quadtree(self, dtype=dtype)


def encode_quadtree(labels, num_levels, num_classes, ignore_index=255):
    """Compact quadtree of each label map: its leaf cells per level with their class.

    Args: as `tpyramid_labels`; the spatial size must be static (eager use, data preparation).

    Returns:
        A `CompactQuadtree` (batch of one for a rank-2 input). `decode_quadtree` inverts it
        exactly.

    Example:
        >>> tree = encode_quadtree(np.zeros((1, 4, 4), "uint8"), num_levels=3, num_classes=2)
        >>> tree.num_leaves().numpy().tolist()   # one 4x4 leaf at level 2
        [[0, 0, 1]]
    """
    values, _, leaves = _leaf_masks(labels, num_levels, num_classes, ignore_index)
    height, width = values[0].shape[1], values[0].shape[2]
    if height is None or width is None:
        raise ValueError(
            "`encode_quadtree` needs label maps of static spatial size. "
            f"Received: labels.shape={values[0].shape}"
        )
    batch = tf.shape(values[0], out_type=tf.int64)[0]
    positions, classes = [], []
    for value, leaf in zip(values, leaves, strict=True):
        where = tf.cast(tf.where(leaf), tf.int32)  # (n, 3) batch, row, col; row-major order
        image_ids = tf.cast(where[:, 0], tf.int64)
        leaf_values = tf.gather_nd(value, where)
        leaf_classes = tf.where(leaf_values == _IGNORED, ignore_index, leaf_values - 1)
        positions.append(tf.RaggedTensor.from_value_rowids(where[:, 1:], image_ids, nrows=batch))
        classes.append(tf.RaggedTensor.from_value_rowids(leaf_classes, image_ids, nrows=batch))
    return CompactQuadtree(
        positions=tuple(positions),
        classes=tuple(classes),
        image_size=(int(height), int(width)),
        ignore_index=int(ignore_index),
    )


def decode_quadtree(tree, dtype="int32"):
    """Label maps `(batch, height, width)` from a `CompactQuadtree` (lossless inverse of
    `encode_quadtree`): every pixel takes the class of the one leaf that covers it.

    Raises:
        ValueError: (eagerly) when the leaves do not cover every pixel exactly once.
    """
    height, width = tree.image_size
    batch = tree.batch_size
    decoded = coverage = None
    # Coarse to fine: upsample what the coarser levels decoded by 2, add this level's leaves.
    for level in range(tree.num_levels - 1, -1, -1):
        grid = [batch, height >> level, width >> level]
        positions = tree.positions[level]
        indices = tf.concat(
            [tf.cast(positions.value_rowids(), tf.int32)[:, tf.newaxis], positions.flat_values],
            axis=1,
        )
        leaf_classes = tree.classes[level].flat_values
        # Shift by one so that 0 means "no leaf here"; removed at the end.
        cells = tf.scatter_nd(indices, leaf_classes + 1, grid)
        present = tf.scatter_nd(indices, tf.ones_like(leaf_classes), grid)
        if decoded is None:
            decoded, coverage = cells, present
        else:
            decoded = _upsample(decoded, 2) + cells
            coverage = _upsample(coverage, 2) + present
    if tf.executing_eagerly() and not bool(tf.reduce_all(coverage == 1)):
        uncovered = int(tf.reduce_sum(tf.cast(coverage == 0, tf.int32)))
        overlapped = int(tf.reduce_sum(tf.cast(coverage > 1, tf.int32)))
        raise ValueError(
            "The quadtree leaves must cover every pixel exactly once. "
            f"Received: {uncovered} uncovered and {overlapped} multiply covered pixels"
        )
    return tf.cast(decoded - 1, dtype)


def pad_to_multiple(labels, multiple, ignore_index=255, placement="end"):
    """Pad label maps `(..., height, width)` with `ignore_index` to multiples of `multiple`.

    Args:
        labels: integer tensor or array with the spatial axes last.
        multiple: target multiple of height and width (e.g. `2**(num_levels - 1)`).
        ignore_index: padding value.
        placement: "end" pads at the bottom and right; "symmetric" splits the padding between
            both sides (the extra row/column at the end).

    Returns:
        `(padded, padding)`: the padded tensor and `((top, bottom), (left, right))`.
    """
    if placement not in ("end", "symmetric"):
        raise ValueError(
            f"`placement` must be 'end' or 'symmetric'. Received: placement={placement!r}"
        )
    if isinstance(multiple, bool) or not isinstance(multiple, (int, np.integer)) or multiple < 1:
        raise ValueError(f"`multiple` must be an integer >= 1. Received: multiple={multiple!r}")
    labels = tf.convert_to_tensor(labels)
    if labels.shape.rank is None or labels.shape.rank < 2:
        raise ValueError(
            "`labels` must have rank >= 2 (..., height, width). "
            f"Received: labels.shape={labels.shape}"
        )
    height, width = labels.shape[-2], labels.shape[-1]
    if height is None or width is None:
        raise ValueError(
            f"`labels` needs a static spatial size. Received: labels.shape={labels.shape}"
        )
    padding = []
    for size in (height, width):
        total = _padding_hint(size, multiple) - size
        before = total // 2 if placement == "symmetric" else 0
        padding.append((before, total - before))
    paddings = [(0, 0)] * (labels.shape.rank - 2) + padding
    padded = tf.pad(labels, paddings, constant_values=tf.cast(ignore_index, labels.dtype))
    return padded, tuple(padding)
