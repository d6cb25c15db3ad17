"""The export formulation of TAM: plain ops that TFLite's builtin set and ONNX both have.

Traced inside `keras_structconv.layers.portable_ops()`: no compiled kernels,
complex bitcasts or custom gradients. A grouped 1x1 level is a per-channel product followed by a
sum over groups of `fan_in` consecutive channels (Mul, Reshape, Sum), which computes the same
values as the training formulation up to float32 rounding.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from keras_structconv.layers.tree_attention.levels import Level, level_params

__all__ = ["portable_gate", "portable_tree_attention"]


def _grouped_conv(a: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor) -> tf.Tensor:
    """Output j = bias[j] + sum_k a[..., j*fan_in + k] * kernel[0, 0, k, j]."""
    fan_in, out = kernel.shape[2], kernel.shape[3]
    per_channel = tf.reshape(tf.transpose(kernel[0, 0]), [fan_in * out])  # channel j*fan_in+k
    # Rank 3 keeps every op within the ranks all TFLite kernels accept.
    products = tf.reshape(a * per_channel, [-1, out, fan_in])
    sums = tf.reshape(tf.reduce_sum(products, axis=-1), tf.concat([tf.shape(a)[:-1], [out]], 0))
    return sums + bias


def portable_gate(levels: Sequence[Level], x: tf.Tensor, params: Sequence[tf.Tensor]):
    """`sigmoid(tree(x))` of a float32 `x`, shape `(batch, height, width, 1)`."""
    a = x
    for kernel, bias, alpha in level_params(levels, params):
        a = _grouped_conv(a, kernel, bias)
        if alpha is not None:
            a = tf.maximum(a, 0.0) + alpha * tf.minimum(a, 0.0)
    return tf.sigmoid(a)


def portable_tree_attention(levels: Sequence[Level], x: tf.Tensor, params: Sequence[tf.Tensor]):
    """`x * sigmoid(tree(x))`, computed in float32 and returned in `x`'s dtype."""
    xf = tf.cast(x, "float32")
    return tf.cast(xf * portable_gate(levels, xf, params), x.dtype)
