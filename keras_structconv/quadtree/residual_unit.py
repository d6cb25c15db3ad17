"""Basic residual unit on a sparse feature map, the building block of the QGN decoder.

`ReLU(BN(conv(ReLU(BN(conv(x))))) + shortcut(x))` with 3x3 submanifold convolutions and batch
normalisation over the active sites; the shortcut is the identity, or a 1x1 convolution + BN
when the width changes.

Reference: K. He, X. Zhang, S. Ren, J. Sun, "Deep Residual Learning for Image Recognition",
CVPR 2016, Sec. 3.3 (basic block); K. Chitta, J. M. Alvarez, M. Hebert, "Quadtree Generating
Networks", WACV 2020, Table 7 (the decoder's units).
"""

import keras
import tensorflow as tf

from keras_structconv.layers._defaults import BN_EPSILON, BN_MOMENTUM
from keras_structconv.quadtree._config import decoder_kernel_initializer, serialized_attributes
from keras_structconv.quadtree.sparse import SparseBatchNormalization, SubmanifoldConv2D


def decoder_conv(owner, filters, kernel_size, name, use_bias=False):
    """A submanifold convolution with the `kernel_initializer` and `kernel_regularizer` of
    `owner` (a decoder layer)."""
    return SubmanifoldConv2D(
        filters,
        kernel_size,
        use_bias=use_bias,
        kernel_initializer=owner.kernel_initializer,
        kernel_regularizer=owner.kernel_regularizer,
        name=name,
    )


def decoder_batch_norm(name):
    """Sparse batch normalisation with the project's (PyTorch's) momentum and epsilon."""
    return SparseBatchNormalization(BN_MOMENTUM, BN_EPSILON, name=name)


@keras.saving.register_keras_serializable(package="keras_structconv")
class SparseResidualUnit(keras.layers.Layer):
    """Basic residual unit on a sparse map: `ReLU(BN(conv(ReLU(BN(conv(x))))) + shortcut(x))`.

    Both convolutions are 3x3 submanifold convolutions without bias; the shortcut is the
    identity, or a 1x1 convolution + BN when the width changes. `dense_call` runs the same unit
    (same weights) on a dense map with every site active.

    Args:
        filters: output channels.
        kernel_size: odd size of the two convolutions.
        kernel_initializer, kernel_regularizer: of every convolution.
        **kwargs: base `Layer` arguments.

    Call arguments: `features [N, C]`, `neighbours [N, K*K]` (`neighbour_table`), `training`.

    Output shape: `(N, filters)`.

    Example:
        >>> table = neighbour_table(indices, (H, W), 3)
        >>> outputs = SparseResidualUnit(64)(features, table, training=True)   # (N, 64)

    Reference: K. He et al., "Deep Residual Learning", CVPR 2016; QGN Table 7.
    """

    def __init__(
        self,
        filters,
        kernel_size=3,
        kernel_initializer=None,
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.kernel_initializer = decoder_kernel_initializer(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.conv1 = decoder_conv(self, self.filters, self.kernel_size, "conv1")
        self.norm1 = decoder_batch_norm("bn1")
        self.conv2 = decoder_conv(self, self.filters, self.kernel_size, "conv2")
        self.norm2 = decoder_batch_norm("bn2")
        self.shortcut_conv = self.shortcut_norm = None

    def build(self, features_shape, neighbours_shape=None):
        channels = int(features_shape[-1])
        self.conv1.build((None, channels))
        self.norm1.build((None, self.filters))
        self.conv2.build((None, self.filters))
        self.norm2.build((None, self.filters))
        if channels != self.filters:
            self.shortcut_conv = decoder_conv(self, self.filters, 1, "shortcut_conv")
            self.shortcut_norm = decoder_batch_norm("shortcut_bn")
            self.shortcut_conv.build((None, channels))
            self.shortcut_norm.build((None, self.filters))

    def call(self, features, neighbours, training=None):
        def convolve(conv, x):
            # The 1x1 shortcut convolution needs no neighbour table.
            return conv(x) if conv is self.shortcut_conv else conv(x, neighbours)

        return self._residual(features, convolve, training)

    def dense_call(self, inputs, training=None):
        """The same unit on a dense map `[B, H, W, C]` with every site active."""
        return self._residual(inputs, lambda conv, x: conv.dense_call(x), training)

    def _residual(self, x, convolve, training):
        """The unit, with `convolve(conv, x)` applying one of its convolution layers (sparsely
        or densely)."""
        hidden = tf.nn.relu(self.norm1(convolve(self.conv1, x), training=training))
        hidden = self.norm2(convolve(self.conv2, hidden), training=training)
        shortcut = x
        if self.shortcut_conv is not None:
            shortcut = self.shortcut_norm(convolve(self.shortcut_conv, x), training=training)
        return tf.nn.relu(hidden + tf.cast(shortcut, hidden.dtype))

    def compute_output_shape(self, features_shape, neighbours_shape=None):
        return (features_shape[0], self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size)
        config.update(serialized_attributes(self, "kernel_initializer", "kernel_regularizer"))
        return config
