"""Building blocks shared by our builders (ResNets, ResNeXts; AOGNets use the conv and head).

Conventions (PyTorch/torchvision, so that parameter counts and shapes match the papers' code):
no conv biases, BatchNorm `momentum=0.9, epsilon=1e-5`, convolutions initialised He-normal
with fan_out (torchvision's `kaiming_normal_(mode="fan_out")`), the classifier as PyTorch's
`nn.Linear` (uniform ±1/sqrt(fan_in) for kernel and bias). Convolutions pad symmetrically like
PyTorch: a strided K×K convolution is `ZeroPadding2D((K-1)//2)` + a 'valid' convolution (TF's
'same' would pad only bottom/right at stride 2).

Factories follow `keras_structconv.convert`: `conv(template) -> Layer` receives an unbuilt
vanilla `Conv2D` with the name the layer would have (a factory with `folds_zero_padding = True`
is called as `conv(template, zero_padding=...)` in place of an explicit padding layer), and
`attention(channels) -> Layer` goes on the residual branch right before each add, named
`<add name>_attention`.
"""

import math

import keras
import tensorflow as tf

from keras_structconv.layers._defaults import BN_EPSILON, BN_MOMENTUM, he_normal_fan_out
from keras_structconv.layers.batch_normalization import BatchNormalization
from keras_structconv.layers.conv_factory import folds_zero_padding
from keras_structconv.layers.grouped_conv import GroupedConv2D


def check_weights(weights):
    if weights is not None:
        raise ValueError(
            "`weights` must be None: this package ships no pretrained weights for its builders "
            "and does not download (train one, or load a checkpoint with model.load_weights). "
            f"Received: weights={weights!r}"
        )


def check_head(include_top, pooling, classes):
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"`pooling` must be None, 'avg' or 'max'. Received: pooling={pooling!r}")
    if include_top and (not isinstance(classes, int) or classes < 1):
        raise ValueError(
            "`classes` must be a positive integer when include_top=True. "
            f"Received: classes={classes!r}"
        )


def model_input(input_tensor, input_shape, default_shape):
    """(tensor the network starts from, inputs of the Model), as keras.applications does."""
    shape = default_shape if input_shape is None else tuple(input_shape)
    if len(shape) != 3:
        raise ValueError(
            "`input_shape` must be (height, width, channels). "
            f"Received: input_shape={input_shape!r}"
        )
    if input_tensor is None:
        image = keras.Input(shape=shape, name="input_layer")
        return image, image
    if not keras.backend.is_keras_tensor(input_tensor):
        image = keras.Input(tensor=input_tensor, shape=shape, name="input_layer")
        return image, image
    return input_tensor, keras.utils.get_source_inputs(input_tensor)


def classifier_head(x, include_top, pooling, classes, classifier_activation):
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        limit = 1.0 / math.sqrt(x.shape[-1])
        return keras.layers.Dense(
            classes,
            activation=classifier_activation,
            kernel_initializer=keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform"),
            bias_initializer=keras.initializers.RandomUniform(-limit, limit),
            name="predictions",
        )(x)
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


def batch_norm(x, name):
    return BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)(x)


def imagenet_stem(image, filters=64):
    """torchvision's ResNet stem: 7×7/2 conv + BN + ReLU + 3×3/2 max-pool (stride 4 in all)."""
    x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(image)
    x = keras.layers.Conv2D(
        filters,
        7,
        strides=2,
        use_bias=False,
        kernel_initializer=he_normal_fan_out(),
        name="conv1_conv",
    )(x)
    x = batch_norm(x, "conv1_bn")
    x = keras.layers.ReLU(name="conv1_relu")(x)
    # After a ReLU, zero padding acts like PyTorch's -inf padding of the max-pool.
    x = keras.layers.ZeroPadding2D(1, name="pool1_pad")(x)
    return keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)


def _named(layer, name):
    """A factory's layer gets the name of the layer it stands for."""
    if not isinstance(layer, keras.layers.Layer):
        raise ValueError(f"A factory must return a keras Layer. Received: {layer!r} for {name!r}")
    layer.name = name
    return layer


def conv(x, filters, kernel_size, strides, name, factory=None, groups=1, kernel_regularizer=None):
    """A bias-free conv named `<name>_conv`, PyTorch padding, built by `factory` if given.

    With `groups > 1` the template is a `GroupedConv2D` (a `Conv2D` subclass with TensorFlow's
    native grouped kernel: Keras' own grouped conv trains ~50x slower on CPU).
    """
    pad = (kernel_size - 1) // 2
    explicit_pad = strides > 1 and pad > 0
    layer_type = GroupedConv2D if groups > 1 else keras.layers.Conv2D
    grouping = {"groups": groups} if groups > 1 else {}
    template = layer_type(
        filters,
        kernel_size,
        strides=strides,
        padding="valid" if explicit_pad else "same",
        use_bias=False,
        kernel_initializer=he_normal_fan_out(),
        kernel_regularizer=kernel_regularizer,
        name=f"{name}_conv",
        **grouping,
    )
    zero_padding = ((pad, pad), (pad, pad))
    if factory is not None and explicit_pad and folds_zero_padding(factory):
        return _named(factory(template, zero_padding=zero_padding), template.name)(x)
    if explicit_pad:
        x = keras.layers.ZeroPadding2D(zero_padding, name=f"{name}_pad")(x)
    layer = template if factory is None else _named(factory(template), template.name)
    return layer(x)


def conv_bn(x, filters, kernel_size, strides, name, factory=None, relu=True, **conv_kwargs):
    """`conv` (`conv_kwargs`: `groups`, `kernel_regularizer`) + BN + ReLU (`<name>_bn/_relu`)."""
    x = conv(x, filters, kernel_size, strides, name, factory, **conv_kwargs)
    x = batch_norm(x, f"{name}_bn")
    return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x


def residual_add(shortcut, branch, name, attention=None):
    """ReLU(shortcut + attention(branch)), layers `<name>_add` and `<name>_out`."""
    if attention is not None:
        branch = _named(attention(int(branch.shape[-1])), f"{name}_add_attention")(branch)
    x = keras.layers.Add(name=f"{name}_add")([shortcut, branch])
    return keras.layers.ReLU(name=f"{name}_out")(x)


def projection_shortcut(x, filters, strides, name):
    """1×1 conv (stride `strides`) + BN when the shape changes, else identity."""
    if strides == 1 and x.shape[-1] == filters:
        return x
    return conv_bn(x, filters, 1, strides, f"{name}_0", relu=False)


def basic_block(x, filters, strides, name, conv_factory=None, attention=None, shortcut="B"):
    """He et al. basic block: 3×3 (stride) - BN - ReLU - 3×3 - BN, + shortcut, ReLU.

    `shortcut="B"`: projection (1×1 conv + BN) when the shape changes; `"A"`: parameter-free
    (subsample + zero channels), the CIFAR ResNet-20/56 of He et al.
    """
    if shortcut == "A":
        skip = x
        if strides != 1 or x.shape[-1] != filters:
            skip = OptionAShortcut(filters, strides, name=f"{name}_0_shortcut")(x)
    else:
        skip = projection_shortcut(x, filters, strides, name)
    y = conv_bn(x, filters, 3, strides, f"{name}_1", conv_factory)
    y = conv_bn(y, filters, 3, 1, f"{name}_2", conv_factory, relu=False)
    return residual_add(skip, y, name, attention)


def bottleneck_block(
    x, filters, strides, name, conv_factory=None, attention=None, groups=1, width_per_group=64
):
    """ResNet v1.5 / ResNeXt bottleneck: 1×1 - 3×3 (stride, `groups`) - 1×1 (4 × `filters`),
    + projection, ReLU. The 3×3 has torchvision's width `filters * width_per_group / 64 * groups`
    (`filters` for a ResNet)."""
    width = filters * width_per_group // 64 * groups
    skip = projection_shortcut(x, 4 * filters, strides, name)
    y = conv_bn(x, width, 1, 1, f"{name}_1")
    y = conv_bn(y, width, 3, strides, f"{name}_2", conv_factory, groups=groups)
    y = conv_bn(y, 4 * filters, 1, 1, f"{name}_3", relu=False)
    return residual_add(skip, y, name, attention)


def stack(x, block, filters, blocks, strides, name, **block_kwargs):
    """`blocks` blocks named `<name>_block1..`, the first one carrying the stride."""
    for index in range(blocks):
        x = block(
            x, filters, strides if index == 0 else 1, f"{name}_block{index + 1}", **block_kwargs
        )
    return x


@keras.saving.register_keras_serializable(package="keras_structconv")
class OptionAShortcut(keras.layers.Layer):
    """He et al.'s option-A shortcut: `x[:, ::s, ::s, :]`, zero channels added on both sides.

    The parameter-free shortcut of the CIFAR ResNet-20/32/44/56/110 (He et al., "Deep Residual
    Learning for Image Recognition", CVPR 2016, §4.2). Channels grow from C to `filters` by
    padding `(filters - C) // 2` zeros before and the rest after (as the common PyTorch
    reimplementation does with `F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes//4, planes//4))`).

    Args:
        filters: output channels, at least the input channels.
        strides: spatial subsampling factor.

    Input shape: `(batch, height, width, channels)`.
    Output shape: `(batch, ceil(height / strides), ceil(width / strides), filters)`.
    """

    def __init__(self, filters, strides=2, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(strides, int) or strides < 1:
            raise ValueError(f"`strides` must be a positive integer. Received: strides={strides!r}")
        self.filters = filters
        self.strides = strides

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None or channels > self.filters:
            raise ValueError(
                "`filters` must be at least the input channels. "
                f"Received: filters={self.filters}, input channels={channels}"
            )

    def call(self, inputs):
        x = inputs[:, :: self.strides, :: self.strides, :]
        extra = self.filters - inputs.shape[-1]
        return tf.pad(x, [[0, 0], [0, 0], [0, 0], [extra // 2, extra - extra // 2]])

    def compute_output_shape(self, input_shape):
        def subsample(size):
            return None if size is None else -(-size // self.strides)

        batch, height, width, _ = input_shape
        return (batch, subsample(height), subsample(width), self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "strides": self.strides}


def check_no_conv(variant, kwargs):
    """A PS-/Tree- variant makes its own `conv` factory: refuse one passed by the caller."""
    if kwargs.get("conv") is not None:
        raise ValueError(f"{variant} sets `conv` itself. Received: conv={kwargs['conv']!r}")
