"""The paper variant's forward pass in plain ops, traced inside `portable_ops()` for export.

Only ops that TFLite's builtin set and ONNX (opset 17) both have: matmul, sigmoid, average
pooling, convolution, gather, concatenation. No XLA-compiled function and no custom gradient,
which the deployment converters cannot represent. It computes what the fused kernels compute.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from keras_structconv.layers import _conv_ops
from keras_structconv.layers.tree_conv import geometry
from keras_structconv.layers.tree_conv.gates import gate_logits, leaf_ratios

__all__ = ["paper_leaf_outputs"]


def paper_leaf_outputs(x: tf.Tensor, gate_kernel: tf.Tensor, gate_bias: tf.Tensor,
                       kernels: Sequence[tf.Tensor], strides: int) -> tf.Tensor:
    """`concat(up(conv(avgpool(L_l))) for l < depth, conv(L_depth))` for an NHWC `x`."""
    depth = len(kernels) - 1
    ratios = tf.cast(leaf_ratios(gate_logits(x, gate_kernel), gate_bias, depth), x.dtype)
    h, w = geometry.size(x, 1), geometry.size(x, 2)
    outputs = []
    for level, kernel in enumerate(kernels):
        f = geometry.pool_factor(level, depth)
        leaf = ratios[..., level : level + 1] * x
        pad = _conv_ops.symmetric_padding(kernel.shape[0])
        if f == 1:
            outputs.append(_conv_ops.conv2d(leaf, kernel, strides, padding=pad))
            continue
        pooled = tf.nn.avg_pool2d(leaf, f, f, "SAME")
        y = _conv_ops.conv2d(pooled, kernel, 1, padding=pad)
        outputs.append(geometry.upsample_leaf_by_gather(y, f, strides, h, w))
    return tf.concat(outputs, axis=-1)
