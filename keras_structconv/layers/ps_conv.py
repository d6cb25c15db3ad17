"""PSConv2D: poly-scale convolution.

Reference: Duo Li, Anbang Yao, Qifeng Chen, "PSConv: Squeezing Feature Pyramid into One Compact
Poly-Scale Convolutional Layer", ECCV 2020, Sections 3.1-3.2 (https://arxiv.org/abs/2007.06191).

A K×K convolution whose dilation rate differs per kernel (Eq. 3),

    H[c, x, y] = sum_k sum_ij G[c, k, i, j] * F[k, x + i*D[c, k], y + j*D[c, k]],

with the dilation matrix `D` built from a cyclic pattern of length t (the *cyclic interval*) that
runs along the input channels and shifts by one step from one filter to the next (Section 3.2).
In block form, inputs and outputs (of each group) are split into t contiguous blocks and

    D[o, k] = dilation_pattern[(k // (C_in/t) - o // (C_out/t)) mod t].

For t = 4 and the default pattern (1, 2, 1, 4), rows output blocks, columns input blocks:

    D = [[1, 2, 1, 4],
         [4, 1, 2, 1],
         [1, 4, 1, 2],
         [2, 1, 4, 1]]

This is the paper's channel-granular `D` up to a permutation of input and output channels, which
the neighbouring layers absorb; every row and column holds the whole pattern. With `groups > 1`
the pattern applies inside each group (Section 3.2, PS-ResNeXt).

The authors' `PSConv2d(in, out, 3, stride, padding=1, dilation=d, parts=4)` is
`PSConv2D(out, 3, strides=stride, cyclic_interval=4, dilation_pattern=(d, 1, 2*d, 1))` up to a
permutation of the output blocks; it stores 1.5x the weights, this layer exactly a vanilla
conv's (36,864 at 64→64, 3×3). Implementation notes: `docs/design/ps_conv.md`.

Example:

```python
layer = keras_structconv.PSConv2D(64, 3, padding="same")  # t = 4, pattern (1, 2, 1, 4)
y = layer(np.zeros((8, 56, 56, 64), "float32"))           # (8, 56, 56, 64), 36,864 weights
model = keras_structconv.models.PSResNet50()               # every bottleneck 3×3 replaced
```
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_structconv import _validation
from keras_structconv._internals import onednn_enabled
from keras_structconv.layers import _conv_ops
from keras_structconv.layers._conv_template import conv_template_kwargs
from keras_structconv.layers.conv_factory import ConvFactory

__all__ = [
    "PSConv2D",
    "default_dilation_pattern",
    "dense_to_slots",
    "psconv_factory",
    "slots_to_dense",
]

# The ways `PSConv2D.call` can compute the layer (see `PSConv2D._pick_formulation`).
SLOTS, MASKED, SPLIT = "slots", "masked", "split"
FORMULATIONS = (SLOTS, MASKED, SPLIT)

# Below 8 input channels per block, a few masked dense convolutions beat many thin ones (oneDNN
# pads groups to 16-wide vector blocks; TF's own kernels pay per convolution).
_MASKED_BELOW_BLOCK_CHANNELS = 8

# fwd+bwd time of PSConv2D with oneDNN off / on, geo-mean over ResNet-50's 3×3 stage shapes at
# batch 8, one thread (docs/design/ps_conv.md).
_ONEDNN_SPEEDUP = 2.8


def default_dilation_pattern(cyclic_interval: int) -> tuple[int, ...]:
    """(1, 2, 1, 4) for t = 4, else the paper's Table 3 rule: slot 1 dilated by 2, the rest 1."""
    if cyclic_interval == 4:
        return (1, 2, 1, 4)
    return tuple(2 if slot == 1 else 1 for slot in range(cyclic_interval))


def _slot_pairs(cyclic_interval):
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
    slots = tf.gather_nd(blocks, _slot_pairs(t))  # (slot, in_block, kh, kw, i, group, o)
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
        self.dilation_pattern = _pattern(dilation_pattern, self.cyclic_interval)
        self.groups = _validation.positive_int(groups, "groups")
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.data_format = _validation.channels_last(data_format, "PSConv2D")
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        _check_divisible(self.filters, "filters", self.cyclic_interval, self.groups)
        self.input_spec = keras.layers.InputSpec(min_ndim=4, max_ndim=4)
        # How `call` computes the layer: one of FORMULATIONS, picked at build unless set before
        # (tests set it to cover every formulation; it never changes the result).
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
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(
                "The channel dimension of the inputs to PSConv2D must be known. "
                f"Received: input_shape={input_shape}"
            )
        _check_divisible(channels, "input channels", self.cyclic_interval, self.groups)
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
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.filters,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: channels})
        if self._formulation is None:
            self._formulation = self._pick_formulation(channels // (t * self.groups))

    def _pick_formulation(self, block_channels):
        """SLOTS (grouped dilated convs, oneDNN) unless blocks are narrower than 8 channels
        (MASKED); SPLIT (no groups, no native dilation gradients) without oneDNN."""
        if block_channels < _MASKED_BELOW_BLOCK_CHANNELS:
            return MASKED
        if not onednn_enabled():
            _warn_without_onednn()
            return SPLIT
        return SLOTS

    def call(self, inputs):
        x = _conv_ops.to_compute_dtype(inputs)
        kernels = tf.unstack(tf.cast(self.kernel, x.dtype))
        compute = {SLOTS: self._slot_convs, MASKED: self._masked_convs, SPLIT: self._split_convs}
        y = compute[self._formulation](x, kernels)
        if self.use_bias:
            y = tf.nn.bias_add(y, tf.cast(self.bias, y.dtype))
        if self.activation is not None:
            y = self.activation(y)
        return tf.cast(y, self.compute_dtype)

    # ------------------------------------------------------------------ formulations
    def _dilation_branches(self, x):
        """(dilation, slots, plan, prepared input) per distinct dilation; slots of equal
        padding and subsampling share one prepared input."""
        by_dilation = {}
        for slot, dilation in enumerate(self.dilation_pattern):
            by_dilation.setdefault(dilation, []).append(slot)
        prepared = {}
        for dilation, slots in by_dilation.items():
            plan = _conv_ops.plan_conv2d(
                x.shape, self.kernel_size, self.strides, dilation, self._branch_padding(dilation)
            )
            if plan.input_key not in prepared:
                prepared[plan.input_key] = _conv_ops.prepare_input(x, plan)
            yield dilation, slots, plan, prepared[plan.input_key]

    def _slot_convs(self, x, kernels):
        """One grouped conv (t * groups groups) per slot; output blocks rolled into place."""
        t, groups, shape = self.cyclic_interval, self.groups, tf.shape(x)
        branches = []
        for _, slots, plan, source in self._dilation_branches(x):
            if len(slots) > 1 and _merging_pays(source, kernels[0], len(slots), plan):
                outputs = self._merged_slot_convs(source, [kernels[s] for s in slots], plan, shape)
            else:
                outputs = [_conv_ops.run_conv2d(source, kernels[s], plan, shape) for s in slots]
            for slot, y in zip(slots, outputs, strict=True):
                branches.append(_conv_ops.roll_blocks(y, -slot, t, groups))
        return _sum(branches)

    def _masked_convs(self, x, kernels):
        """One dense (or `groups`-grouped) conv per distinct dilation, the kernel entries of the
        other dilations masked to zero: more FLOPs, fewer and wider convolutions."""
        dense = slots_to_dense(tf.stack(kernels), self.groups)
        shape = tf.shape(x)
        branches = []
        for dilation, _, plan, source in self._dilation_branches(x):
            mask = tf.constant(self._dilation_mask(dilation, dense.shape), dense.dtype)
            branches.append(_conv_ops.run_conv2d(source, dense * mask, plan, shape))
        return _sum(branches)

    def _split_convs(self, x, kernels):
        """Per input block and distinct dilation, one ungrouped conv producing every output block
        that block feeds at that dilation; contributions summed per output block."""
        t, groups, shape = self.cyclic_interval, self.groups, tf.shape(x)
        contributions = [[] for _ in range(groups * t)]
        for _, slots, plan, source in self._dilation_branches(x):
            # tf.split, not slices: a slice's gradient writes a zero tensor of the whole input.
            inputs = tf.split(source, groups * t, axis=-1)
            columns = [tf.split(kernels[s], groups * t, axis=-1) for s in slots]
            for index, block_input in enumerate(inputs):
                kernel = tf.concat([slot_columns[index] for slot_columns in columns], axis=-1)
                y = _conv_ops.run_conv2d(block_input, kernel, plan, shape)
                parts = tf.split(y, len(slots), axis=-1) if len(slots) > 1 else [y]
                group, block = divmod(index, t)
                for slot, part in zip(slots, parts, strict=True):
                    contributions[group * t + (block - slot) % t].append(part)
        return tf.concat([_sum(parts) for parts in contributions], axis=-1)

    def _dilation_mask(self, dilation, dense_shape):
        """0/1 mask of the Keras-layout kernel entries applied with `dilation`."""
        kh, kw, cin_group, cout = dense_shape
        t = self.cyclic_interval
        in_block = np.arange(cin_group) // (cin_group // t)
        out_block = (np.arange(cout) % (cout // self.groups)) // (cout // (self.groups * t))
        slot = (in_block[:, None] - out_block[None, :]) % t
        mask = np.asarray(self.dilation_pattern)[slot] == dilation
        return np.broadcast_to(mask, (kh, kw, cin_group, cout)).astype("float32")

    def _merged_slot_convs(self, source, kernels, plan, shape):
        """Slots of equal dilation as one grouped conv with len(slots) times the outputs per
        group (one pass over the input instead of one per slot), split back per slot."""
        t, groups = self.cyclic_interval, self.groups
        kh, kw, bi, cout = kernels[0].shape
        bo = cout // (groups * t)
        merged = tf.concat([tf.reshape(k, (kh, kw, bi, groups * t, bo)) for k in kernels], -1)
        merged = tf.reshape(merged, (kh, kw, bi, len(kernels) * cout))
        y = _conv_ops.run_conv2d(source, merged, plan, shape)
        batch_dims = tf.shape(y)[:-1]
        y = tf.reshape(y, tf.concat([batch_dims, [groups * t, len(kernels) * bo]], 0))
        return [
            tf.reshape(part, tf.concat([batch_dims, [cout]], 0))
            for part in tf.split(y, len(kernels), axis=-1)
        ]

    def compute_output_shape(self, input_shape):
        sizes = [
            _conv_ops.output_size(
                input_shape[axis + 1], self.kernel_size[axis], self.strides[axis], 1, pad
            )
            for axis, pad in enumerate(self._branch_padding(1))
        ]
        return (input_shape[0], *sizes, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            cyclic_interval=self.cyclic_interval,
            dilation_pattern=self.dilation_pattern,
            groups=self.groups,
            activation=keras.activations.serialize(self.activation),
            use_bias=self.use_bias,
            data_format=self.data_format,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer),
            bias_regularizer=keras.regularizers.serialize(self.bias_regularizer),
            activity_regularizer=keras.regularizers.serialize(self.activity_regularizer),
            kernel_constraint=keras.constraints.serialize(self.kernel_constraint),
            bias_constraint=keras.constraints.serialize(self.bias_constraint),
        )
        return config

    # ------------------------------------------------------------------ PS specifics
    @property
    def dilation_matrix(self) -> np.ndarray:
        """The block dilation matrix `D` (t × t): rows output blocks, columns input blocks."""
        t = self.cyclic_interval
        return np.array(
            [[self.dilation_pattern[(k - o) % t] for k in range(t)] for o in range(t)], "int64"
        )

    def dense_kernel(self) -> np.ndarray:
        """The paper's kernel G in the Keras `Conv2D` layout `(kh, kw, C_in/groups, filters)`:
        entry `[i, j, k, c]` is applied with dilation D[c, k] (NumPy array)."""
        return np.asarray(slots_to_dense(self.kernel, self.groups))

    def set_dense_kernel(self, dense_kernel: Any) -> None:
        """Sets the kernel from G in the Keras `Conv2D` layout (e.g. a vanilla conv's kernel)."""
        dense = tf.cast(dense_kernel, self.kernel.dtype)
        self.kernel.assign(dense_to_slots(dense, self.cyclic_interval, self.groups))

    def _branch_padding(self, dilation):
        """Per-side zero padding of a branch of dilation r: ((ph, ph), (pw, pw))."""
        extra = 0 if self.padding == "same" else 1
        return tuple(((dilation - extra) * (k - 1) // 2,) * 2 for k in self.kernel_size)


def _sum(tensors):
    return tensors[0] if len(tensors) == 1 else tf.add_n(tensors)


def _merging_pays(source, kernel, slots, plan):
    """Merging slots saves passes over their common input but copies their kernels (every call)
    and splits the merged output (a copy): worth it for strided convolutions (outputs a quarter
    of the input) whose static input holds more elements than the merged kernel."""
    if plan.rows.strides * plan.cols.strides < 2:
        return False
    size = 1
    for dim in source.shape:
        size *= dim or 1
    return size > slots * int(np.prod(kernel.shape))


_warned_without_onednn = False


def _warn_without_onednn():
    """Once per process: PSConv2D without oneDNN is correct but slower."""
    global _warned_without_onednn
    if _warned_without_onednn:
        return
    _warned_without_onednn = True
    warnings.warn(
        "TensorFlow runs without oneDNN here, whose CPU kernels lack fast grouped and dilated "
        f"convolutions: PSConv2D is about {_ONEDNN_SPEEDUP:.1f}x slower than with oneDNN. Set "
        "TF_ENABLE_ONEDNN_OPTS=1 before TensorFlow is imported to use it.",
        RuntimeWarning,
        stacklevel=3,
    )


def psconv_factory(
    cyclic_interval: int = 4, dilation_pattern: Sequence[int] | None = None, **overrides: Any
) -> ConvFactory:
    """A conv factory for `keras_structconv.convert` and the model builders:
    `factory(template_conv2d) -> PSConv2D` with the template's configuration (see
    `PSConv2D.from_conv`) and the given cyclic interval, pattern and overrides.

    Zero padding is not folded: `ZeroPadding2D + PSConv2D("valid")` is already exact.

    Example:

    >>> model = keras_structconv.convert(
    ...     keras.applications.ResNet50(weights=None), conv=psconv_factory(cyclic_interval=4))
    """
    options = {"cyclic_interval": cyclic_interval, "dilation_pattern": dilation_pattern}
    return ConvFactory(PSConv2D.from_conv, {**options, **overrides})


# ---------------------------------------------------------------------- argument validation
def _pattern(value, cyclic_interval):
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


def _check_divisible(channels, name, cyclic_interval, groups):
    if channels % (cyclic_interval * groups):
        raise ValueError(
            f"`{name}` must be divisible by cyclic_interval * groups = "
            f"{cyclic_interval * groups}. Received: {name.replace(' ', '_')}={channels}, "
            f"cyclic_interval={cyclic_interval}, groups={groups}"
        )
