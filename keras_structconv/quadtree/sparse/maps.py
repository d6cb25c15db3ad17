"""Sparse feature maps: checks, conversions to and from dense maps, and 2x2 upsampling (Eq. 11).

A sparse map over a grid of static size `(H, W)` and a batch of B images is `features [N, C]`
(one row per active site) with `indices [N, 3]` int32 `(batch, row, col)` of each row.

Reference: K. Chitta, J. M. Alvarez, M. Hebert, "Quadtree Generating Networks: Efficient
Hierarchical Scene Parsing with Sparse Convolutions", WACV 2020, Sec. 3.1 "Sparse activations"
and Eq. 11.
"""

import numpy as np
import tensorflow as tf

# Order of the four children of a site in `upsample_indices` (row offset, col offset).
CHILD_OFFSETS = ((0, 0), (0, 1), (1, 0), (1, 1))


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def static_spatial_shape(spatial_shape, name="spatial_shape"):
    """`(H, W)` as two positive Python ints (the grid size must be static)."""
    message = (
        f"`{name}` must be a static (height, width) pair of positive integers. "
        f"Received: {name}={spatial_shape!r}"
    )
    try:
        height, width = (int(v) for v in spatial_shape)
    except (TypeError, ValueError):
        raise ValueError(message) from None
    if height < 1 or width < 1:
        raise ValueError(message)
    return height, width


def check_indices_rank(indices):
    """ValueError unless `indices` is `[N, 3]`."""
    if indices.shape.rank != 2 or (indices.shape[1] is not None and indices.shape[1] != 3):
        raise ValueError(
            "`indices` must have shape (N, 3): (batch, row, col) of each active site. "
            f"Received: indices.shape={indices.shape}"
        )


def check_features_rank(features):
    """ValueError unless `features` is `[N, C]`."""
    if features.shape.rank != 2:
        raise ValueError(
            f"`features` must have shape (N, channels). Received: features.shape={features.shape}"
        )


def check_lengths(features, indices, name="features", other="indices"):
    """ValueError (static or eager) / assertion (graph) unless both have the same N rows."""
    n_features, n_indices = features.shape[0], indices.shape[0]
    if n_features is not None and n_indices is not None:
        if n_features != n_indices:
            raise ValueError(
                f"`{name}` and `{other}` must have the same number of rows (one per active "
                f"site). Received: {name}.shape={features.shape}, {other}.shape={indices.shape}"
            )
        return []
    return [
        tf.debugging.assert_equal(
            tf.shape(features)[0],
            tf.shape(indices)[0],
            message=f"`{name}` and `{other}` must have the same number of rows",
        )
    ]


def check_sparse_map(features, indices, spatial_shape, batch_size=None):
    """Check a sparse map: `indices` in range of the grid, one row of `features` per index.

    Eagerly (and for static shapes) raises ValueError; in graph mode with dynamic shapes returns
    runtime assertions (`tf.errors.InvalidArgumentError` when they fail) to use as control
    dependencies.

    Args:
        features: `[N, C]` tensor, or None to check `indices` alone.
        indices: `[N, 3]` integer `(batch, row, col)`.
        spatial_shape: static `(H, W)` of the grid.
        batch_size: optional number of images (checks the batch column too).

    Returns:
        A list of assertion ops (empty eagerly or when nothing is left to check at run time).

    Example:

    >>> check_sparse_map(tf.zeros([1, 2]), tf.constant([[0, 3, 1]]), (4, 4))
    []
    """
    height, width = static_spatial_shape(spatial_shape)
    indices = tf.convert_to_tensor(indices)
    check_indices_rank(indices)
    checks = [] if features is None else check_lengths(tf.convert_to_tensor(features), indices)
    indices = tf.cast(indices, tf.int64)
    upper = tf.constant([np.iinfo(np.int64).max, height, width], tf.int64)
    if batch_size is not None:
        upper = tf.concat([tf.reshape(tf.cast(batch_size, tf.int64), [1]), upper[1:]], axis=0)
    in_range = tf.reduce_all((indices >= 0) & (indices < upper))
    if tf.executing_eagerly():
        if not bool(in_range):
            outside = ~tf.reduce_all((indices >= 0) & (indices < upper), axis=1)
            bad = tf.boolean_mask(indices, outside)[:5]
            raise ValueError(
                "`indices` must lie in the grid: 0 <= batch"
                + ("" if batch_size is None else f" < {int(batch_size)}")
                + f", 0 <= row < {height}, 0 <= col < {width}. "
                f"Received: indices out of range such as {bad.numpy().tolist()}"
            )
        return checks
    return checks + [
        tf.debugging.Assert(
            in_range,
            [
                f"`indices` must lie in the grid (rows < {height}, cols < {width}"
                + ("" if batch_size is None else ", batch < batch_size")
                + "). Received: min/max",
                tf.reduce_min(indices, axis=0),
                tf.reduce_max(indices, axis=0),
            ],
        )
    ]


def with_checks(tensor, checks):
    """`tensor`, computed after the assertions `checks` (graph mode) have run."""
    if not checks:
        return tensor
    with tf.control_dependencies(checks):
        return tf.identity(tensor)


# --------------------------------------------------------------------------------------------
# Conversions
# --------------------------------------------------------------------------------------------


def sparsify(dense, mask):
    """The sparse map of a dense map at the sites where `mask` is true.

    Args:
        dense: `[B, H, W, C]` tensor.
        mask: `[B, H, W]` boolean (or numeric, non-zero = active) tensor.

    Returns:
        `(features [N, C], indices [N, 3] int32)`, sites in row-major `(batch, row, col)` order.

    Example:

    >>> features, indices = sparsify(tf.ones([1, 2, 2, 3]), [[[True, False], [False, True]]])
    >>> indices.numpy().tolist()
    [[0, 0, 0], [0, 1, 1]]
    """
    dense = tf.convert_to_tensor(dense)
    mask = tf.convert_to_tensor(mask)
    if dense.shape.rank != 4 or mask.shape.rank != 3:
        raise ValueError(
            "`dense` must have shape (batch, height, width, channels) and `mask` (batch, height, "
            f"width). Received: dense.shape={dense.shape}, mask.shape={mask.shape}"
        )
    if mask.dtype != tf.bool:
        mask = tf.not_equal(mask, tf.zeros([], mask.dtype))
    indices = tf.cast(tf.where(mask), tf.int32)
    return tf.gather_nd(dense, indices), indices


def densify(features, indices, batch_size, spatial_shape):
    """The dense map `[B, H, W, C]` of a sparse map: its features at the active sites, 0 elsewhere.

    Args:
        features: `[N, C]`.
        indices: `[N, 3]` int32 `(batch, row, col)`, each site at most once.
        batch_size: B (int or scalar tensor).
        spatial_shape: static `(H, W)`.

    Raises:
        ValueError: indices out of the grid or a row-count mismatch (eagerly / static shapes;
            graph mode: `InvalidArgumentError` at run time).

    Example:

    >>> densify(tf.ones([1, 1]), tf.constant([[0, 1, 0]]), 1, (2, 2))[0, ..., 0].numpy()
    array([[0., 0.],
           [1., 0.]], dtype=float32)
    """
    height, width = static_spatial_shape(spatial_shape)
    features = tf.convert_to_tensor(features)
    indices = tf.convert_to_tensor(indices)
    check_features_rank(features)
    checks = check_sparse_map(features, indices, (height, width), batch_size=batch_size)
    indices = with_checks(tf.cast(indices, tf.int32), checks)
    shape = tf.stack(
        [tf.cast(batch_size, tf.int32), height, width, tf.shape(features)[1]], axis=0
    )
    return tf.scatter_nd(indices, features, shape)


def gather_dense(dense, indices):
    """The features of a dense map `[B, H, W, C]` at the sites `indices [N, 3]`: `[N, C]`.

    Out-of-range indices raise (ValueError eagerly; an assertion in graph mode). The gradient with
    respect to `dense` is dense (zero at the other sites).

    Example:

    >>> gather_dense(tf.reshape(tf.range(4.0), [1, 2, 2, 1]), [[0, 1, 1]]).numpy()
    array([[3.]], dtype=float32)
    """
    dense = tf.convert_to_tensor(dense)
    indices = tf.convert_to_tensor(indices)
    if dense.shape.rank != 4:
        raise ValueError(
            f"`dense` must have shape (batch, height, width, channels). "
            f"Received: dense.shape={dense.shape}"
        )
    height, width = dense.shape[1], dense.shape[2]
    if height is None or width is None:
        raise ValueError(f"`dense` needs a static height and width. Received: {dense.shape}")
    checks = check_sparse_map(None, indices, (height, width), batch_size=tf.shape(dense)[0])
    indices = with_checks(tf.cast(indices, tf.int32), checks)
    return tf.gather_nd(dense, indices)


def all_sites(batch_size, spatial_shape):
    """Indices `[B*H*W, 3]` of every site, row-major (the order of `reshape(x, [-1, C])`)."""
    mask = tf.ones(tf.stack([batch_size, spatial_shape[0], spatial_shape[1]]), tf.bool)
    return tf.cast(tf.where(mask), tf.int32)


def active_mask(indices, batch_size, spatial_shape):
    """Dense boolean mask `[B, H, W]` of the sites in `indices`."""
    shape = tf.stack([batch_size, spatial_shape[0], spatial_shape[1]])
    ones = tf.ones_like(indices[:, 0], dtype=tf.uint8)
    return tf.scatter_nd(indices, ones, shape) > 0


# --------------------------------------------------------------------------------------------
# 2x2 nearest upsampling (Eq. 11)
# --------------------------------------------------------------------------------------------


def upsample_indices(indices):
    """The four children `(2r + i, 2c + j)` of every site, `[4N, 3]`, parent by parent (Eq. 11).

    Example:

    >>> upsample_indices([[0, 1, 2]]).numpy().tolist()
    [[0, 2, 4], [0, 2, 5], [0, 3, 4], [0, 3, 5]]
    """
    indices = tf.convert_to_tensor(indices, tf.int32)
    check_indices_rank(indices)
    scale = tf.constant([1, 2, 2], tf.int32)
    offsets = tf.constant([(0, r, c) for r, c in CHILD_OFFSETS], tf.int32)  # [4, 3]
    children = indices[:, tf.newaxis, :] * scale + offsets
    return tf.reshape(children, [-1, 3])


def upsample_features(features):
    """Each row repeated four times, aligned with `upsample_indices`: `[4N, C]`."""
    features = tf.convert_to_tensor(features)
    shape = tf.shape(features)
    repeated = tf.broadcast_to(features[:, tf.newaxis, :], [shape[0], 4, shape[1]])
    return tf.reshape(repeated, [-1, shape[1]])


def upsample_dense(x):
    """2x2 nearest upsampling of `[B, H, W, C]` (each site copied to its four children)."""
    shape = tf.shape(x)
    tiled = tf.broadcast_to(
        x[:, :, tf.newaxis, :, tf.newaxis, :],
        [shape[0], shape[1], 2, shape[2], 2, shape[3]],
    )
    return tf.reshape(tiled, [shape[0], 2 * shape[1], 2 * shape[2], shape[3]])
