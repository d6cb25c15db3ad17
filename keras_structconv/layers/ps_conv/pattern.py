"""The dilation pattern of a poly-scale convolution and the two layouts of its kernel.

Inputs and outputs (of each group) are cut into t contiguous blocks (t = the cyclic interval);
output block o convolves input block k with dilation `D[o, k] = pattern[(k - o) mod t]`
(PSConv paper, Section 3.2). Pattern slot s thus links input block b to output block
(b - s) mod t, and the layer stores its kernel slot by slot, `(t, kh, kw, C_in/(t*groups), C_out)`:
slot s holds the weights of one grouped convolution with t * groups groups. The paper's G is the
Keras `Conv2D` layout `(kh, kw, C_in/groups, C_out)`; `dense_to_slots` and `slots_to_dense`
convert between the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from keras_structconv import _validation

__all__ = [
    "block_dilation_matrix",
    "branch_padding",
    "check_divisible",
    "checked_dilation_pattern",
    "default_dilation_pattern",
    "dense_to_slots",
    "dilation_mask",
    "slot_pairs",
    "slots_to_dense",
]


def default_dilation_pattern(cyclic_interval: int) -> tuple[int, ...]:
    """(1, 2, 1, 4) for t = 4, else the paper's Table 3 rule: slot 1 dilated by 2, the rest 1."""
    if cyclic_interval == 4:
        return (1, 2, 1, 4)
    return tuple(2 if slot == 1 else 1 for slot in range(cyclic_interval))


def checked_dilation_pattern(value: Sequence[int] | None, cyclic_interval: int) -> tuple[int, ...]:
    """The validated `dilation_pattern` argument: t positive ints (None: the default)."""
    if value is None:
        return default_dilation_pattern(cyclic_interval)
    pattern = tuple(value)
    if len(pattern) != cyclic_interval:
        raise ValueError(
            "`dilation_pattern` must hold `cyclic_interval` dilation rates. "
            f"Received: dilation_pattern={value!r}, cyclic_interval={cyclic_interval}"
        )
    if not all(_validation.is_int(rate) and rate >= 1 for rate in pattern):
        raise ValueError(
            "`dilation_pattern` must hold positive integer dilation rates. "
            f"Received: dilation_pattern={value!r}"
        )
    return tuple(int(rate) for rate in pattern)


def check_divisible(channels: int, name: str, cyclic_interval: int, groups: int) -> None:
    """Raises unless `channels` splits into t blocks in each of `groups` groups."""
    if channels % (cyclic_interval * groups):
        raise ValueError(
            f"`{name}` must be divisible by cyclic_interval * groups = "
            f"{cyclic_interval * groups}. Received: {name.replace(' ', '_')}={channels}, "
            f"cyclic_interval={cyclic_interval}, groups={groups}"
        )


def block_dilation_matrix(pattern: Sequence[int]) -> np.ndarray:
    """The block dilation matrix `D` (t × t): rows output blocks, columns input blocks."""
    t = len(pattern)
    return np.array([[pattern[(k - o) % t] for k in range(t)] for o in range(t)], "int64")


def branch_padding(
    kernel_size: tuple[int, int], padding: str, dilation: int
) -> tuple[tuple[int, int], ...]:
    """Per-side zero padding of a branch of dilation r: ((ph, ph), (pw, pw)).

    "same" pads r * (K - 1) / 2 on each side; "valid" pads (r - 1) * (K - 1) / 2, so every
    branch has a vanilla 'valid' convolution's output size."""
    extra = 0 if padding == "same" else 1
    return tuple(((dilation - extra) * (k - 1) // 2,) * 2 for k in kernel_size)


def slot_pairs(cyclic_interval: int) -> np.ndarray:
    """`pairs[s, b] = (b, (b - s) mod t)`: slot s links input block b to output block b - s."""
    t = cyclic_interval
    return np.array([[(b, (b - s) % t) for b in range(t)] for s in range(t)], "int32")


def dense_to_slots(dense: Any, cyclic_interval: int, groups: int = 1) -> tf.Tensor:
    """Keras-layout kernel `(kh, kw, C_in/groups, C_out)` (the paper's G) -> slot layout
    `(t, kh, kw, C_in/(t*groups), C_out)` stored by PSConv2D."""
    dense = tf.convert_to_tensor(dense)
    kh, kw, cin_group, cout = dense.shape
    t = cyclic_interval
    bi, bo = cin_group // t, cout // (groups * t)
    # (kh, kw, in_block, i, group, out_block, o) -> (in_block, out_block, kh, kw, i, group, o)
    blocks = tf.transpose(tf.reshape(dense, (kh, kw, t, bi, groups, t, bo)), (2, 5, 0, 1, 3, 4, 6))
    slots = tf.gather_nd(blocks, slot_pairs(t))  # (slot, in_block, kh, kw, i, group, o)
    slots = tf.transpose(slots, (0, 2, 3, 4, 5, 1, 6))
    return tf.reshape(slots, (t, kh, kw, bi, cout))


def slots_to_dense(slots: Any, groups: int = 1) -> tf.Tensor:
    """Inverse of `dense_to_slots`: the slot-layout kernel -> the Keras `Conv2D` layout."""
    slots = tf.convert_to_tensor(slots)
    t, kh, kw, bi, cout = slots.shape
    bo = cout // (groups * t)
    # (slot, kh, kw, i, group, in_block, o) -> (slot, in_block, kh, kw, i, group, o)
    blocks = tf.transpose(tf.reshape(slots, (t, kh, kw, bi, groups, t, bo)), (0, 5, 1, 2, 3, 4, 6))
    pairs = np.array([[((b - o) % t, b) for o in range(t)] for b in range(t)], "int32")
    dense = tf.gather_nd(blocks, pairs)  # (in_block, out_block, kh, kw, i, group, o)
    dense = tf.transpose(dense, (2, 3, 0, 4, 5, 1, 6))
    return tf.reshape(dense, (kh, kw, t * bi, cout))


def dilation_mask(
    pattern: Sequence[int], groups: int, dense_shape: Sequence[int], dilation: int
) -> np.ndarray:
    """0/1 float32 mask of the Keras-layout kernel entries applied with `dilation`."""
    kh, kw, cin_group, cout = dense_shape
    t = len(pattern)
    in_block = np.arange(cin_group) // (cin_group // t)
    out_block = (np.arange(cout) % (cout // groups)) // (cout // (groups * t))
    slot = (in_block[:, None] - out_block[None, :]) % t
    mask = np.asarray(pattern)[slot] == dilation
    return np.broadcast_to(mask, (kh, kw, cin_group, cout)).astype("float32")
