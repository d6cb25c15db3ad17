"""Where the leaves of a tree convolution live: leaf widths, pooling cells, upsampling.

Pooling by `f` is TF's 'SAME' average pooling (window = stride = `f`, `ceil(n / f)` cells, the
missing `ceil(n / f) * f - n` rows split as TF does, `top = missing // 2` in front, padded rows
excluded from the mean). Upsampling is its inverse on the output grid of a layer of stride `s`:
output row `i` takes the cell containing input row `s * i`, i.e. cell `(s * i + top) // f`.

Sizes are Python ints when static and scalar int32 tensors otherwise; the same arithmetic serves
both (XLA resolves the dynamic ones to constants when it compiles for a shape).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

__all__ = [
    "cell_sum",
    "cells",
    "crop_offset",
    "expand_cells",
    "inverse_counts",
    "leaf_widths",
    "pool_factor",
    "size",
    "top_padding",
    "upsample_leaf",
    "upsample_leaf_by_gather",
    "weighted_cell_mean",
]

Size = Any  # a Python int, or a scalar int32 tensor when the size is not static


def leaf_widths(filters: int, depth: int) -> list[int]:
    """Output channels of each of the `depth + 1` leaves: `width[i % (depth + 1)] += 1` for i in
    range(filters), so every depth works with every width.

    >>> leaf_widths(64, 2)
    [22, 21, 21]
    """
    widths = [0] * (depth + 1)
    for i in range(filters):
        widths[i % (depth + 1)] += 1
    return widths


def pool_factor(level: int, depth: int) -> int:
    """Pooling factor of leaf `level` in a tree of `depth`: `2 ** (depth - level)` (1: full res)."""
    return 2 ** (depth - level)


def size(x: tf.Tensor, axis: int) -> Size:
    """Length of `x` along `axis`: static when known, else a scalar tensor."""
    static = x.shape[axis]
    return tf.shape(x)[axis] if static is None else static


def cells(n: Size, f: int) -> Size:
    """Number of 'SAME' pooling cells of factor `f` over `n` rows: `ceil(n / f)`."""
    return -(-n // f)


def top_padding(n: Size, f: int) -> Size:
    """Rows TF's 'SAME' pooling pads before the first cell: `(ceil(n / f) * f - n) // 2`."""
    return (cells(n, f) * f - n) // 2


def crop_offset(rows: Size, factor: int, out: Size) -> Size:
    """Rows cut in front when `rows` cells upsampled by `factor` cover `out` rows: half the
    excess, rounded down. It equals `top_padding(n, f) // s` for `factor = f / s`, whichever `n`
    gave `rows = ceil(n / f)` and `out = ceil(n / s)` (`f` is even)."""
    return (rows * factor - out) // 2


def inverse_counts(n: Size, f: int) -> tf.Tensor:
    """`1 / (number of real rows in each pooling cell)`, float32, shape `(cells,)`."""
    top = top_padding(n, f)
    if isinstance(n, int):
        j = np.arange(cells(n, f))
        counts = np.minimum((j + 1) * f - top, n) - np.maximum(j * f - top, 0)
        return tf.constant(1.0 / counts, tf.float32)
    j = tf.range(cells(n, f))
    counts = tf.minimum((j + 1) * f - top, n) - tf.maximum(j * f - top, 0)
    return 1.0 / tf.cast(counts, tf.float32)


def padded_to_cells(t: tf.Tensor, f: int) -> tf.Tensor:
    """`t` `(b, h, w, c)` zero-padded to whole 'SAME' pooling cells of factor `f` (TF's split)."""
    h, w = size(t, 1), size(t, 2)
    top, left = top_padding(h, f), top_padding(w, f)
    bottom, right = cells(h, f) * f - h - top, cells(w, f) * f - w - left
    return tf.pad(t, [[0, 0], [top, bottom], [left, right], [0, 0]])


def strided_sum(t: tf.Tensor, f: int, axis: int, weight: tf.Tensor | None = None) -> tf.Tensor:
    """Sum of the `f` strided slices `t[i::f]` along spatial `axis` (1 or 2), each multiplied by
    the same slice of `weight` when given."""

    def take(u, i):
        return u[:, i::f] if axis == 1 else u[:, :, i::f]

    if weight is None:
        return tf.add_n([take(t, i) for i in range(f)])
    return tf.add_n([take(t, i) * take(weight, i) for i in range(f)])


def weighted_cell_mean(x: tf.Tensor, weight: tf.Tensor, f: int) -> tf.Tensor:
    """'SAME' average pooling by `f` of `weight * x`, `weight` `(b, h, w, 1)`.

    Written as sums of strided slices of the inputs, rows then columns."""
    if f == 1:
        return weight * x
    h, w = size(x, 1), size(x, 2)
    # Multiplying inside the sum makes XLA read x once; a product sliced f ways is written out.
    total = strided_sum(strided_sum(padded_to_cells(x, f), f, 1, padded_to_cells(weight, f)), f, 2)
    return total * (inverse_counts(h, f)[:, None, None] * inverse_counts(w, f)[None, :, None])


def expand_cells(y: tf.Tensor, factor: int, offset: tuple[Size, Size], out_h: Size,
                 out_w: Size) -> tf.Tensor:
    """Nearest upsampling by `factor` cropped from `offset` to `(out_h, out_w)`: row `i` of the
    result is row `(i + offset[0]) // factor` of `y`."""
    if factor > 1:
        b, rows, cols, c = size(y, 0), size(y, 1), size(y, 2), y.shape[-1]
        y = tf.broadcast_to(y[:, :, None, :, None, :], [b, rows, factor, cols, factor, c])
        y = tf.reshape(y, [b, rows * factor, cols * factor, c])
    top, left = offset
    return y[:, top : top + out_h, left : left + out_w, :]


def cell_sum(t: tf.Tensor, factor: int, rows: Size, cols: Size) -> tf.Tensor:
    """Adjoint of `expand_cells`: `t` `(b, out_h, out_w, c)` summed over the `factor x factor`
    cells of a `(rows, cols)` grid placed with `crop_offset`."""
    out_h, out_w = size(t, 1), size(t, 2)
    top, left = crop_offset(rows, factor, out_h), crop_offset(cols, factor, out_w)
    padding = [[0, 0], [top, rows * factor - out_h - top],
               [left, cols * factor - out_w - left], [0, 0]]
    return strided_sum(strided_sum(tf.pad(t, padding), factor, 1), factor, 2)


def upsample_leaf(y: tf.Tensor, f: int, strides: int, in_h: Size, in_w: Size) -> tf.Tensor:
    """A coarse leaf's map (pooled by `f`) on the output grid of a layer of stride `strides`."""
    out_h, out_w = cells(in_h, strides), cells(in_w, strides)
    offset = (top_padding(in_h, f) // strides, top_padding(in_w, f) // strides)
    return expand_cells(y, f // strides, offset, out_h, out_w)


def upsample_leaf_by_gather(y: tf.Tensor, f: int, strides: int, in_h: Size,
                            in_w: Size) -> tf.Tensor:
    """`upsample_leaf` as two gathers of cell indices (ops every deployment runtime has)."""

    def cell_index(n):
        # output row i takes the cell holding input row strides * i
        return (tf.range(cells(n, strides)) * strides + top_padding(n, f)) // f

    return tf.gather(tf.gather(y, cell_index(in_h), axis=1), cell_index(in_w), axis=2)
