"""The parse of a tree convolution as a recurrence on gate logits, and its reverse mode.

The gate of level l reads the right child `S_l = P_l * x`, where `P_l = prod_{k<l} (1 - rho_k)`
is a per-pixel scalar, so `conv1x1(S_l) = P_l * (w_l . x) + b_l`: every gate logit comes from one
matmul of `x`, and the parse is a recurrence on `depth` numbers per pixel. Leaf l is `a_l * x`
with the leaf ratio `a_l = P_l * rho_l`, the last leaf `P_depth * x`.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["gate_logits", "leaf_ratio_grads", "leaf_ratios"]


def gate_logits(x: tf.Tensor, gate_kernel: tf.Tensor) -> tf.Tensor:
    """`w_l . x` for every level: one `(N, C) @ (C, depth)` matmul in x's dtype, float32 out."""
    depth = gate_kernel.shape[-1]
    flat = tf.reshape(x, [-1, x.shape[-1]])
    logits = tf.matmul(flat, tf.cast(gate_kernel, x.dtype))
    logits = tf.reshape(logits, tf.concat([tf.shape(x)[:-1], [depth]], 0))
    return tf.cast(logits, tf.float32)


def leaf_ratios(logits: tf.Tensor, gate_bias: tf.Tensor, depth: int) -> tf.Tensor:
    """`(..., depth)` gate logits `w_l . x` (float32) to the `(..., depth + 1)` leaf ratios
    `a_l = P_l * sigmoid(P_l * (w_l . x) + b_l)`, `a_depth = P_depth`, `P_{l+1} = P_l - a_l`."""
    remainder = None  # P_l; None stands for P_0 = 1
    ratios = []
    for level in range(depth):
        z = logits[..., level : level + 1]
        if remainder is None:
            ratio = tf.sigmoid(z + gate_bias[level])
        else:
            ratio = remainder * tf.sigmoid(remainder * z + gate_bias[level])
        ratios.append(ratio)
        remainder = (1.0 - ratio) if remainder is None else remainder - ratio
    ratios.append(remainder)
    return tf.concat(ratios, axis=-1)


def leaf_ratio_grads(
    logits: tf.Tensor, gate_bias: tf.Tensor, ratio_grads: tf.Tensor, depth: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """Reverse mode of `leaf_ratios`: `(dL/d logits, dL/d gate_bias)` from `dL/d ratios`.

    Forward: `u_l = P_l z_l + b_l`, `rho_l = sigmoid(u_l)`, `a_l = P_l rho_l`,
    `P_{l+1} = P_l - a_l`, `P_0 = 1`, `a_depth = P_depth`. Backward, from
    `dP_depth = dL/da_depth` down: `da_l = dL/da_l - dP_{l+1}`, `du_l = da_l P_l rho_l (1 - rho_l)`,
    `dz_l = du_l P_l`, `db_l = sum du_l`, `dP_l = dP_{l+1} + da_l rho_l + du_l z_l`.
    """
    # Written out rather than taped: the XLA program stays small.
    remainders, gates = [], []
    remainder = None
    for level in range(depth):
        z = logits[..., level : level + 1]
        u = (z if remainder is None else remainder * z) + gate_bias[level]
        gates.append(tf.sigmoid(u))
        remainders.append(remainder)
        remainder = 1.0 - gates[-1] if remainder is None else remainder * (1.0 - gates[-1])
    d_remainder = ratio_grads[..., depth:]
    logit_grads, bias_grads = [None] * depth, [None] * depth
    for level in reversed(range(depth)):
        rho, remainder = gates[level], remainders[level]
        d_leaf = ratio_grads[..., level : level + 1] - d_remainder
        d_u = d_leaf * rho * (1.0 - rho)
        if remainder is None:
            logit_grads[level] = d_u
        else:
            d_u = d_u * remainder
            logit_grads[level] = d_u * remainder
            d_remainder = d_remainder + d_leaf * rho + d_u * logits[..., level : level + 1]
        bias_grads[level] = tf.reduce_sum(d_u)
    return tf.concat(logit_grads, axis=-1), tf.stack(bias_grads)
