"""The `PSConv2D` layer (PSConv paper, Sections 3.1-3.2)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_structconv import _validation
from keras_structconv.layers import _conv_ops
from keras_structconv.layers._conv_template import conv_template_kwargs
from keras_structconv.layers._defaults import (
    add_bias_weight,
    arguments_config,
    constructor_arguments,
    set_weight_arguments,
)
from keras_structconv.layers.ps_conv import formulations
from keras_structconv.layers.ps_conv.pattern import (
    block_dilation_matrix,
    branch_padding,
    check_divisible,
    checked_dilation_pattern,
    dense_to_slots,
    slots_to_dense,
)

__all__ = ["PSConv2D"]


@keras.saving.register_keras_serializable(package="keras_structconv")
class PSConv2D(keras.layers.Layer):
    """Poly-scale convolution: a K×K convolution whose dilation cycles through
    `dilation_pattern` across blocks of input and output channels (PSConv paper, Section 3).

    Output block o (of `cyclic_interval` blocks per group) sums the convolutions of every input
    block k, each with its own K×K kernels and dilation `D[o, k] = dilation_pattern[(k - o) mod
    t]`. Same parameters and FLOPs as a vanilla `Conv2D` (64→64, 3×3: 36,864 weights).

    Args:
        filters: output channels; divisible by `cyclic_interval * groups`.
        kernel_size: odd int or pair of odd ints.
        strides: int or pair (any stride works with any dilation).
        padding: "same": each dilation-r branch padded symmetrically by r*(K-1)/2 (PyTorch
            semantics; TF's own 'SAME' pads bottom/right only at stride 2), output
            ceil(size / stride); or "valid": a dilation-r branch pads (r-1)*(K-1)/2, so the output
            size is a vanilla 'valid' conv's and `ZeroPadding2D((K-1)/2)` + "valid" equals "same".
        cyclic_interval: t, the length of the dilation cycle; input channels and `filters` must
            be divisible by `t * groups`.
        dilation_pattern: t positive ints; default (1, 2, 1, 4) for t = 4, otherwise slot 1
            dilated by 2 and the others by 1 (the paper's Table 3 rule, e.g. (1, 2)).
        groups: channel groups; the pattern applies inside each group (PS-ResNeXt).
        activation: optional activation applied to the output.
        use_bias: whether to add a bias (default False, as in the paper's ResNets).
        data_format: only "channels_last" (None reads `keras.config.image_data_format()`).
        kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
        activity_regularizer, kernel_constraint, bias_constraint: as in `keras.layers.Conv2D`.
            The kernel initializer sees the vanilla shape `(kh, kw, C_in/groups, filters)` (so
            fans are a vanilla conv's); constraints act on the stored slot layout.

    Weights: `kernel` of shape `(t, kh, kw, C_in/(t*groups), filters)`, stored slot by slot:
    `kernel[s, :, :, i, c]` connects input channel i of input block b = (c // (filters/(t*groups)))
    % t of c's group to the same position of output block (b - s) mod t. `dense_kernel()` and
    `set_dense_kernel()` read and write the paper's G in the Keras `Conv2D` layout. `bias` of shape
    `(filters,)` when `use_bias`.

    Computation (chosen once per layer at build from the runtime; all exact):
    with oneDNN (TensorFlow's default on CPUs with AVX-512), one grouped dilated convolution per
    pattern slot whose output blocks are rolled into place and summed (slots of equal dilation
    share their padded input; strided ones are merged into one convolution), except for blocks
    under 8 input channels, which run as one dense convolution per distinct dilation with the
    other dilations' weights masked to zero; without oneDNN (whose absence leaves TensorFlow's
    CPU kernels without grouped or dilated gradients), one dense convolution per input block and
    distinct dilation producing every output block it feeds, summed per output block. Inside
    `keras_structconv.layers.portable_ops()` (exports) the rolls become slices and a
    concatenation. Without oneDNN the layer is about 2.8x slower and warns once per process.

    Input shape: `(batch, height, width, channels)`.
    Output shape: `(batch, new_height, new_width, filters)`.

    Example:

    >>> layer = PSConv2D(64, 3, cyclic_interval=4)
    >>> layer(np.zeros((2, 16, 16, 64), "float32")).shape
    TensorShape([2, 16, 16, 64])
    >>> layer.count_params()
    36864
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int | Sequence[int] = 3,
        strides: int | Sequence[int] = 1,
        padding: str = "same",
        cyclic_interval: int = 4,
        dilation_pattern: Sequence[int] | None = None,
        groups: int = 1,
        activation: Any = None,
        use_bias: bool = False,
        data_format: str | None = None,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.filters = _validation.positive_int(filters, "filters")
        self.kernel_size = _validation.int_pair(kernel_size, "kernel_size", odd=True)
        self.strides = _validation.int_pair(strides, "strides")
        self.padding = _validation.one_of(padding, "padding", ("same", "valid"), lower=True)
        self.cyclic_interval = _validation.positive_int(cyclic_interval, "cyclic_interval")
        self.dilation_pattern = checked_dilation_pattern(dilation_pattern, self.cyclic_interval)
        self.groups = _validation.positive_int(groups, "groups")
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.data_format = _validation.channels_last(data_format, "PSConv2D")
        set_weight_arguments(self, "kernel", kernel_initializer, kernel_regularizer,
                             kernel_constraint)
        set_weight_arguments(self, "bias", bias_initializer, bias_regularizer, bias_constraint)
        check_divisible(self.filters, "filters", self.cyclic_interval, self.groups)
        self.input_spec = keras.layers.InputSpec(min_ndim=4, max_ndim=4)
        # How `call` computes the layer: one of `formulations.FORMULATIONS`, picked at build
        # unless set before (tests and benchmarks set it; it never changes the result).
        self._formulation = None

    @classmethod
    def from_conv(
        cls,
        conv: keras.layers.Conv2D,
        cyclic_interval: int = 4,
        dilation_pattern: Sequence[int] | None = None,
        **overrides: Any,
    ) -> PSConv2D:
        """A PSConv2D configured like the `keras.layers.Conv2D` `conv` (filters, kernel size,
        strides, padding, groups, activation, bias, initializers, regularizers, constraints,
        name, dtype policy); weights are not copied (see `set_dense_kernel`).

        'valid' stays 'valid' (exact after a ZeroPadding2D, as in Keras' ResNet50V2). 'same'
        becomes PSConv2D's symmetric 'same': identical to TF's at stride 1; at stride 2 on an
        even size TF pads bottom/right only, so the sampling grid moves by one pixel (the
        PyTorch grid of the paper's models).

        Example:

        >>> PSConv2D.from_conv(keras.layers.Conv2D(64, 3, strides=2), cyclic_interval=2)
        """
        kwargs = conv_template_kwargs(conv, "PSConv2D", plain=("dilation_rate",))
        kwargs.update(cyclic_interval=cyclic_interval, dilation_pattern=dilation_pattern)
        kwargs.update(overrides)
        return cls(**kwargs)

    # ------------------------------------------------------------------ Keras layer API
    def build(self, input_shape):
        channels = _validation.known_channels(input_shape, "PSConv2D")
        check_divisible(channels, "input channels", self.cyclic_interval, self.groups)
        kh, kw = self.kernel_size
        t = self.cyclic_interval
        dense_shape = (kh, kw, channels // self.groups, self.filters)
        initializer = self.kernel_initializer

        def slot_initializer(shape, dtype=None):
            # Initialise the vanilla kernel (its fans) and store it slot by slot.
            return dense_to_slots(initializer(dense_shape, dtype=dtype), t, self.groups)

        self.kernel = self.add_weight(
            name="kernel",
            shape=(t, kh, kw, channels // (t * self.groups), self.filters),
            initializer=slot_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.bias = add_bias_weight(self, self.filters) if self.use_bias else None
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: channels})
        if self._formulation is None:
            self._formulation = formulations.pick_formulation(channels // (t * self.groups))

    def call(self, inputs):
        x = _conv_ops.to_compute_dtype(inputs)
        kernels = tf.unstack(tf.cast(self.kernel, x.dtype))
        y = formulations.compute(self._formulation, self, x, kernels)
        if self.use_bias:
            y = tf.nn.bias_add(y, tf.cast(self.bias, y.dtype))
        if self.activation is not None:
            y = self.activation(y)
        return tf.cast(y, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        sizes = [
            _conv_ops.output_size(
                input_shape[axis + 1], self.kernel_size[axis], self.strides[axis], 1, pad
            )
            for axis, pad in enumerate(branch_padding(self.kernel_size, self.padding, 1))
        ]
        return (input_shape[0], *sizes, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(arguments_config(self, constructor_arguments(PSConv2D)))
        return config

    # ------------------------------------------------------------------ PS specifics
    @property
    def dilation_matrix(self) -> np.ndarray:
        """The block dilation matrix `D` (t × t): rows output blocks, columns input blocks."""
        return block_dilation_matrix(self.dilation_pattern)

    def dense_kernel(self) -> np.ndarray:
        """The paper's kernel G in the Keras `Conv2D` layout `(kh, kw, C_in/groups, filters)`:
        entry `[i, j, k, c]` is applied with dilation D[c, k] (NumPy array)."""
        return np.asarray(slots_to_dense(self.kernel, self.groups))

    def set_dense_kernel(self, dense_kernel: Any) -> None:
        """Sets the kernel from G in the Keras `Conv2D` layout (e.g. a vanilla conv's kernel)."""
        dense = tf.cast(dense_kernel, self.kernel.dtype)
        self.kernel.assign(dense_to_slots(dense, self.cyclic_interval, self.groups))

