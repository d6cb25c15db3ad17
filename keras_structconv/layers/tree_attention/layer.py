"""The `TreeAttention` layer (TAM)."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_structconv import _validation
from keras_structconv.layers._defaults import (
    arguments_config,
    distinct_initializer,
    set_weight_arguments,
)
from keras_structconv.layers._portable import portable_ops_enabled
from keras_structconv.layers.tree_attention.fused import fused_tree
from keras_structconv.layers.tree_attention.levels import tree_levels
from keras_structconv.layers.tree_attention.portable import (
    portable_gate,
    portable_tree_attention,
)

__all__ = ["TAM", "TreeAttention"]

# He et al. (2015), Section 2.1: PReLU slopes start at 0.25.
HE_PRELU_SLOPE = 0.25

# What `get_config` returns besides the base layer's, in its order: each weight's arguments.
_CONFIG_ARGUMENTS = tuple(
    f"{weight}_{kind}"
    for weight in ("kernel", "bias", "alpha")
    for kind in ("initializer", "regularizer", "constraint")
) + ("group_size",)


def _slope_initializer(value: Any) -> keras.initializers.Initializer:
    """A number is a constant initial slope; anything else goes through `initializers.get`."""
    if isinstance(value, int | float | np.number) and not isinstance(value, bool):
        if not np.isfinite(value):
            raise ValueError(
                f"`alpha_initializer` must be finite. Received: alpha_initializer={value!r}"
            )
        return keras.initializers.Constant(float(value))
    return keras.initializers.get(value)


@keras.saving.register_keras_serializable(package="keras_structconv")
class TreeAttention(keras.layers.Layer):
    """Tree-structured attention module (TAM): `x * sigmoid(tree(x))`, one gate per pixel.

    The pairing function `f_p` is a point-wise group convolution with groups of `g` neighbouring
    channels followed by a channel-wise PReLU `δ` (Section 2, Eq. 2):

    ```
    f_p(W, X) = δ([f_1x1(W_0, C_0, ..., C_{g-1}), ..., f_1x1(W_{N/g-1}, C_{N-g}, ..., C_{N-1})])
    ```

    It is repeated while the channel count `n` is divisible by `g` and greater than 1 (exact
    integer arithmetic), without a PReLU after the level that reaches one channel; a final 1x1
    convolution takes what is left to one channel `Z` (Eq. 1), and the output is `X * σ(Z)`,
    the map broadcast over the channels. C=64, g=2: 64 → 32 → ... → 2 → 1 (251 weights);
    C=80, g=2: 80 → 40 → 20 → 10 → 5, then a 1x1 convolution 5 → 1. Every level has a bias.

    Args:
        group_size: integer >= 2, the number of neighbouring channels each unit combines (`g`).
        kernel_initializer: initializer of the 1x1 kernels (default `"he_normal"`: fan-in = the
            group size, following He et al. as the paper does). Each kernel gets its own draw,
            so no two kernels start equal.
        bias_initializer: initializer of the biases (default zeros).
        alpha_initializer: the initial PReLU slopes: a number (a constant) or an initializer.
            Default 0.25, the initialisation of He et al. (2015), whose channel-wise PReLU the
            paper uses. The authors' release starts the slopes at 0 (pass `0.0` for it); with
            zero biases, a level whose units are negative at every pixel then zeroes everything
            above it, and the module starts with a constant gate and zero gradients.
        kernel_regularizer, bias_regularizer, alpha_regularizer: optional regularizers (the paper
            applies weight decay to the PReLU slopes too, Section 3.2).
        kernel_constraint, bias_constraint, alpha_constraint: optional constraints.
        **kwargs: base `Layer` arguments (`name`, `dtype`, `trainable`).

    Input shape:
        4-D tensor `(batch, height, width, channels)` (channels_last); height and width may be
        `None`, the channel count must be known.

    Output shape:
        Same as the input.

    Weights (level i = 0, 1, ...): `kernel_i` of shape `(1, 1, fan_in, out_channels)` (the layout
    of `keras.layers.Conv2D(out_channels, 1, groups=out_channels)`), `bias_i`, and `alpha_i` for
    every level followed by a PReLU: `sum over levels of in + out * (1 + prelu)` weights.

    Attributes (after build):
        levels: the channel counts from the input to the gate, e.g. `(80, 40, 20, 10, 5, 1)`.
        num_levels: the number of 1x1 convolution levels (`len(levels) - 1`).

    Computation: the gate and its gradients run in float32 whatever the dtype policy, as small
    XLA-compiled kernels with a hand-written backward pass (inlined into the caller's cluster
    when the model is compiled with `jit_compile=True`). Traced in portable-ops mode (as
    `keras_structconv.export` does), it uses plain TFLite builtin / ONNX ops instead, with equal
    outputs.

    Example:

    >>> layer = TreeAttention(group_size=2)
    >>> y = layer(np.random.rand(2, 8, 8, 64).astype("float32"))
    >>> layer.levels, layer.count_params()
    ((64, 32, 16, 8, 4, 2, 1), 251)

    Reference: "Tree-structured Attention Module for Image Classification", ICLR 2020 submission
    (anonymous, OpenReview), Section 2; He et al., "Delving Deep into Rectifiers", ICCV 2015.
    """

    supports_jit = True

    def __init__(
        self,
        group_size: int = 2,
        kernel_initializer: Any = "he_normal",
        bias_initializer: Any = "zeros",
        alpha_initializer: Any = HE_PRELU_SLOPE,
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        alpha_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        alpha_constraint: Any = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.group_size = _validation.int_in_range(group_size, "group_size", 2)
        set_weight_arguments(self, "kernel", kernel_initializer, kernel_regularizer,
                             kernel_constraint)
        set_weight_arguments(self, "bias", bias_initializer, bias_regularizer, bias_constraint)
        set_weight_arguments(self, "alpha", _slope_initializer(alpha_initializer),
                             alpha_regularizer, alpha_constraint)
        self.levels = None
        self.num_levels = None

    def build(self, input_shape: tuple) -> None:
        channels = _validation.known_channels(input_shape, "TreeAttention")
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: channels})
        self._tree = tuple(tree_levels(channels, self.group_size))
        self.levels = (channels,) + tuple(level.out_channels for level in self._tree)
        self.num_levels = len(self._tree)
        self._tree_weights = []
        for i, level in enumerate(self._tree):
            shapes = [("kernel", (1, 1, level.fan_in, level.out_channels))]
            shapes += [("bias", (level.out_channels,))]
            shapes += [("alpha", (level.out_channels,))] if level.prelu else []
            for kind, shape in shapes:
                self._tree_weights.append(self._tree_weight(kind, i, shape))
        self._fused = fused_tree(self._tree) if self._tree else None

    def _tree_weight(self, kind: str, index: int, shape: tuple) -> keras.Variable:
        # autocast=False: the kernels use the weights in float32 whatever the policy.
        return self.add_weight(
            name=f"{kind}_{index}",
            shape=shape,
            initializer=distinct_initializer(getattr(self, f"{kind}_initializer"), index),
            regularizer=getattr(self, f"{kind}_regularizer"),
            constraint=getattr(self, f"{kind}_constraint"),
            autocast=False,
        )

    def _params(self) -> list[tf.Tensor]:
        return [tf.convert_to_tensor(w.value) for w in self._tree_weights]

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        if not self._tree:  # C = 1: the gate is sigmoid(x) itself
            return inputs * tf.cast(tf.sigmoid(tf.cast(inputs, "float32")), inputs.dtype)
        if portable_ops_enabled():
            return portable_tree_attention(self._tree, inputs, self._params())
        return self._fused(inputs, self._params())

    def gate(self, inputs: Any) -> tf.Tensor:
        """The attention map `sigmoid(tree(x))`, shape `(batch, height, width, 1)`, float32."""
        if not self.built:
            self.build(tuple(inputs.shape))
        x = tf.cast(tf.convert_to_tensor(inputs), "float32")
        if not self._tree:
            return tf.sigmoid(x)
        return portable_gate(self._tree, x, self._params())

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(arguments_config(self, _CONFIG_ARGUMENTS))
        return config


TAM = TreeAttention
