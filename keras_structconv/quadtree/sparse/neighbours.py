"""The neighbour table of a sparse map: for every active site and kernel tap, its neighbour's row.

Built once per quadtree level and shared by every submanifold convolution of that level, with a
sort and binary searches over the N active sites (no dense grid is allocated).

Reference: B. Graham, M. Engelcke, L. van der Maaten, "3D Semantic Segmentation with Submanifold
Sparse Convolutional Networks", CVPR 2018, Sec. 3 (the rule books); K. Chitta, J. M. Alvarez,
M. Hebert, "Quadtree Generating Networks", WACV 2020, Eq. 10.
"""

import numpy as np
import tensorflow as tf

from keras_structconv.layers._portable import portable_ops_enabled
from keras_structconv.quadtree.sparse.maps import (
    check_sparse_map,
    static_spatial_shape,
    with_checks,
)

# Enough halvings to empty any interval of an int32-indexed array.
_MAX_SEARCH_STEPS = 31


def kernel_offsets(kernel_size):
    """Tap offsets `(d_row, d_col)` in the order of a `(K, K, ...)` kernel's first two axes.

    Example:

    >>> kernel_offsets(3)[:4]
    [(-1, -1), (-1, 0), (-1, 1), (0, -1)]
    """
    radius = kernel_size // 2
    return [(ky - radius, kx - radius) for ky in range(kernel_size) for kx in range(kernel_size)]


def check_kernel_size(kernel_size, name="kernel_size"):
    """`kernel_size` as a positive odd int (submanifold convolutions keep every site centred)."""
    if (
        isinstance(kernel_size, bool)
        or not isinstance(kernel_size, (int, np.integer))
        or kernel_size < 1
        or kernel_size % 2 == 0
    ):
        raise ValueError(
            f"`{name}` must be a positive odd integer (submanifold convolutions keep every "
            f"site centred). Received: {name}={kernel_size!r}"
        )
    return int(kernel_size)


def lower_bound(sorted_values, queries):
    """For each query, the number of `sorted_values` smaller than it (`side="left"`).

    Equals `tf.searchsorted(sorted_values, queries, side="left")` for 1-D tensors. Outside
    `keras_structconv.layers.portable_ops()` it is that op (TensorFlow's `LowerBound`); inside
    it, which TFLite's builtin set and ONNX lack, a branch-free binary search of a fixed number
    of steps made of gathers, comparisons and selects.

    Args:
        sorted_values: 1-D tensor sorted in ascending order.
        queries: 1-D tensor of the same dtype.

    Returns:
        int32 tensor shaped like `queries`, each entry in `[0, len(sorted_values)]`.

    Example:

    >>> lower_bound(tf.constant([1, 3, 3, 7]), tf.constant([0, 3, 4, 9])).numpy()
    array([0, 1, 3, 4], dtype=int32)
    """
    sorted_values = tf.convert_to_tensor(sorted_values)
    queries = tf.convert_to_tensor(queries, sorted_values.dtype)
    if not portable_ops_enabled():
        return tf.searchsorted(
            sorted_values[tf.newaxis], queries[tf.newaxis], side="left", out_type=tf.int32
        )[0]
    return _binary_search_lower_bound(sorted_values, queries)


def _binary_search_lower_bound(sorted_values, queries):
    count = tf.shape(sorted_values, out_type=tf.int32)[0]
    # One padding element: a probe at `count` (only when low == high == count) stays in range.
    padded = tf.concat([sorted_values, tf.zeros([1], sorted_values.dtype)], axis=0)
    low = tf.zeros_like(queries, tf.int32)
    high = tf.fill(tf.shape(queries), count)
    length = sorted_values.shape[0]
    steps = _MAX_SEARCH_STEPS if length is None else int(length).bit_length()
    for _ in range(steps):
        middle = (low + high) // 2
        go_right = (low < high) & (tf.gather(padded, middle) < queries)
        low = tf.where(go_right, middle + 1, low)
        high = tf.where(go_right, high, middle)
    return low


def neighbour_table(indices, spatial_shape, kernel_size=3):
    """For every active site and kernel tap, the row of the active neighbour, or N if none.

    Built with a sort and binary searches over the N sites (no dense grid is allocated), in any
    site order. Indices must be unique and in range (checked like `check_sparse_map`).

    Args:
        indices: `[N, 3]` int32 `(batch, row, col)`.
        spatial_shape: static `(H, W)` of the grid.
        kernel_size: odd K.

    Returns:
        int32 `[N, K*K]`; column t is the tap `kernel_offsets(K)[t]`, i.e. kernel element
        `(t // K, t % K)`. Entry N means "inactive or outside the grid" (reads as zero).

    Example:

    >>> neighbour_table(tf.constant([[0, 0, 0], [0, 0, 1]]), (2, 2)).numpy()[0].tolist()
    [2, 2, 2, 2, 0, 1, 2, 2, 2]
    """
    height, width = static_spatial_shape(spatial_shape)
    kernel_size = check_kernel_size(kernel_size)
    indices = tf.convert_to_tensor(indices, tf.int32)
    checks = check_sparse_map(None, indices, (height, width))
    indices = with_checks(indices, checks)
    count = tf.shape(indices)[0]
    wide = tf.cast(indices, tf.int64)
    keys = (wide[:, 0] * height + wide[:, 1]) * width + wide[:, 2]
    order = tf.argsort(keys, stable=True)
    sorted_keys = tf.gather(keys, order)
    offsets = kernel_offsets(kernel_size)
    neighbour_rows = indices[:, 1:2] + tf.constant([[d_row for d_row, _ in offsets]])
    neighbour_cols = indices[:, 2:3] + tf.constant([[d_col for _, d_col in offsets]])
    inside = (
        (neighbour_rows >= 0) & (neighbour_rows < height)
        & (neighbour_cols >= 0) & (neighbour_cols < width)
    )
    queries = keys[:, tf.newaxis] + tf.constant(
        [[d_row * width + d_col for d_row, d_col in offsets]], tf.int64
    )
    # Every tap in one search (not one per tap): the portable binary search is a chain of ops
    # per call, and a graph K*K times smaller converts to TFLite and ONNX that much faster.
    position = tf.reshape(lower_bound(sorted_keys, tf.reshape(queries, [-1])), tf.shape(queries))
    clipped = tf.minimum(position, count - 1)
    found = inside & (position < count) & (tf.gather(sorted_keys, clipped) == queries)
    # The centre tap finds the site itself (indices are unique).
    return tf.where(found, tf.gather(order, clipped), count)
