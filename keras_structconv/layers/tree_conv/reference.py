"""`ReferenceTreeConv2D`: the tree convolution of the authors' released code."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from keras_structconv.layers import _conv_ops
from keras_structconv.layers._defaults import BN_EPSILON, BN_MOMENTUM
from keras_structconv.layers.batch_normalization import BatchNormalization
from keras_structconv.layers.tree_conv import geometry, kernels
from keras_structconv.layers.tree_conv.layer import TreeConv2D

__all__ = ["ReferenceTreeConv2D"]


@keras.saving.register_keras_serializable(package="keras_structconv")
class ReferenceTreeConv2D(TreeConv2D):
    """2D tree convolution as released by the paper's authors: leaves gate a shared branch.

    The parse is `TreeConv2D`'s (Eq. 1-2, the same gates, `explain` and `parse`), but a leaf's
    convolution output is not a feature: it goes through its own batch normalisation and a
    sigmoid and gates one shared branch `O`:

    ```
    O = ReLU(BN(conv_KxK_{C -> C/(d+1)}(x)))                  # strided like the layer
    U_l = conv_{k_l}(avgpool_{2^(d-l)}(L_l))   for l < d,     U_d = conv_KxK(L_d)   (no bias)
    y = concat(up(sigmoid(BN_l(U_l))) * O  for l = 0 .. d)    # C channels, leaf order
    ```

    where `k_l = kernel_size` if the pooled map is larger than 2x2, else 1 (so the layer needs a
    static height and width). The gates are upsampled as in `TreeConv2D`. Its `d + 2` batch
    normalisations use `momentum=0.9, epsilon=1e-5` (PyTorch's defaults). 64 channels at 56x56,
    d = 3: 195 (gates) + 36,864 (leaves) + 9,216 (`O`) + 160 (BN) = 46,435 trainable weights.

    Args:
        filters: output channels; must equal the input channels and be divisible by
            `depth + 1`.
        kernel_size, strides, depth, fuse, use_bias, data_format, kernel_initializer,
        bias_initializer, gate_kernel_initializer, gate_bias_initializer, kernel_regularizer,
        bias_regularizer, kernel_constraint, bias_constraint, **kwargs: as `TreeConv2D`
        (`kernel_initializer` also draws the branch kernel).

    Input shape:
        4D `(batch, height, width, filters)` (or channels_first) with static height and width.

    Output shape:
        `(batch, ceil(height / strides), ceil(width / strides), filters)`.

    Weights: `gate_kernel`, `gate_bias` as `TreeConv2D`; `leaf_kernel_{l}`
    `(k_l, k_l, C, C/(d+1))` (`leaf_kernels`), `branch_kernel` `(K, K, C, C/(d+1))`, the
    batch normalisations `leaf_bn_{l}` (`leaf_norms`) and `branch_bn` (`branch_norm`).

    Example:

    >>> layer = ReferenceTreeConv2D(64, 3, depth=3)
    >>> layer(np.random.rand(2, 56, 56, 64).astype("float32")).shape
    TensorShape([2, 56, 56, 64])
    >>> sum(int(np.prod(w.shape)) for w in layer.trainable_weights)
    46435

    Reference:
        G. Wang et al., "Grammatically Recognizing Images with Tree Convolution", KDD 2020, and
        the authors' code, https://github.com/wanggrun/TreeConv.
    """

    variant = "reference"

    def __init__(self, filters: int, kernel_size: int | tuple[int, int] = 3,
                 strides: int | tuple[int, int] = 1, depth: int = 3, **kwargs: Any):
        variant = kwargs.pop("variant", "reference")
        if variant != "reference":
            raise ValueError(
                "ReferenceTreeConv2D is the authors' variant; the paper's is TreeConv2D. "
                f"Received: variant={variant!r}"
            )
        super().__init__(filters, kernel_size, strides, depth, variant="reference", **kwargs)
        self.leaf_kernel_sizes = None

    def _check_variant(self, variant: str) -> None:
        pass  # always "reference"

    def _build_leaves(self, input_shape, channels):
        """Leaf kernels, their batch normalisations and the branch. Returns the number of kernel
        draws made."""
        height, width = input_shape[1], input_shape[2]
        if height is None or width is None:
            raise ValueError(
                "ReferenceTreeConv2D needs static height and width at build time (its leaf "
                "kernel size depends on the pooled size). "
                f"Received: input_shape={tuple(input_shape)}"
            )
        if self.filters != channels or channels % (self.depth + 1):
            raise ValueError(
                "ReferenceTreeConv2D needs `filters` equal to the input channels and divisible "
                f"by `depth + 1`. Received: filters={self.filters}, input channels={channels}, "
                f"depth={self.depth}"
            )
        part = channels // (self.depth + 1)
        self.leaf_kernel_sizes = []
        self.leaf_kernels = []
        self.leaf_norms = []
        for level in range(self.depth + 1):
            f = geometry.pool_factor(level, self.depth)
            pooled = min(geometry.cells(height, f), geometry.cells(width, f))
            k = self.kernel_size if pooled > 2 else 1
            self.leaf_kernel_sizes.append(k)
            self.leaf_kernels.append(
                self._kernel_weight(f"leaf_kernel_{level}", (k, k, channels, part), level)
            )
            self.leaf_norms.append(self._batch_norm(f"leaf_bn_{level}", part))
        k = self.kernel_size
        self.branch_kernel = self._kernel_weight(
            "branch_kernel", (k, k, channels, part), self.depth + 1
        )
        self.branch_norm = self._batch_norm("branch_bn", part)
        return self.depth + 2

    def _batch_norm(self, name, channels):
        norm = BatchNormalization(
            momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name, dtype=self.dtype_policy
        )
        norm.build((None, None, None, channels))
        return norm

    def _leaf_outputs(self, x, training):
        h, w = geometry.size(x, 1), geometry.size(x, 2)
        ratios = self._ratios(x)
        branch = self._conv(x, self.branch_kernel, self.strides)
        branch = tf.nn.relu(self.branch_norm(branch, training=training))
        outputs = []
        for level in range(self.depth + 1):
            f = geometry.pool_factor(level, self.depth)
            leaf = tf.cast(ratios[..., level : level + 1], x.dtype) * x
            if f == 1:
                u = self._conv(leaf, self.leaf_kernels[level], self.strides)
            else:
                u = self._conv(tf.nn.avg_pool2d(leaf, f, f, "SAME"), self.leaf_kernels[level], 1)
            u = tf.sigmoid(self.leaf_norms[level](u, training=training))
            if f > 1:
                u = geometry.upsample_leaf(u, f, self.strides, h, w)
            outputs.append(u * branch)
        return tf.concat(outputs, axis=-1)

    @staticmethod
    def _conv(x, kernel, strides):
        kernel = tf.convert_to_tensor(kernel)
        return kernels.conv2d(
            x, kernel, strides, padding=_conv_ops.symmetric_padding(kernel.shape[0])
        )

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        del config["variant"]
        return config


@keras.saving.register_keras_serializable(package="keras_structconv",
                                          name="SavedAsTreeConv2D")
class _SavedAsTreeConv2D(ReferenceTreeConv2D):
    """A `ReferenceTreeConv2D` read from a file saved when it was `TreeConv2D(variant=
    "reference")`: `.keras` files store a layer's weights under its class name, so it keeps the
    old one."""

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "variant": "reference"}


_SavedAsTreeConv2D.__name__ = _SavedAsTreeConv2D.__qualname__ = "TreeConv2D"
