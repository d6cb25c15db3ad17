"""Inference assembly: the full-resolution prediction from the per-level quadtree logits.

Reference: K. Chitta, J. M. Alvarez, M. Hebert, "Quadtree Generating Networks", WACV 2020,
Sec. 3.2 "Prediction layers" ("Inference at test-time is conducted by accumulating the
predictions made at the leaf nodes of Q; in case the composite class has the highest confidence
at any leaf node, the class with second-highest confidence is assigned").

Definition. Every pixel takes the prediction of the finest level at which the cell covering it
is active (its *last level*): that cell is a leaf of the quadtree the decoder actually built.
There the pixel gets the best non-composite class, `argmax_c logits[c + 1]`, which is the
predicted class when the cell is predicted a leaf, and the second-best class (the best
non-composite one) when the cell is predicted composite but was not refined further. With
propagation "pred" the last level is where the prediction became non-composite (or level 0);
with "gt" it is the ground-truth leaf level (label assignment given the true structure); with
"all" it is level 0 for every pixel.

Not reproduced: the authors' `pred` inference gives a pixel that is predicted composite at its
last level all-zero logits, i.e. class 0, whatever the network predicted (SPEC 5).
"""

import tensorflow as tf

UNASSIGNED = -1


def _upsample_2x(grid):
    """Nearest 2x upsampling of a `[B, H, W]` map."""
    shape = tf.shape(grid)
    tiled = tf.broadcast_to(
        grid[:, :, tf.newaxis, :, tf.newaxis], [shape[0], shape[1], 2, shape[2], 2]
    )
    return tf.reshape(tiled, [shape[0], 2 * shape[1], 2 * shape[2]])


def _best_class(logits):
    """Best non-composite class id (0..K-1) of K+1 logits (channel 0 = composite)."""
    return tf.argmax(logits[..., 1:], axis=-1, output_type=tf.int32)


def _check_outputs(outputs):
    if not isinstance(outputs, dict) or "logits" not in outputs or "masks" not in outputs:
        raise ValueError(
            "`outputs` must be the decoder's output dict with 'logits' and 'masks' (and "
            f"'indices' for sparse logits). Received: {type(outputs).__name__}"
            + (f" with keys {sorted(outputs)}" if isinstance(outputs, dict) else "")
        )
    logits, masks = list(outputs["logits"]), list(outputs["masks"])
    indices = outputs.get("indices")
    indices = None if indices is None else list(indices)
    if len(logits) != len(masks) or (indices is not None and len(indices) != len(logits)):
        raise ValueError(
            "`outputs` must hold one entry per level in 'logits', 'masks' (and 'indices'). "
            f"Received: {len(logits)} logits, {len(masks)} masks"
            + ("" if indices is None else f", {len(indices)} indices")
        )
    if not logits:
        raise ValueError("`outputs` must hold at least one level. Received: 0 levels")
    for level in range(1, len(masks)):
        fine, coarse = masks[level - 1].shape, masks[level].shape
        if fine[1] is not None and coarse[1] is not None and (
            fine[1] != 2 * coarse[1] or fine[2] != 2 * coarse[2]
        ):
            raise ValueError(
                f"Level {level - 1} must be twice the size of level {level}. "
                f"Received: masks shapes {fine} and {coarse}"
            )
    return logits, masks, indices


def assemble_prediction(outputs, return_levels=False):
    """Full-resolution class map from the decoder outputs (leaves of the decoded quadtree).

    Args:
        outputs: the `QuadtreeDecoder` output dict: per-level "logits" (sparse `[N_l, K+1]` with
            "indices" `[N_l, 3]`, or dense `[B, H_l, W_l, K+1]`) and "masks" `[B, H_l, W_l]`,
            index 0 = full resolution.
        return_levels: also return, per pixel, the level whose prediction it took.

    Returns:
        int32 `[B, H, W]` class ids 0..K-1 (`UNASSIGNED` = -1 for a pixel with no active cell at
        any level, which never happens with the decoder, whose top level is fully active); with
        `return_levels`, `(classes, levels)`, levels int32 `[B, H, W]` (-1 where unassigned).

    Example:
        >>> outputs = decoder(features, propagation="pred")
        >>> prediction = assemble_prediction(outputs)            # (B, H, W)
    """
    logits, masks, indices = _check_outputs(outputs)
    classes = levels = None
    for level in range(len(logits) - 1, -1, -1):
        mask = tf.cast(masks[level], tf.bool)
        if classes is None:
            classes = tf.fill(tf.shape(mask), UNASSIGNED)
            levels = tf.fill(tf.shape(mask), UNASSIGNED)
        else:
            classes, levels = _upsample_2x(classes), _upsample_2x(levels)
        if indices is None:
            classes = tf.where(mask, _best_class(logits[level]), classes)
            levels = tf.where(mask, level, levels)
        else:
            sites = tf.cast(indices[level], tf.int32)
            site_classes = _best_class(logits[level])
            classes = tf.tensor_scatter_nd_update(classes, sites, site_classes)
            site_levels = tf.fill(tf.shape(site_classes), level)
            levels = tf.tensor_scatter_nd_update(levels, sites, site_levels)
    if return_levels:
        return classes, levels
    return classes
