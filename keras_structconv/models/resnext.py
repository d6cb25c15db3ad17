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

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras

from keras_structconv.layers.conv_factory import folds_zero_padding
from keras_structconv.layers.grouped_conv import GroupedConv2D
from keras_structconv.models import _blocks
from keras_structconv.models._registry import register_model

__all__ = ["ResNeXt29_16x64d", "ResNeXt29_8x64d", "ResNeXt50_32x4d", "ResNeXt101_32x4d"]

_ConvFactory = Callable[..., keras.layers.Layer]
_AttentionFactory = Callable[[int], keras.layers.Layer]


def grouped_conv_bn(
    x: keras.KerasTensor,
    filters: int,
    groups: int,
    strides: int,
    name: str,
    factory: _ConvFactory | None = None,
) -> keras.KerasTensor:
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
    if factory is not None and explicit_pad and folds_zero_padding(factory):
        layer = _blocks._named(factory(template, zero_padding=((1, 1), (1, 1))), template.name)
    else:
        if explicit_pad:
            x = keras.layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
        layer = template if factory is None else _blocks._named(factory(template), template.name)
    x = layer(x)
    x = _blocks.batch_norm(x, f"{name}_bn")
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def resnext_bottleneck(
    x: keras.KerasTensor,
    width: int,
    out_filters: int,
    strides: int,
    name: str,
    cardinality: int,
    conv_factory: _ConvFactory | None = None,
    attention: _AttentionFactory | None = None,
) -> keras.KerasTensor:
    """1×1 (width) - grouped 3×3 (width, stride) - 1×1 (out), + projection shortcut, ReLU."""
    skip = _blocks.projection_shortcut(x, out_filters, strides, name)
    y = _blocks.conv_bn(x, width, 1, 1, f"{name}_1")
    y = grouped_conv_bn(y, width, cardinality, strides, f"{name}_2", conv_factory)
    y = _blocks.conv_bn(y, out_filters, 1, 1, f"{name}_3", relu=False)
    return _blocks.residual_add(skip, y, name, attention)


def _stage(
    x: keras.KerasTensor,
    stage: int,
    width: int,
    out_filters: int,
    blocks: int,
    strides: int,
    cardinality: int,
    conv: _ConvFactory | None,
    attention: _AttentionFactory | None,
) -> keras.KerasTensor:
    """`blocks` bottlenecks `conv<stage + 2>_block<i>`; the first one carries the stride."""
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
    name: str,
    blocks_per_stage: Sequence[int],
    cardinality: int,
    base_width: int,
    *,
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: keras.KerasTensor | None = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: str | Callable[..., Any] | None = "softmax",
    conv: _ConvFactory | None = None,
    attention: _AttentionFactory | None = None,
) -> keras.Model:
    """The ImageNet ResNeXt family: the ResNet v1.5 skeleton with grouped bottlenecks."""
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
    name: str,
    cardinality: int,
    base_width: int,
    *,
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: keras.KerasTensor | None = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 10,
    classifier_activation: str | Callable[..., Any] | None = "softmax",
    conv: _ConvFactory | None = None,
    attention: _AttentionFactory | None = None,
) -> keras.Model:
    """The CIFAR ResNeXt-29 family: a 3×3 stem, three stages of three grouped bottlenecks."""
    _blocks.check_weights(weights)
    _blocks.check_head(include_top, pooling, classes)
    image, inputs = _blocks.model_input(input_tensor, input_shape, (32, 32, 3))
    x = _blocks.conv_bn(image, 64, 3, 1, "conv1")
    for stage, (out_filters, strides) in enumerate(zip((256, 512, 1024), (1, 2, 2), strict=True)):
        width = cardinality * base_width * out_filters // 256
        x = _stage(x, stage, width, out_filters, 3, strides, cardinality, conv, attention)
    x = _blocks.classifier_head(x, include_top, pooling, classes, classifier_activation)
    return keras.Model(inputs, x, name=name)


@register_model
def ResNeXt50_32x4d(
    *,
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: keras.KerasTensor | None = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: str | Callable[..., Any] | None = "softmax",
    conv: Callable[..., keras.layers.Layer] | None = None,
    attention: Callable[[int], keras.layers.Layer] | None = None,
    name: str = "resnext50_32x4d",
) -> keras.Model:
    """ResNeXt-50 32×4d (Xie et al. 2017, torchvision layout): 25,028,904 trainable weights with
    1000 classes.

    The ResNet-50 v1.5 skeleton (7×7/2 stem with 3×3/2 max-pooling, bottlenecks [3, 4, 6, 3],
    strides 1, 2, 2, 2 on the 3×3 conv) whose 3×3 convolutions have 32 groups of width 4:
    bottleneck widths 128, 256, 512, 1024 and outputs 256, 512, 1024, 2048.

    Args:
        include_top: whether to end with global average pooling and a dense classifier.
        weights: must be None (no pretrained weights are shipped; nothing is downloaded).
        input_tensor: optional Keras tensor to build the model on.
        input_shape: `(height, width, channels)`; default (224, 224, 3), or (None, None, 3)
            without the top.
        pooling: without the top, None (4D feature map), "avg" or "max".
        classes: number of classes of the classifier.
        classifier_activation: activation of the classifier ("softmax", None for logits).
        conv: optional factory `conv(template) -> Layer` building every grouped 3×3 convolution
            from its unbuilt `GroupedConv2D` template (a `keras.layers.Conv2D` subclass).
        attention: optional factory `attention(channels) -> Layer` placed on the residual
            branch before each add.
        name: model name.

    Returns:
        A functional `keras.Model`.

    Example:

    >>> ResNeXt50_32x4d(include_top=False, pooling="avg", input_shape=(64, 64, 3)).output_shape
    (None, 2048)
    """
    return _imagenet_resnext(
        name,
        (3, 4, 6, 3),
        32,
        4,
        include_top=include_top,
        weights=weights,
        input_tensor=input_tensor,
        input_shape=input_shape,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        conv=conv,
        attention=attention,
    )


@register_model
def ResNeXt101_32x4d(
    *,
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: keras.KerasTensor | None = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: str | Callable[..., Any] | None = "softmax",
    conv: Callable[..., keras.layers.Layer] | None = None,
    attention: Callable[[int], keras.layers.Layer] | None = None,
    name: str = "resnext101_32x4d",
) -> keras.Model:
    """ResNeXt-101 32×4d (Xie et al. 2017, torchvision layout).

    As `ResNeXt50_32x4d` with bottlenecks [3, 4, 23, 3]: the ResNet-101 v1.5 skeleton whose 3×3
    convolutions have 32 groups of width 4 (bottleneck widths 128, 256, 512, 1024).

    Args:
        include_top: whether to end with global average pooling and a dense classifier.
        weights: must be None (no pretrained weights are shipped; nothing is downloaded).
        input_tensor: optional Keras tensor to build the model on.
        input_shape: `(height, width, channels)`; default (224, 224, 3), or (None, None, 3)
            without the top.
        pooling: without the top, None (4D feature map), "avg" or "max".
        classes: number of classes of the classifier.
        classifier_activation: activation of the classifier ("softmax", None for logits).
        conv: optional factory `conv(template) -> Layer` building every grouped 3×3 convolution
            from its unbuilt `GroupedConv2D` template (a `keras.layers.Conv2D` subclass).
        attention: optional factory `attention(channels) -> Layer` placed on the residual
            branch before each add.
        name: model name.

    Returns:
        A functional `keras.Model`.

    Example:

    >>> ResNeXt101_32x4d(input_shape=(64, 64, 3), classes=10).output_shape
    (None, 10)
    """
    return _imagenet_resnext(
        name,
        (3, 4, 23, 3),
        32,
        4,
        include_top=include_top,
        weights=weights,
        input_tensor=input_tensor,
        input_shape=input_shape,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        conv=conv,
        attention=attention,
    )


@register_model
def ResNeXt29_8x64d(
    *,
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: keras.KerasTensor | None = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 10,
    classifier_activation: str | Callable[..., Any] | None = "softmax",
    conv: Callable[..., keras.layers.Layer] | None = None,
    attention: Callable[[int], keras.layers.Layer] | None = None,
    name: str = "resnext29_8x64d",
) -> keras.Model:
    """CIFAR ResNeXt-29 8×64d (Xie et al. 2017, §5.3): 34,426,698 trainable weights with 10
    classes.

    A 3×3 stem with 64 filters, three stages of three bottlenecks with outputs 256, 512, 1024
    (strides 1, 2, 2 on the 3×3 conv) whose 3×3 convolutions have 8 groups of width 64
    (bottleneck widths 512, 1024, 2048), projection shortcuts where the shape changes, global
    average pooling and a dense classifier.

    Args:
        include_top: whether to end with global average pooling and a dense classifier.
        weights: must be None (no pretrained weights are shipped; nothing is downloaded).
        input_tensor: optional Keras tensor to build the model on.
        input_shape: `(height, width, channels)`; default (32, 32, 3).
        pooling: without the top, None (4D feature map), "avg" or "max".
        classes: number of classes of the classifier.
        classifier_activation: activation of the classifier ("softmax", None for logits).
        conv: optional factory `conv(template) -> Layer` building every grouped 3×3 convolution
            from its unbuilt `GroupedConv2D` template (a `keras.layers.Conv2D` subclass).
        attention: optional factory `attention(channels) -> Layer` placed on the residual
            branch before each add.
        name: model name.

    Returns:
        A functional `keras.Model`.

    Example:

    >>> ResNeXt29_8x64d(classes=100).output_shape  # (32, 32, 3) inputs
    (None, 100)
    """
    return _cifar_resnext(
        name,
        8,
        64,
        include_top=include_top,
        weights=weights,
        input_tensor=input_tensor,
        input_shape=input_shape,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        conv=conv,
        attention=attention,
    )


@register_model
def ResNeXt29_16x64d(
    *,
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: keras.KerasTensor | None = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 10,
    classifier_activation: str | Callable[..., Any] | None = "softmax",
    conv: Callable[..., keras.layers.Layer] | None = None,
    attention: Callable[[int], keras.layers.Layer] | None = None,
    name: str = "resnext29_16x64d",
) -> keras.Model:
    """CIFAR ResNeXt-29 16×64d (Xie et al. 2017, §5.3).

    As `ResNeXt29_8x64d` with 16 groups of width 64 (bottleneck widths 1024, 2048, 4096).

    Args:
        include_top: whether to end with global average pooling and a dense classifier.
        weights: must be None (no pretrained weights are shipped; nothing is downloaded).
        input_tensor: optional Keras tensor to build the model on.
        input_shape: `(height, width, channels)`; default (32, 32, 3).
        pooling: without the top, None (4D feature map), "avg" or "max".
        classes: number of classes of the classifier.
        classifier_activation: activation of the classifier ("softmax", None for logits).
        conv: optional factory `conv(template) -> Layer` building every grouped 3×3 convolution
            from its unbuilt `GroupedConv2D` template (a `keras.layers.Conv2D` subclass).
        attention: optional factory `attention(channels) -> Layer` placed on the residual
            branch before each add.
        name: model name.

    Returns:
        A functional `keras.Model`.

    Example:

    >>> ResNeXt29_16x64d(include_top=False).output_shape
    (None, 8, 8, 1024)
    """
    return _cifar_resnext(
        name,
        16,
        64,
        include_top=include_top,
        weights=weights,
        input_tensor=input_tensor,
        input_shape=input_shape,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        conv=conv,
        attention=attention,
    )
