"""PSConv2D: poly-scale convolution.

Reference: Duo Li, Anbang Yao, Qifeng Chen, "PSConv: Squeezing Feature Pyramid into One Compact
Poly-Scale Convolutional Layer", ECCV 2020. https://arxiv.org/abs/2007.06191 (authors' code:
https://github.com/d-li14/PSConv).

Definition (paper Eq. 3): a K×K convolution whose dilation rate differs per kernel,

    H[c, x, y] = sum_k sum_ij G[c, k, i, j] * F[k, x + i*D[c, k], y + j*D[c, k]],

with the dilation matrix `D` (C_out × C_in) built from a cyclic pattern of length t (the *cyclic
interval*) that runs along the input channels and shifts by one step from one filter to the next.
This layer implements the block form of SPEC §1: inputs and outputs (of each group) are split into
t contiguous blocks and

    D[o, k] = dilation_pattern[(k // (C_in/t) - o // (C_out/t)) mod t].

For t = 4 and the default pattern (1, 2, 1, 4), rows = output blocks, columns = input blocks:

    D = [[1, 2, 1, 4],
         [4, 1, 2, 1],
         [1, 4, 1, 2],
         [2, 1, 4, 1]]

This is the paper's channel-granular `D` up to a permutation of input and output channels, which
the neighbouring layers absorb. Every row and every column holds the whole pattern, so each output
mixes all scales and each input is seen at all scales.

Relation to the authors' release: their `PSConv2d(in, out, kernel_size=3, stride, padding=1,
dilation=d, parts=4)` is `PSConv2D(out, 3, strides=stride, cyclic_interval=4,
dilation_pattern=(d, 1, 2*d, 1))`; with their default d = 2 the block matrix is
`[[2,1,4,1],[1,2,1,4],[4,1,2,1],[1,4,1,2]]`, which is our default layer up to a permutation of
the output blocks. `parts` is the cyclic interval t. Their module stores 1.5x the weights (a
masked dense 3×3 conv plus two grouped convs: 55,296 at 64→64); this layer stores exactly the
vanilla conv's (36,864 at 64→64) and spends its FLOPs. Their grouped variant masks the wrong
blocks unless groups == parts; here `groups > 1` applies the pattern inside each group (the
paper's Fig. 2, right).

Padding: "same" pads each branch of dilation r symmetrically by r*(K-1)/2 (PyTorch semantics;
TF's own 'SAME' pads bottom/right only at stride 2 and gives a different result), so the output
is ceil(size / stride). "valid" gives the output size of a vanilla 'valid' conv: a branch of
dilation r pads (r-1)*(K-1)/2 per side, so `ZeroPadding2D(p) + PSConv2D(padding="valid")` equals
`PSConv2D(padding="same")` for p = (K-1)/2 (the Keras ResNet50V2 layout).

Implementation ("grouped dilated convolutions", SPEC §1): one grouped convolution per slot s of
the pattern (groups = t * groups, dilation pattern[s]) on the unrolled input; the output of slot s
is rolled by -s blocks inside each group and the t outputs are summed. It has exactly the
parameters and FLOPs of a vanilla conv, and no weight is copied or masked at run time because
`kernel` is stored slot by slot: shape `(t, K, K, C_in/(t*groups), filters)`, where
`kernel[s, :, :, i, c]` connects input channel i of input block b = (c // (filters/(t*groups))) % t
of c's group to output channel c' = the same position of output block (b - s) mod t (use
`dense_kernel()` / `set_dense_kernel()` for the paper's `G` in the Keras `Conv2D` layout). Slots
with the same dilation share their padded or subsampled input; strided ones run as one grouped
conv with several outputs per group when the input outweighs the (then concatenated) kernels. A
stride with a dilation that is a multiple of it reads a subsampled input at stride 1; half
precision is computed in float32 (see `layers/_conv_ops.py`). Other exact forms were timed on
CPU and were not faster at batch 8: rolling the inputs instead of the outputs, the authors'
masked dense conv, the two dilation-1 slots as one conv with t/2 groups on block-paired inputs
(faster only at batch 32 and 56×56), the kernel stored in the `Conv2D` layout and rearranged per
call (costly for wide layers), and the output rolls fused by XLA.

Example:

```python
layer = keras_structconv.PSConv2D(64, 3, padding="same")  # t = 4, pattern (1, 2, 1, 4)
y = layer(np.zeros((8, 56, 56, 64), "float32"))           # (8, 56, 56, 64), 36,864 weights
# drop-in replacement of every bottleneck 3x3 of a ResNet-50:
model = keras_structconv.models.PSResNet50()
```
"""

import keras
import numpy as np
import tensorflow as tf

from keras_structconv.layers import _conv_ops

__all__ = ["PSConv2D", "default_dilation_pattern", "psconv_factory"]

# Below this many input channels per block, the slots run as masked grouped convs, one per
# distinct dilation (see `PSConv2D._narrow_blocks`); tests move it to cover both code paths.
MASKED_BELOW_BLOCK_CHANNELS = 8


def default_dilation_pattern(cyclic_interval):
    """(1, 2, 1, 4) for t = 4, else the paper's Table 3 rule: slot 1 dilated by 2, the rest 1."""
    if cyclic_interval == 4:
        return (1, 2, 1, 4)
    return tuple(2 if slot == 1 else 1 for slot in range(cyclic_interval))


def _slot_pairs(cyclic_interval):
    """`pairs[s, b] = (b, (b - s) mod t)`: slot s links input block b to output block b - s."""
    t = cyclic_interval
    return np.array([[(b, (b - s) % t) for b in range(t)] for s in range(t)], "int32")


def dense_to_slots(dense, cyclic_interval, groups=1):
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


def slots_to_dense(slots, groups=1):
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
    """Poly-scale convolution (Li, Yao, Chen, ECCV 2020): a K×K conv whose dilation cycles
    through `dilation_pattern` across input and output channel blocks.

    Same parameters and FLOPs as a vanilla `Conv2D` (64→64, 3×3: 36,864 weights). See the module
    docstring for the dilation matrix `D`, the padding rules, the weight layout and the relation
    to the authors' `parts`/`dilation`.

    Args:
        filters: output channels; divisible by `cyclic_interval * groups`.
        kernel_size: odd int or pair of odd ints.
        strides: int or pair (any stride works with any dilation).
        padding: "same" (each branch padded symmetrically by r*(K-1)/2, output ceil(n/s)) or
            "valid" (the output size of a vanilla 'valid' conv).
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
            The kernel initializer sees the vanilla shape `(kh, kw, C_in/groups, filters)`
            (so fan-in/fan-out are a vanilla conv's); constraints act on the stored slot layout.

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
        filters,
        kernel_size=3,
        strides=1,
        padding="same",
        cyclic_interval=4,
        dilation_pattern=None,
        groups=1,
        activation=None,
        use_bias=False,
        data_format=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.filters = _positive_int(filters, "filters")
        self.kernel_size = _odd_pair(kernel_size)
        self.strides = _positive_pair(strides, "strides")
        self.padding = _padding(padding)
        self.cyclic_interval = _positive_int(cyclic_interval, "cyclic_interval")
        self.dilation_pattern = _pattern(dilation_pattern, self.cyclic_interval)
        self.groups = _positive_int(groups, "groups")
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.data_format = _channels_last(data_format)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        _check_divisible(self.filters, "filters", self.cyclic_interval, self.groups)
        self.input_spec = keras.layers.InputSpec(min_ndim=4, max_ndim=4)

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def from_conv(cls, conv, cyclic_interval=4, dilation_pattern=None, **overrides):
        """A PSConv2D configured like the `keras.layers.Conv2D` `conv` (filters, kernel size,
        strides, padding, groups, activation, bias, initializers, regularizers, constraints,
        name, dtype policy); weights are not copied (see `set_dense_kernel`).

        'valid' stays 'valid' (exact after a ZeroPadding2D, as in our builders and Keras'
        ResNet50V2). 'same' becomes PSConv2D's symmetric 'same': identical to TF's at stride 1;
        at stride 2 on an even size TF pads bottom/right only, so the sampling grid moves by one
        pixel (the PyTorch grid the paper's models use)."""
        if not isinstance(conv, keras.layers.Conv2D):
            raise ValueError(
                "`conv` must be a keras.layers.Conv2D (or subclass). "
                f"Received: conv={type(conv).__name__}"
            )
        config = conv.get_config()
        if tuple(config.get("dilation_rate", (1, 1))) != (1, 1):
            raise ValueError(
                "PSConv2D sets its own dilations; `conv` must not be dilated. "
                f"Received: dilation_rate={config['dilation_rate']}"
            )
        keys = (
            "name", "dtype", "trainable", "filters", "kernel_size", "strides", "padding",
            "data_format", "groups", "activation", "use_bias", "kernel_initializer",
            "bias_initializer", "kernel_regularizer", "bias_regularizer", "activity_regularizer",
            "kernel_constraint", "bias_constraint",
        )
        kwargs = {key: config[key] for key in keys if key in config}
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

    def call(self, inputs):
        x = _conv_ops.to_compute_dtype(inputs)
        kernels = tf.unstack(tf.cast(self.kernel, x.dtype))
        shape = tf.shape(x)
        t, groups = self.cyclic_interval, self.groups
        prepared = {}  # slots with the same dilation share the padded/subsampled input
        by_dilation = {}
        for slot, dilation in enumerate(self.dilation_pattern):
            by_dilation.setdefault(dilation, []).append(slot)
        masked = self._narrow_blocks()
        if masked:
            dense = slots_to_dense(tf.stack(kernels), groups)
        branches = []
        for dilation, slots in by_dilation.items():
            plan = _conv_ops.plan_conv2d(
                x.shape, self.kernel_size, self.strides, dilation, self._branch_padding(dilation)
            )
            if plan.input_key not in prepared:
                prepared[plan.input_key] = _conv_ops.prepare_input(x, plan)
            source = prepared[plan.input_key]
            if masked:
                mask = self._dilation_mask(dilation, dense.shape)
                branches.append(_conv_ops.run_conv2d(source, dense * mask, plan, shape))
                continue
            if len(slots) > 1 and _merging_pays(source, kernels[0], len(slots), plan):
                outputs = self._merged_slot_convs(source, [kernels[s] for s in slots], plan, shape)
            else:
                outputs = [_conv_ops.run_conv2d(source, kernels[s], plan, shape) for s in slots]
            for slot, y in zip(slots, outputs, strict=True):
                branches.append(_conv_ops.roll_blocks(y, -slot, t, groups))
        y = branches[0] if len(branches) == 1 else tf.add_n(branches)
        if self.use_bias:
            y = tf.nn.bias_add(y, tf.cast(self.bias, y.dtype))
        if self.activation is not None:
            y = self.activation(y)
        return tf.cast(y, self.compute_dtype)

    def _narrow_blocks(self):
        """Blocks of fewer than 8 input channels: the groups-t convs are then so thin that one
        grouped conv per distinct dilation with the other dilations' weights masked to zero
        (the authors' approach, more FLOPs) is faster (measured at 16 channels, t = 4)."""
        return self.kernel.shape[3] < MASKED_BELOW_BLOCK_CHANNELS

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
                input_shape[axis + 1],
                self.kernel_size[axis],
                self.strides[axis],
                1,
                pad,
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
    def dilation_matrix(self):
        """The block dilation matrix `D` (t × t): rows output blocks, columns input blocks."""
        t = self.cyclic_interval
        return np.array(
            [[self.dilation_pattern[(k - o) % t] for k in range(t)] for o in range(t)], "int64"
        )

    def dense_kernel(self):
        """The paper's kernel G in the Keras `Conv2D` layout `(kh, kw, C_in/groups, filters)`:
        entry `[i, j, k, c]` is applied with dilation D[c, k] (NumPy array)."""
        return np.asarray(slots_to_dense(self.kernel, self.groups))

    def set_dense_kernel(self, dense_kernel):
        """Sets the kernel from G in the Keras `Conv2D` layout (e.g. a vanilla conv's kernel)."""
        self.kernel.assign(
            dense_to_slots(tf.cast(dense_kernel, self.kernel.dtype), self.cyclic_interval,
                           self.groups)
        )

    def _branch_padding(self, dilation):
        """Per-side zero padding of a branch of dilation r: ((ph, ph), (pw, pw))."""
        extra = 0 if self.padding == "same" else 1
        return tuple(
            ((dilation - extra) * (k - 1) // 2,) * 2 for k in self.kernel_size
        )


def _merging_pays(source, kernel, slots, plan):
    """Merging slots saves passes over their common input but copies their kernels (every call)
    and splits the merged output (a copy): measured worth it for strided convolutions (outputs
    a quarter of the input) whose static input holds more elements than the merged kernel."""
    if plan.rows.strides * plan.cols.strides < 2:
        return False
    size = 1
    for dim in source.shape:
        size *= dim or 1
    return size > slots * int(np.prod(kernel.shape))


def psconv_factory(cyclic_interval=4, dilation_pattern=None, **overrides):
    """A conv factory for `keras_structconv.convert` and the model builders:
    `factory(template_conv2d) -> PSConv2D` with the template's configuration (see
    `PSConv2D.from_conv`) and the given cyclic interval, pattern and overrides.

    Zero padding is not folded: `ZeroPadding2D + PSConv2D("valid")` is already exact.

    Example:

    >>> model = keras_structconv.convert(
    ...     keras.applications.ResNet50(weights=None), conv=psconv_factory(cyclic_interval=4))
    """

    def factory(template):
        return PSConv2D.from_conv(
            template, cyclic_interval=cyclic_interval, dilation_pattern=dilation_pattern,
            **overrides
        )

    factory.cyclic_interval = cyclic_interval
    factory.dilation_pattern = dilation_pattern
    return factory


# ---------------------------------------------------------------------- argument validation
def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return int(value)


def _positive_pair(value, name):
    pair = (value, value) if isinstance(value, int | np.integer) else tuple(value)
    if len(pair) != 2:
        raise ValueError(f"`{name}` must be an int or a pair of ints. Received: {name}={value!r}")
    return tuple(_positive_int(v, name) for v in pair)


def _odd_pair(value):
    pair = _positive_pair(value, "kernel_size")
    if any(k % 2 == 0 for k in pair):
        raise ValueError(
            "`kernel_size` must be odd (the dilated taps are centred on the output pixel). "
            f"Received: kernel_size={value!r}"
        )
    return pair


def _padding(value):
    padding = value.lower() if isinstance(value, str) else value
    if padding not in ("same", "valid"):
        raise ValueError(f"`padding` must be 'same' or 'valid'. Received: padding={value!r}")
    return padding


def _pattern(value, cyclic_interval):
    if value is None:
        return default_dilation_pattern(cyclic_interval)
    pattern = tuple(value)
    if len(pattern) != cyclic_interval:
        raise ValueError(
            "`dilation_pattern` must hold `cyclic_interval` dilation rates. "
            f"Received: dilation_pattern={value!r}, cyclic_interval={cyclic_interval}"
        )
    for rate in pattern:
        if isinstance(rate, bool) or not isinstance(rate, int | np.integer) or rate < 1:
            raise ValueError(
                "`dilation_pattern` must hold positive integer dilation rates. "
                f"Received: dilation_pattern={value!r}"
            )
    return tuple(int(rate) for rate in pattern)


def _channels_last(data_format):
    data_format = data_format or keras.config.image_data_format()
    if data_format != "channels_last":
        raise ValueError(
            "PSConv2D supports only data_format='channels_last' (NHWC). "
            f"Received: data_format={data_format!r}"
        )
    return data_format


def _check_divisible(channels, name, cyclic_interval, groups):
    if channels % (cyclic_interval * groups):
        raise ValueError(
            f"`{name}` must be divisible by cyclic_interval * groups = "
            f"{cyclic_interval * groups}. Received: {name.replace(' ', '_')}={channels}, "
            f"cyclic_interval={cyclic_interval}, groups={groups}"
        )
