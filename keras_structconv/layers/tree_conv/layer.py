"""`TreeConv2D`: the tree convolution of the paper (Eq. 1-5)."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from keras_structconv import _validation
from keras_structconv.layers import _conv_ops
from keras_structconv.layers._defaults import (
    add_bias_weight,
    arguments_config,
    constructor_arguments,
    distinct_initializer,
    set_weight_arguments,
)
from keras_structconv.layers._portable import portable_ops_enabled
from keras_structconv.layers.tree_conv import geometry, kernels, portable
from keras_structconv.layers.tree_conv.gates import gate_logits, leaf_ratios

__all__ = ["MAX_DEPTH", "TreeConv2D"]

MAX_DEPTH = 5


@keras.saving.register_keras_serializable(package="keras_structconv")
class TreeConv2D(keras.layers.Layer):
    """2D tree convolution: parse the input into leaves, convolve each leaf at its own scale.

    For an input `x` with `C` channels and tree depth `d` (paper §3):

    ```
    S = x                                        # the root S^0
    for l in 0 .. d-1:                           # parse, Eq. 1-2
        rho_l = sigmoid(conv1x1_{C->1}(S) + b_l)  # one gate per pixel
        L_l = rho_l * S                          # left child: a leaf
        S = S - L_l                              # right child: parsed further
    y_l = up_{2^(d-l)}(conv_KxK(avgpool_{2^(d-l)}(L_l)))   for l < d     # Eq. 3-5
    y_d = conv_KxK(S)                                       # the finest leaf, full resolution
    y = concat(y_0, ..., y_d)
    ```

    The leaves sum to `x` (normalisation) and the right child shrinks with depth
    (`|S^{l+1}| <= |S^l|`, orderliness, §3.2). The paper writes `rho = 1 / (1 + exp(W S))`, the
    same gate with `W` negated. Leaf `l` has `width[l]` output channels, `width[i % (d+1)] += 1`
    for i in range(filters); the leaf kernels are the output columns of one vanilla
    `(K, K, C, filters)` kernel (so with a vanilla conv's weights and fans), and the `d` gates
    add `d * (C + 1)` weights: 64 -> 64, 3x3, d = 3 has 36,864 + 195 = 37,059. The paper's 1x1
    fusion of the concatenated leaves is the next layer's job in a ResNet (the bottleneck's 1x1);
    `fuse=True` adds it here.

    Geometry: pooling by `f` is 'SAME' average pooling (window and stride `f`, `ceil(n / f)`
    cells, padded rows split as TensorFlow does and excluded from the mean), so any size works,
    even one smaller than `f`. Convolutions pad `(K - 1) / 2` on each side; with `strides=2` the
    stride sits on the full-resolution leaf, output row `i` is centred on input row `2i`, and a
    coarse leaf is upsampled onto that grid (output row `i` takes the pooling cell containing
    input row `2i`).

    Formulation (the outputs are the same): the gates, pooling, upsampling and concatenation
    run as fused XLA kernels with hand-written gradients. The convolutions run on TensorFlow's
    kernels when it uses oneDNN (`TF_ENABLE_ONEDNN_OPTS=1`, the default on CPUs with AVX-512
    VNNI/BF16 or AMX); without oneDNN, those on maps of 16 pixels or more run as XLA kernels
    too, forward and backward (decided once per process). Inside a model compiled with
    `jit_compile=True` the whole layer is part of the model's XLA program. When exporting
    (traced inside `keras_structconv.layers.portable_ops()`), it is plain ops that
    TFLite's builtin set and ONNX have.

    The authors' released variant (leaves gating a shared branch) is `ReferenceTreeConv2D`.

    Args:
        filters: output channels, at least `depth + 1` (every leaf gets one).
        kernel_size: odd int (or pair of equal odd ints), the leaf convolutions' kernel.
        strides: 1 or 2 (or a pair of equal values).
        depth: tree depth `d`, 1 to 5 (`d` gates, `d + 1` leaves; the paper uses 3).
        variant: `"paper"`, kept for configurations saved by earlier versions.
        fuse: add the paper's 1x1 fusion convolution (`filters -> filters`) after the concat.
        use_bias: add a bias to the output.
        data_format: `"channels_last"` or `"channels_first"` (transposed in and out).
            Default: Keras' image data format.
        kernel_initializer: initializer of the leaf kernels (drawn as one vanilla kernel) and
            of the fusion kernel; each weight gets its own draw.
        bias_initializer: initializer of the output bias.
        gate_kernel_initializer: initializer of the gate kernel `(C, depth)`.
        gate_bias_initializer: initializer of the gate biases `(depth,)`.
        kernel_regularizer, bias_regularizer: regularizers of the kernels, of the bias.
        kernel_constraint, bias_constraint: constraints of the kernels, of the bias.
        **kwargs: base `Layer` arguments (`name`, `dtype`, `trainable`, `activity_regularizer`).

    Input shape:
        4D `(batch, height, width, channels)` (or channels_first); height and width may be None.

    Output shape:
        `(batch, ceil(height / strides), ceil(width / strides), filters)`.

    Weights: `gate_kernel` `(C, depth)`, `gate_bias` `(depth,)`, `kernel_{l}`
    `(K, K, C, width[l])` per leaf (`leaf_kernels`, leaf order), optional `fusion_kernel`
    `(1, 1, filters, filters)` and `bias` `(filters,)`. Gates stay float32 under mixed precision.

    Example:

    >>> layer = TreeConv2D(64, 3, depth=3)
    >>> x = np.random.rand(2, 56, 56, 64).astype("float32")
    >>> layer(x).shape, layer.count_params()
    (TensorShape([2, 56, 56, 64]), 37059)
    >>> layer.explain(x).shape  # leaf ratios, the explanation maps of §4.1
    TensorShape([2, 56, 56, 4])

    Reference:
        G. Wang et al., "Grammatically Recognizing Images with Tree Convolution", KDD 2020,
        §3.1-3.4 and the reproducibility notes.
    """

    variant = "paper"
    supports_jit = True

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, int] = 3,
        strides: int | tuple[int, int] = 1,
        depth: int = 3,
        variant: str = "paper",
        fuse: bool = False,
        use_bias: bool = False,
        data_format: str | None = None,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        gate_kernel_initializer: Any = "glorot_uniform",
        gate_bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self._check_variant(variant)
        self.depth = _validation.int_in_range(depth, "depth", 1, MAX_DEPTH)
        self.filters = _validation.positive_int(filters, "filters")
        if self.filters < self.depth + 1:
            raise ValueError(
                "`filters` must be at least `depth + 1` (one output channel per leaf). "
                f"Received: filters={filters}, depth={depth}"
            )
        kernel_size = _validation.square_int(kernel_size, "kernel_size")
        self.kernel_size = _validation.positive_int(kernel_size, "kernel_size")
        if self.kernel_size % 2 == 0:
            raise ValueError(
                "`kernel_size` must be odd (the leaves are convolved with symmetric padding). "
                f"Received: kernel_size={kernel_size}"
            )
        strides = _validation.square_int(strides, "strides")
        self.strides = _validation.int_in_range(strides, "strides", 1, 2)
        self.fuse = bool(fuse)
        self.use_bias = bool(use_bias)
        self.data_format = _validation.one_of(
            data_format or keras.config.image_data_format(),
            "data_format",
            ("channels_last", "channels_first"),
        )
        set_weight_arguments(self, "kernel", kernel_initializer, kernel_regularizer,
                             kernel_constraint)
        set_weight_arguments(self, "bias", bias_initializer, bias_regularizer, bias_constraint)
        self.gate_kernel_initializer = keras.initializers.get(gate_kernel_initializer)
        self.gate_bias_initializer = keras.initializers.get(gate_bias_initializer)
        self.widths = geometry.leaf_widths(self.filters, self.depth)

    def _check_variant(self, variant: str) -> None:
        if variant == "reference":
            raise ValueError(
                "The authors' released variant is its own layer: use "
                "`keras_structconv.layers.ReferenceTreeConv2D(...)` (or "
                "`treeconv_factory(variant='reference')`). Received: variant='reference'"
            )
        _validation.one_of(variant, "variant", ("paper",))

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TreeConv2D:
        if cls is TreeConv2D and config.get("variant") == "reference":
            # Saved when both variants were this class: the weights are filed under its name.
            from keras_structconv.layers.tree_conv.reference import _SavedAsTreeConv2D

            config = {k: v for k, v in config.items() if k != "variant"}
            return _SavedAsTreeConv2D.from_config(config)
        return super().from_config(config)

    @classmethod
    def from_conv(
        cls,
        conv: keras.layers.Conv2D,
        depth: int = 3,
        zero_padding: Any = None,
        **overrides: Any,
    ) -> TreeConv2D:
        """A layer standing for the `keras.layers.Conv2D` `conv`: its filters, kernel size,
        strides, bias, data format, initializers, regularizers, constraints, name and dtype
        policy (weights are not copied: the gates are new).

        The layer pads symmetrically by `(K - 1) / 2`, so `conv` must be 'same'-padded, or
        'valid' with `zero_padding` equal to that symmetric padding (a folded `ZeroPadding2D`,
        see `treeconv_factory`), or 1x1. At stride 2 a 'same' `conv` pads bottom/right
        (TensorFlow) where this layer pads both sides: same output size, sampling grid shifted
        by one input pixel for even sizes.
        """
        if not isinstance(conv, keras.layers.Conv2D):
            raise ValueError(
                "`conv` must be a keras.layers.Conv2D. "
                f"Received: conv of type {type(conv).__name__}"
            )
        config = conv.get_config()
        problems = {
            "groups": config.get("groups", 1) != 1,
            "dilation_rate": tuple(config.get("dilation_rate", (1, 1))) != (1, 1),
            "activation": config.get("activation") not in (None, "linear"),
        }
        for key, bad in problems.items():
            if bad:
                raise ValueError(
                    f"{cls.__name__} can only stand for a plain convolution (no {key}). "
                    f"Received: {key}={config.get(key)!r}"
                )
        kernel_size = tuple(config["kernel_size"])
        pad = _conv_ops.symmetric_padding(kernel_size[0])
        symmetric = ((pad, pad), (pad, pad))
        folded = None if zero_padding is None else tuple(tuple(p) for p in zero_padding)
        padding_ok = (config["padding"] == "same" and folded is None) or (
            config["padding"] == "valid" and (folded == symmetric or (pad == 0 and not folded))
        )
        if not padding_ok:
            raise ValueError(
                f"{cls.__name__} pads symmetrically by (kernel_size - 1) / 2: it can stand for "
                "a 'same' convolution or a 'valid' one behind that zero padding. "
                f"Received: padding={config['padding']!r}, zero_padding={zero_padding!r}, "
                f"kernel_size={kernel_size}"
            )
        keys = (
            "name", "dtype", "trainable", "filters", "kernel_size", "strides", "data_format",
            "use_bias", "kernel_initializer", "bias_initializer", "kernel_regularizer",
            "bias_regularizer", "activity_regularizer", "kernel_constraint", "bias_constraint",
        )
        kwargs = {key: config[key] for key in keys if key in config}
        kwargs.update(depth=depth)
        kwargs.update(overrides)
        return cls(**kwargs)

    # ------------------------------------------------------------------------- build

    def _kernel_weight(self, name, shape, index, initializer=None):
        """A kernel weight; `index` numbers the weights drawn from `kernel_initializer`."""
        return self.add_weight(
            name=name,
            shape=shape,
            initializer=initializer or distinct_initializer(self.kernel_initializer, index),
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )

    def build(self, input_shape: tuple) -> None:
        axis = -1 if self.data_format == "channels_last" else 1
        channels = _validation.known_channels(input_shape, type(self).__name__, axis)
        input_shape = self._to_channels_last(tuple(input_shape))
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={axis: channels})
        # float32 under mixed precision too: the fused kernels compute the gates in float32.
        self.gate_kernel = self.add_weight(
            name="gate_kernel",
            shape=(channels, self.depth),
            initializer=self.gate_kernel_initializer,
            autocast=False,
        )
        self.gate_bias = self.add_weight(
            name="gate_bias",
            shape=(self.depth,),
            initializer=self.gate_bias_initializer,
            autocast=False,
        )
        kernels_drawn = self._build_leaves(input_shape, channels)
        if self.fuse:
            self.fusion_kernel = self._kernel_weight(
                "fusion_kernel", (1, 1, self.filters, self.filters), kernels_drawn
            )
        if self.use_bias:
            self.bias = add_bias_weight(self, self.filters)

    def _build_leaves(self, input_shape, channels):
        """`kernel_0 .. kernel_depth`, the output columns of one vanilla `(K, K, C, filters)`
        kernel drawn by `kernel_initializer`. Returns the number of kernel draws made."""
        k = self.kernel_size
        vanilla = []

        def columns(start, stop):
            def initializer(shape, dtype=None):
                if not vanilla:
                    draw = distinct_initializer(self.kernel_initializer, 0)
                    vanilla.append(draw((k, k, channels, self.filters), dtype))
                return vanilla[0][..., start:stop]

            return initializer

        # One weight per leaf: slicing one weight in every step would copy it whole, both ways.
        self.leaf_kernels = []
        start = 0
        for level, width in enumerate(self.widths):
            self.leaf_kernels.append(
                self._kernel_weight(
                    f"kernel_{level}", (k, k, channels, width), 0, columns(start, start + width)
                )
            )
            start += width
        return 1

    # ------------------------------------------------------------------------- call

    def _to_channels_last(self, shape):
        if self.data_format == "channels_first":
            return (shape[0], shape[2], shape[3], shape[1])
        return shape

    def call(self, inputs: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        x = inputs
        if self.data_format == "channels_first":
            x = tf.transpose(x, [0, 2, 3, 1])
        y = self._leaf_outputs(x, training)
        if self.fuse:
            y = kernels.conv2d(y, tf.convert_to_tensor(self.fusion_kernel))
        if self.use_bias:
            y = tf.nn.bias_add(y, tf.cast(self.bias, y.dtype))
        if self.data_format == "channels_first":
            y = tf.transpose(y, [0, 3, 1, 2])
        return y

    def _leaf_outputs(self, x, training):
        """`concat(y_0, ..., y_depth)` for an NHWC input."""
        gate_kernel = tf.convert_to_tensor(self.gate_kernel)
        gate_bias = tf.convert_to_tensor(self.gate_bias)
        leaf_kernels = [tf.convert_to_tensor(kernel) for kernel in self.leaf_kernels]
        if portable_ops_enabled():
            return portable.paper_leaf_outputs(x, gate_kernel, gate_bias, leaf_kernels,
                                               self.strides)
        pad = _conv_ops.symmetric_padding(self.kernel_size) if self.strides > 1 else 0
        leaves = kernels.parse_and_split(x, gate_kernel, gate_bias, self.depth, pad)
        coarse = [_pooled_conv(leaf, kernel)
                  for leaf, kernel in zip(leaves[:-1], leaf_kernels[:-1], strict=True)]
        full = kernels.conv2d(
            leaves[-1], leaf_kernels[-1], self.strides, padding=0 if pad else "same"
        )
        factors = [geometry.pool_factor(level, self.depth) // self.strides
                   for level in range(self.depth)]
        return kernels.assemble(coarse, full, factors, self.widths)

    # ------------------------------------------------------------------------- the parse

    def _ratios(self, x):
        logits = gate_logits(x, self.gate_kernel)
        return leaf_ratios(logits, tf.convert_to_tensor(self.gate_bias), self.depth)

    def explain(self, inputs: Any) -> tf.Tensor:
        """The explanation maps of paper §4.1: the leaf ratios `rho_0, (1 - rho_0) rho_1, ...,
        prod_l (1 - rho_l)` of every pixel, which sum to 1.

        Args:
            inputs: the layer's input, 4D in the layer's data format.

        Returns:
            float32 tensor `(batch, height, width, depth + 1)` (channels_last) or
            `(batch, depth + 1, height, width)` (channels_first), in leaf order.
        """
        x = tf.convert_to_tensor(inputs)
        if not self.built:
            self.build(tuple(x.shape))
        if self.data_format == "channels_first":
            x = tf.transpose(x, [0, 2, 3, 1])
        ratios = self._ratios(tf.cast(x, tf.float32))
        if self.data_format == "channels_first":
            ratios = tf.transpose(ratios, [0, 3, 1, 2])
        return ratios

    def parse(self, inputs: Any) -> list[tf.Tensor]:
        """The parse tree's leaves `L_0, ..., L_{depth-1}, S` at full resolution (Eq. 1-2),
        float32, each shaped like `inputs`; they sum to `inputs`."""
        x = tf.cast(tf.convert_to_tensor(inputs), tf.float32)
        ratios = self.explain(x)
        axis = -1 if self.data_format == "channels_last" else 1
        return [r * x for r in tf.split(ratios, self.depth + 1, axis=axis)]

    # ------------------------------------------------------------------------- config

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        batch, h, w, _ = self._to_channels_last(tuple(input_shape))
        h, w = (None if n is None else geometry.cells(n, self.strides) for n in (h, w))
        if self.data_format == "channels_first":
            return (batch, self.filters, h, w)
        return (batch, h, w, self.filters)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(arguments_config(self, constructor_arguments(TreeConv2D)))
        return config


def _pooled_conv(x, kernel):
    """Stride-1 'same' convolution of a pooled leaf."""
    if x.shape[1] == 1 and x.shape[2] == 1:
        # A 1x1 map (input smaller than the pooling) meets only the centre tap: a matmul.
        centre = kernel.shape[0] // 2
        y = tf.matmul(_conv_ops.to_compute_dtype(x[:, 0, 0, :]),
                      tf.cast(kernel[centre, centre], _conv_ops.compute_dtype(x.dtype)))
        return tf.cast(y, x.dtype)[:, None, None, :]
    return kernels.conv2d(x, kernel, 1, padding=_conv_ops.symmetric_padding(kernel.shape[0]))
