"""ResNeXt: ImageNet ResNeXt-50/101 (32×4d) and the CIFAR ResNeXt-29 (8×64d, 16×64d).

Xie, Girshick, Dollár, Tu, He, "Aggregated Residual Transformations for Deep Neural Networks",
CVPR 2017 (https://arxiv.org/abs/1611.05431). The bottleneck's 3×3 convolution is grouped
(`cardinality` groups); it is a `GroupedConv2D` (TensorFlow's native grouped kernel), not
`keras.layers.Conv2D(groups=...)`, which runs through XLA on CPU and trains ~50x slower.

- ImageNet (`ResNeXt50_32x4d`, `ResNeXt101_32x4d`): torchvision's layout, i.e. the ResNet v1.5
  skeleton of `keras_structconv.models.resnet` (7×7 stem + max-pool, stages of 64, 128, 256, 512
  planes with strides 1, 2, 2, 2, stride on the 3×3 conv) with bottleneck width
  `planes * base_width / 64 * cardinality` (128, 256, 512, 1024 for 32×4d) and output
  `4 * planes`. 25,028,904 trainable parameters for ResNeXt-50 32×4d with 1000 classes
  (torchvision's `resnext50_32x4d`).
- CIFAR (`ResNeXt29_8x64d`, `ResNeXt29_16x64d`): the paper's §5.3 model (as in its Torch code
  and the common PyTorch port): 3×3 stem (64), three stages of three bottlenecks with outputs
  256, 512, 1024 (strides 1, 2, 2, stride on the 3×3 conv), width
  `cardinality * base_width * out / 256` (512, 1024, 2048 for 8×64d), a projection shortcut
  (1×1 conv + BN) where the shape changes, global average pooling and a dense classifier;
  34.4 M parameters for 8×64d (the paper's figure).

Conventions as in our ResNets: no conv biases, BatchNorm `momentum=0.9, epsilon=1e-5`, He-normal
(fan_out) init, PyTorch padding (a strided 3×3 conv is `ZeroPadding2D(1)` + 'valid'). The `conv`
factory (`conv(template) -> Layer`, the `keras_structconv.convert` contract) builds every grouped
3×3 convolution from a `GroupedConv2D` template; `attention(channels)` goes on the residual
branch before each add. `keras_structconv.models.PSResNeXt50_32x4d` etc. use it for PSConv2D.

Example:

```python
model = keras_structconv.models.ResNeXt29_8x64d(classes=100)  # (32, 32, 3) inputs
```
"""

import keras

from keras_structconv.layers.grouped_conv import GroupedConv2D
from keras_structconv.models import _blocks

__all__ = ["ResNeXt29_16x64d", "ResNeXt29_8x64d", "ResNeXt50_32x4d", "ResNeXt101_32x4d"]


def grouped_conv_bn(x, filters, groups, strides, name, factory=None):
    """Grouped 3×3 conv `<name>_conv` (PyTorch padding) + BN + ReLU; `factory` may replace it."""
    explicit_pad = strides > 1
    template = GroupedConv2D(
        filters,
        3,
        strides=strides,
        padding="valid" if explicit_pad else "same",
        groups=groups,
        use_bias=False,
        kernel_initializer=_blocks.conv_initializer(),
        name=f"{name}_conv",
    )
    if factory is not None and explicit_pad and getattr(factory, "folds_zero_padding", False):
        layer = _blocks._named(factory(template, zero_padding=((1, 1), (1, 1))), template.name)
    else:
        if explicit_pad:
            x = keras.layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
        layer = template if factory is None else _blocks._named(factory(template), template.name)
    x = layer(x)
    x = _blocks.batch_norm(x, f"{name}_bn")
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def resnext_bottleneck(
    x, width, out_filters, strides, name, cardinality, conv_factory=None, attention=None
):
    """1×1 (width) - grouped 3×3 (width, stride) - 1×1 (out), + projection shortcut, ReLU."""
    skip = _blocks.projection_shortcut(x, out_filters, strides, name)
    y = _blocks.conv_bn(x, width, 1, 1, f"{name}_1")
    y = grouped_conv_bn(y, width, cardinality, strides, f"{name}_2", conv_factory)
    y = _blocks.conv_bn(y, out_filters, 1, 1, f"{name}_3", relu=False)
    return _blocks.residual_add(skip, y, name, attention)


def _stage(x, stage, width, out_filters, blocks, strides, cardinality, conv, attention):
    for index in range(blocks):
        x = resnext_bottleneck(
            x,
            width,
            out_filters,
            strides if index == 0 else 1,
            f"conv{stage + 2}_block{index + 1}",
            cardinality,
            conv,
            attention,
        )
    return x


def _imagenet_resnext(
    name, blocks_per_stage, cardinality, base_width, *, include_top=True, weights=None,
    input_tensor=None, input_shape=None, pooling=None, classes=1000,
    classifier_activation="softmax", conv=None, attention=None,
):
    _blocks.check_weights(weights)
    _blocks.check_head(include_top, pooling, classes)
    default_shape = (224, 224, 3) if include_top else (None, None, 3)
    image, inputs = _blocks.model_input(input_tensor, input_shape, default_shape)
    x = _blocks.imagenet_stem(image)
    for stage, (planes, blocks, strides) in enumerate(
        zip((64, 128, 256, 512), blocks_per_stage, (1, 2, 2, 2), strict=True)
    ):
        width = planes * base_width // 64 * cardinality
        x = _stage(x, stage, width, 4 * planes, blocks, strides, cardinality, conv, attention)
    x = _blocks.classifier_head(x, include_top, pooling, classes, classifier_activation)
    return keras.Model(inputs, x, name=name)


def _cifar_resnext(
    name, cardinality, base_width, *, include_top=True, weights=None, input_tensor=None,
    input_shape=None, pooling=None, classes=10, classifier_activation="softmax", conv=None,
    attention=None,
):
    _blocks.check_weights(weights)
    _blocks.check_head(include_top, pooling, classes)
    image, inputs = _blocks.model_input(input_tensor, input_shape, (32, 32, 3))
    x = _blocks.conv_bn(image, 64, 3, 1, "conv1")
    for stage, (out_filters, strides) in enumerate(zip((256, 512, 1024), (1, 2, 2), strict=True)):
        width = cardinality * base_width * out_filters // 256
        x = _stage(x, stage, width, out_filters, 3, strides, cardinality, conv, attention)
    x = _blocks.classifier_head(x, include_top, pooling, classes, classifier_activation)
    return keras.Model(inputs, x, name=name)


_ARGS_DOC = """
    Args (keyword-only; the names and defaults of `keras.applications`):
        include_top: whether to end with global average pooling and a dense classifier.
        weights: must be None (no pretrained weights are shipped; nothing is downloaded).
        input_tensor: optional Keras tensor to build the model on.
        input_shape: `(height, width, channels)`; default {shape}.
        pooling: without the top, None (4-D feature map), "avg" or "max".
        classes: number of classes of the classifier.
        classifier_activation: activation of the classifier ("softmax", None for logits).
        conv: optional factory `conv(template) -> Layer` for every grouped 3×3 convolution (the
            template is an unbuilt `GroupedConv2D`, a `keras.layers.Conv2D` subclass).
        attention: optional factory `attention(channels) -> Layer` placed on the residual branch
            before each add.
        name: model name.

    Returns:
        A functional `keras.Model`.
"""


def ResNeXt50_32x4d(*, name="resnext50_32x4d", **kwargs):
    return _imagenet_resnext(name, (3, 4, 6, 3), 32, 4, **kwargs)


def ResNeXt101_32x4d(*, name="resnext101_32x4d", **kwargs):
    return _imagenet_resnext(name, (3, 4, 23, 3), 32, 4, **kwargs)


def ResNeXt29_8x64d(*, name="resnext29_8x64d", **kwargs):
    return _cifar_resnext(name, 8, 64, **kwargs)


def ResNeXt29_16x64d(*, name="resnext29_16x64d", **kwargs):
    return _cifar_resnext(name, 16, 64, **kwargs)


ResNeXt50_32x4d.__doc__ = (
    "ResNeXt-50 (32×4d), torchvision layout: bottlenecks [3, 4, 6, 3], 32 groups of width 4.\n"
    + _ARGS_DOC.format(shape="(224, 224, 3), or (None, None, 3) without the top")
)
ResNeXt101_32x4d.__doc__ = (
    "ResNeXt-101 (32×4d), torchvision layout: bottlenecks [3, 4, 23, 3], 32 groups of width 4.\n"
    + _ARGS_DOC.format(shape="(224, 224, 3), or (None, None, 3) without the top")
)
ResNeXt29_8x64d.__doc__ = (
    "CIFAR ResNeXt-29 (8×64d): three stages of three bottlenecks, 8 groups of width 64.\n"
    + _ARGS_DOC.format(shape="(32, 32, 3)")
)
ResNeXt29_16x64d.__doc__ = (
    "CIFAR ResNeXt-29 (16×64d): three stages of three bottlenecks, 16 groups of width 64.\n"
    + _ARGS_DOC.format(shape="(32, 32, 3)")
)
