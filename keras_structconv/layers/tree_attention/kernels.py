"""The bodies of the compiled TAM kernels (float32 inside; compiled one by one in `fused.py`).

Forward: one kernel evaluates the tree over pixels and writes `x * gate`. Backward: one kernel
per level recomputes its pre-activation; one computes `d loss / d logit`; one per level, from the
top down to level 2, writes the gradient of the level below and sums the weight gradients; one
writes `dx` and the level-1 weight gradients. Each level's kernels come in a generic form and,
for group size 2, a "paired" form that reads the level's input as complex pairs (`ops.as_pairs`).
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from keras_structconv.layers.tree_attention import ops
from keras_structconv.layers.tree_attention.levels import Level, level_params


def pre_activations(
    levels: Sequence[Level], x: tf.Tensor, params: Sequence[tf.Tensor], first: int = 0
) -> list[tf.Tensor]:
    """`[z_1, ..., z_L]`, the output of each level before its PReLU (`z_L` is the logit).

    With `first=i`, `x` is the pre-activation of level i and the levels above it follow."""
    per_level = level_params(levels, params)
    zs, a = [], x
    if first:
        zs.append(x)
        alpha = per_level[first - 1][2]
        a = x if alpha is None else ops.prelu(x, alpha)
    for level, (kernel, bias, alpha) in zip(levels[first:], per_level[first:], strict=True):
        zs.append(ops.grouped_sum(a, kernel, level.fan_in) + bias)
        a = zs[-1] if alpha is None else ops.prelu(zs[-1], alpha)
    return zs


def forward(levels, x, x_pairs, params):
    """`x * sigmoid(tree(x))`; `x_pairs` is `x` as pairs (group size 2) or None."""
    xf = tf.cast(x, "float32")
    if x_pairs is None:
        logit = pre_activations(levels, xf, params)[-1]
    else:
        kernel, bias, _ = level_params(levels, params)[0]
        even, odd = ops.pair_parts(x_pairs)
        z1 = even * kernel[0, 0, 0] + odd * kernel[0, 0, 1] + bias
        logit = pre_activations(levels, z1, params, first=1)[-1]
    return tf.cast(xf * tf.sigmoid(logit), x.dtype)


def level_pre_activation(fan_in, inputs, kernel, bias, alpha_below):
    """Pre-activation of one level from the input (level 1) or the level below's pre-activation."""
    a = tf.cast(inputs, "float32")
    if alpha_below is not None:
        a = ops.prelu(a, alpha_below)
    return ops.grouped_sum(a, kernel, fan_in) + bias


def paired_level_pre_activation(pairs, kernel, bias, alpha_below):
    even, odd = ops.pair_parts(pairs, alpha_below)
    return even * kernel[0, 0, 0] + odd * kernel[0, 0, 1] + bias


def logit_gradient(dy, x, logit):
    """`d loss / d logit = sum_c(dy * x) * gate * (1 - gate)`: reads `dy` and `x` once."""
    gate = tf.sigmoid(logit)
    return ops.channel_sum(tf.cast(dy, "float32") * tf.cast(x, "float32")) * gate * (1.0 - gate)


def level_gradient(dz, z_below, kernel, alpha_below):
    """From `dz = d loss / d z_l` (l >= 2): `d loss / d z_{l-1}`, level l's kernel and bias
    gradients and the gradient of the slopes of the PReLU below it."""
    a_below = ops.prelu(z_below, alpha_below)
    d_below = ops.expand(dz, kernel)
    dalpha = ops.pixel_sum(d_below * tf.minimum(z_below, 0.0))
    dz_below = tf.where(z_below > 0.0, d_below, d_below * alpha_below)
    return dz_below, ops.kernel_gradient(a_below, dz, kernel), ops.pixel_sum(dz), dalpha


def paired_level_gradient(dz, z_below_pairs, kernel, alpha_below):
    """`level_gradient` on pairs; `d loss / d z_{l-1}` comes back as pairs."""
    z_even, z_odd = ops.pair_parts(z_below_pairs)
    alpha_even, alpha_odd = alpha_below[0::2], alpha_below[1::2]
    d_even, d_odd = dz * kernel[0, 0, 0], dz * kernel[0, 0, 1]
    dz_below = tf.complex(
        tf.where(z_even > 0.0, d_even, d_even * alpha_even),
        tf.where(z_odd > 0.0, d_odd, d_odd * alpha_odd),
    )
    # prelu(z) = max(z, 0) + alpha * min(z, 0): the weight gradients need the sums of
    # dz * max(z, 0) and dz * min(z, 0) for both halves, two complex sums in one reduction.
    dz_pairs = tf.complex(dz, 0.0)
    positive, negative, dbias = ops.pixel_sums(
        tf.complex(tf.maximum(z_even, 0.0), tf.maximum(z_odd, 0.0)) * dz_pairs,
        tf.complex(tf.minimum(z_even, 0.0), tf.minimum(z_odd, 0.0)) * dz_pairs,
        dz_pairs,
    )
    negative_even, negative_odd = tf.math.real(negative), tf.math.imag(negative)
    dkernel = tf.stack(
        [
            tf.math.real(positive) + alpha_even * negative_even,
            tf.math.imag(positive) + alpha_odd * negative_odd,
        ]
    )
    dalpha = tf.stack([kernel[0, 0, 0] * negative_even, kernel[0, 0, 1] * negative_odd], axis=-1)
    return (
        dz_below,
        tf.reshape(dkernel, kernel.shape),
        tf.math.real(dbias),
        tf.reshape(dalpha, alpha_below.shape),
    )


def input_gradient(dy, x, dz1, logit, kernel):
    """`dx = dy * gate + expand(dz1 * w1)` and the level-1 kernel and bias gradients."""
    xf = tf.cast(x, "float32")
    dx = tf.cast(dy, "float32") * tf.sigmoid(logit) + ops.expand(dz1, kernel)
    return tf.cast(dx, x.dtype), ops.kernel_gradient(xf, dz1, kernel), ops.pixel_sum(dz1)


def paired_input_gradient(dy_pairs, x_pairs, dz1, logit, kernel):
    """`input_gradient` on pairs; `dx` comes back as pairs."""
    gate = tf.sigmoid(logit)
    dy_even, dy_odd = ops.pair_parts(dy_pairs)
    dx = tf.complex(dy_even * gate + dz1 * kernel[0, 0, 0], dy_odd * gate + dz1 * kernel[0, 0, 1])
    dz1_pairs = tf.complex(dz1, 0.0)
    dkernel, dbias = ops.pixel_sums(x_pairs * dz1_pairs, dz1_pairs)
    dkernel = tf.stack([tf.math.real(dkernel), tf.math.imag(dkernel)])
    return dx, tf.reshape(dkernel, kernel.shape), tf.math.real(dbias)
