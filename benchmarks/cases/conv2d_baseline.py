"""Sanity baselines for the runner itself, at a small shape.

- `Conv2D vs itself`: two identical keras Conv2D layers; the ratio must be close to 1.0. When it is
  not, the machine was busy or the steps are too few, and no other ratio of the run can be trusted.
- `tf.nn.conv2d vs Conv2D`: a minimal layer calling tf.nn.conv2d directly (the path our operators
  take through `layers/_conv_ops.py`) against keras Conv2D; shows what the Keras wrapper costs.
"""

import keras
import tensorflow as tf

from benchmarks.runner import register


class NNConv2D(keras.layers.Layer):
    """A 'same'-padded, stride-1 convolution with bias written with tf.nn.conv2d (NHWC)."""

    def __init__(self, filters, kernel_size, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size

    def build(self, input_shape):
        shape = (self.kernel_size, self.kernel_size, input_shape[-1], self.filters)
        self.kernel = self.add_weight(shape=shape, initializer="glorot_uniform", name="kernel")
        self.bias = self.add_weight(shape=(self.filters,), initializer="zeros", name="bias")

    def call(self, inputs):
        outputs = tf.nn.conv2d(inputs, self.kernel, strides=1, padding="SAME")
        return tf.nn.bias_add(outputs, self.bias)


@register("conv2d_baseline", description="Conv2D vs itself (ratio ~1.0) and tf.nn.conv2d vs Conv2D")
def conv2d_baseline(bench):
    shape = (2, 8, 8, 8) if bench.quick else (16, 32, 32, 32)
    filters = shape[-1]
    yield from bench.compare_layers(
        "Conv2D 3x3 vs itself",
        ours=lambda: keras.layers.Conv2D(filters, 3, padding="same"),
        reference=lambda: keras.layers.Conv2D(filters, 3, padding="same"),
        input_shape=shape,
    )
    yield from bench.compare_layers(
        "tf.nn.conv2d 3x3 vs Conv2D",
        ours=lambda: NNConv2D(filters, 3),
        reference=lambda: keras.layers.Conv2D(filters, 3, padding="same"),
        input_shape=shape,
    )
