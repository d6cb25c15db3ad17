"""Quadtree levels of the QGN decoder: their sizes, and which sites propagate to the finer level.

Levels are numbered as in `tpyramid_labels`: level 0 is full resolution, level L-1 the encoder
output (stride 2^(L-1)). The *propagated* sites of level l+1 are upsampled to their four children,
the active sites of level l, under one of three schemes:
- "all": every site (the dense baseline);
- "gt": the sites whose ground-truth T-pyramid label is composite (training; an upper-bound
  evaluation), given as `composite_masks` (see `composite_masks_from_labels`);
- "pred": the sites the decoder itself predicts composite (argmax of the level's logits is 0;
  inference).

Reference: K. Chitta, J. M. Alvarez, M. Hebert, "Quadtree Generating Networks: Efficient
Hierarchical Scene Parsing with Sparse Convolutions", WACV 2020, Sec. 3.3.
"""

import tensorflow as tf

from keras_structconv._validation import one_of

PROPAGATIONS = ("all", "gt", "pred")


def check_propagation(propagation):
    """`propagation` if it is one of `PROPAGATIONS`, else ValueError."""
    return one_of(propagation, "propagation", PROPAGATIONS)


def composite_masks_from_labels(level_labels):
    """Ground-truth composite masks for `propagation="gt"` from `tpyramid_labels` output.

    Args:
        level_labels: per-level training labels, index 0 = full resolution (0 = composite).

    Returns:
        A list of `len(level_labels) - 1` boolean tensors, entry i for level i + 1 (the layout of
        the decoder's `encoder_features`): true where the cell is composite.

    Example:
        >>> masks = composite_masks_from_labels(tpyramid_labels(labels, 6, num_classes=11))
    """
    return [tf.equal(tf.cast(labels, tf.int32), 0) for labels in list(level_labels)[1:]]


def sparse_level_labels(level_labels, indices):
    """The training labels at the active sites of each level: `[labels_l[indices_l]]`.

    Use with the decoder's sparse outputs and `quadtree.level_cross_entropy(labels, logits)`.

    Example:
        >>> labels = sparse_level_labels(tpyramid_labels(maps, 6, 11), outputs["indices"])
    """
    if len(level_labels) != len(indices):
        raise ValueError(
            "`level_labels` and `indices` must have one entry per level. "
            f"Received: {len(level_labels)} and {len(indices)} levels"
        )
    return [
        tf.gather_nd(tf.cast(labels, tf.int32), tf.cast(sites, tf.int32))
        for labels, sites in zip(level_labels, indices, strict=True)
    ]


def level_spatial_shapes(feature_shapes, num_levels):
    """The `(H_l, W_l)` of levels 0..L-1 from the shapes of the encoder features at levels
    1..L-1 (strides 2..2^(L-1)); ValueError unless they halve from one level to the next."""
    shapes = [tuple(s) for s in feature_shapes]
    expected = num_levels - 1
    if len(shapes) != expected or any(len(s) != 4 for s in shapes):
        raise ValueError(
            f"`encoder_features` must be a list of {expected} maps (batch, height, width, "
            f"channels), strides 2..{2 ** (num_levels - 1)}. Received shapes: {shapes}"
        )
    top_height, top_width = shapes[-1][1], shapes[-1][2]
    if top_height is None or top_width is None:
        raise ValueError(
            f"`encoder_features` need static heights and widths. Received shapes: {shapes}"
        )
    for index, shape in enumerate(shapes):
        factor = 2 ** (num_levels - 2 - index)
        if shape[1:3] != (top_height * factor, top_width * factor) or shape[3] is None:
            raise ValueError(
                f"`encoder_features[{index}]` (stride {2 ** (index + 1)}) must be "
                f"{factor}x the size of the stride-{2 ** (num_levels - 1)} map, "
                f"{top_height * factor}x{top_width * factor}, with known channels. "
                f"Received shapes: {shapes}"
            )
    return [
        (top_height * 2 ** (num_levels - 1 - level), top_width * 2 ** (num_levels - 1 - level))
        for level in range(num_levels)
    ]


def check_composite_masks(composite_masks, features):
    """The masks of `propagation="gt"` as booleans, one per encoder feature map (levels
    1..L-1), each of its map's size; ValueError otherwise."""
    expected = len(features)
    if composite_masks is None or len(composite_masks) != expected:
        raise ValueError(
            f'propagation="gt" needs `composite_masks`: a list of {expected} boolean masks '
            "(batch, height, width), entry i for level i+1 "
            "(`composite_masks_from_labels(tpyramid_labels(...))`). Received: "
            f"composite_masks={'None' if composite_masks is None else len(composite_masks)}"
            f"{'' if composite_masks is None else ' entries'}"
        )
    masks = []
    for index, (mask, feature) in enumerate(zip(composite_masks, features, strict=True)):
        mask = tf.convert_to_tensor(mask)
        if mask.shape.rank != 3 or tuple(mask.shape[1:]) != tuple(feature.shape[1:3]):
            raise ValueError(
                f"`composite_masks[{index}]` must have shape (batch, "
                f"{feature.shape[1]}, {feature.shape[2]}) (level {index + 1}). "
                f"Received: composite_masks[{index}].shape={mask.shape}"
            )
        masks.append(mask if mask.dtype == tf.bool else tf.not_equal(mask, 0))
    return masks


def propagated_sites(propagation, level, indices, logits, composite_masks):
    """Which sites `indices` of level `level` propagate to level - 1 (None: every site).

    Args:
        propagation: "all", "gt" or "pred".
        level: the level of `indices` and `logits` (>= 1).
        indices: `[N, 3]` active sites of the level.
        logits: `[N, K+1]` the level's predictions ("pred": composite where the argmax is 0).
        composite_masks: the checked masks of "gt" (`check_composite_masks`), else unused.
    """
    if propagation == "all":
        return None
    if propagation == "gt":
        return tf.gather_nd(composite_masks[level - 1], indices)
    return tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), 0)
