"""CIFAR ResNets: He et al.'s ResNet-20/56 and the TAM paper's CIFAR ResNet-18/50.

- `ResNet20`, `ResNet56`: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016,
  §4.2 (https://arxiv.org/abs/1512.03385): 3×3 stem (16), three stages of n = 3 / 9 basic blocks
  with 16, 32, 64 filters (strides 1, 2, 2), parameter-free option-A shortcuts (subsample + zero
  channels), global average pool, dense classifier. 269,722 / 853,018 trainable (10 classes).
- `CifarResNet18`, `CifarResNet50`: the CIFAR ResNets used by the TAM paper (the widespread
  "pytorch-cifar" layout): 3×3 stem with 64 filters and no max-pool, four stages of 64, 128,
  256, 512 filters (strides 1, 2, 2, 2), basic blocks [2, 2, 2, 2] / bottlenecks ×4 [3, 4, 6, 3]
  with the stride on the 3×3 conv, projection shortcuts (1×1 conv + BN). 11,173,962 /
  23,520,842 trainable with 10 classes, 11,220,132 / 23,705,252 with 100.

Conventions as in `keras_structconv.models.resnet`: no conv biases, BatchNorm `momentum=0.9,
epsilon=1e-5`, He-normal (fan_out) init, PyTorch padding. The `conv` factory builds every 3×3
convolution but the stem (basic blocks: both; bottlenecks: the middle one); `attention` goes on
the residual branch right before each add. PS/Tree variants of the basic-block CIFAR ResNets are
this library's extension for small experiments (the papers use other CIFAR models).

Example:

```python
model = keras_structconv.models.ResNet20()  # (32, 32, 3) inputs, 10 classes
```
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras

from keras_structconv.models import _blocks
from keras_structconv.models._registry import register_model

__all__ = ["CifarResNet18", "CifarResNet50", "ResNet20", "ResNet56"]

# (filters, blocks, strides) of one stage; stages are named conv2, conv3, ...
_Stage = tuple[int, int, int]


def _cifar_resnet(
    name: str,
    stem_filters: int,
    stages: Sequence[_Stage],
    block: Callable[..., Any],
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
    **block_kwargs: Any,
) -> keras.Model:
    """The CIFAR ResNet family: a 3×3 stem (`stem_filters`), then `stages` of `block`."""
    _blocks.check_weights(weights)
    _blocks.check_head(include_top, pooling, classes)
    image, inputs = _blocks.model_input(input_tensor, input_shape, (32, 32, 3))
    x = _blocks.conv_bn(image, stem_filters, 3, 1, "conv1")
    for stage, (filters, blocks, strides) in enumerate(stages):
        x = _blocks.stack(
            x,
            block,
            filters,
            blocks,
            strides,
            name=f"conv{stage + 2}",
            conv_factory=conv,
            attention=attention,
            **block_kwargs,
        )
    x = _blocks.classifier_head(x, include_top, pooling, classes, classifier_activation)
    return keras.Model(inputs, x, name=name)


def _he_stages(depth: int) -> tuple[_Stage, ...]:
    """He et al.'s three stages of (depth - 2) / 6 basic blocks with 16, 32, 64 filters."""
    blocks = (depth - 2) // 6
    return ((16, blocks, 1), (32, blocks, 2), (64, blocks, 2))


def _wide_stages(blocks_per_stage: Sequence[int]) -> tuple[_Stage, ...]:
    """The TAM paper's CIFAR ResNets' four stages of 64, 128, 256, 512 filters."""
    return tuple(zip((64, 128, 256, 512), blocks_per_stage, (1, 2, 2, 2), strict=True))


@register_model
def ResNet20(
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
    name: str = "resnet20",
) -> keras.Model:
    """He et al.'s CIFAR ResNet-20 (§4.2, n = 3): 269,722 trainable weights with 10 classes.

    A 3×3 stem with 16 filters, three stages of 3 basic blocks with 16, 32 and 64 filters
    (strides 1, 2, 2), parameter-free option-A shortcuts (subsampling and zero channels), global
    average pooling and a dense classifier.

    Args:
        include_top: whether to end with global average pooling and a dense classifier.
        weights: must be None (no pretrained weights are shipped; nothing is downloaded).
        input_tensor: optional Keras tensor to build the model on.
        input_shape: `(height, width, channels)`, default (32, 32, 3).
        pooling: without the top, None (4D feature map), "avg" or "max".
        classes: number of classes of the classifier.
        classifier_activation: activation of the classifier ("softmax", None for logits).
        conv: optional factory `conv(template_conv2d) -> Layer` building both 3×3 convolutions
            of every basic block (not the stem) from their unbuilt `Conv2D` templates.
        attention: optional factory `attention(channels) -> Layer` placed on the residual
            branch before each add.
        name: model name.

    Returns:
        A functional `keras.Model`.

    Example:

    >>> ResNet20().output_shape  # (32, 32, 3) inputs
    (None, 10)
    """
    return _cifar_resnet(
        name,
        16,
        _he_stages(20),
        _blocks.basic_block,
        shortcut="A",
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
def ResNet56(
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
    name: str = "resnet56",
) -> keras.Model:
    """He et al.'s CIFAR ResNet-56 (§4.2, n = 9): 853,018 trainable weights with 10 classes.

    A 3×3 stem with 16 filters, three stages of 9 basic blocks with 16, 32 and 64 filters
    (strides 1, 2, 2), parameter-free option-A shortcuts (subsampling and zero channels), global
    average pooling and a dense classifier.

    Args:
        include_top: whether to end with global average pooling and a dense classifier.
        weights: must be None (no pretrained weights are shipped; nothing is downloaded).
        input_tensor: optional Keras tensor to build the model on.
        input_shape: `(height, width, channels)`, default (32, 32, 3).
        pooling: without the top, None (4D feature map), "avg" or "max".
        classes: number of classes of the classifier.
        classifier_activation: activation of the classifier ("softmax", None for logits).
        conv: optional factory `conv(template_conv2d) -> Layer` building both 3×3 convolutions
            of every basic block (not the stem) from their unbuilt `Conv2D` templates.
        attention: optional factory `attention(channels) -> Layer` placed on the residual
            branch before each add.
        name: model name.

    Returns:
        A functional `keras.Model`.

    Example:

    >>> ResNet56(classes=100).output_shape
    (None, 100)
    """
    return _cifar_resnet(
        name,
        16,
        _he_stages(56),
        _blocks.basic_block,
        shortcut="A",
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
def CifarResNet18(
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
    name: str = "cifar_resnet18",
) -> keras.Model:
    """The TAM paper's CIFAR ResNet-18: 11,173,962 trainable weights with 10 classes
    (11,220,132 with 100).

    The common "pytorch-cifar" layout: a 3×3 stem with 64 filters and no max-pooling, four
    stages of basic blocks [2, 2, 2, 2] with 64, 128, 256 and 512 filters (strides 1, 2, 2, 2),
    projection shortcuts (1×1 conv + BN) wherever the shape changes, global average pooling and
    a dense classifier.

    Args:
        include_top: whether to end with global average pooling and a dense classifier.
        weights: must be None (no pretrained weights are shipped; nothing is downloaded).
        input_tensor: optional Keras tensor to build the model on.
        input_shape: `(height, width, channels)`, default (32, 32, 3).
        pooling: without the top, None (4D feature map), "avg" or "max".
        classes: number of classes of the classifier.
        classifier_activation: activation of the classifier ("softmax", None for logits).
        conv: optional factory `conv(template_conv2d) -> Layer` building both 3×3 convolutions
            of every basic block (not the stem) from their unbuilt `Conv2D` templates.
        attention: optional factory `attention(channels) -> Layer` placed on the residual
            branch before each add.
        name: model name.

    Returns:
        A functional `keras.Model`.

    Example:

    >>> CifarResNet18(include_top=False, pooling="avg").output_shape
    (None, 512)
    """
    return _cifar_resnet(
        name,
        64,
        _wide_stages((2, 2, 2, 2)),
        _blocks.basic_block,
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
def CifarResNet50(
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
    name: str = "cifar_resnet50",
) -> keras.Model:
    """The TAM paper's CIFAR ResNet-50: 23,520,842 trainable weights with 10 classes
    (23,705,252 with 100).

    The common "pytorch-cifar" layout: a 3×3 stem with 64 filters and no max-pooling, four
    stages of bottlenecks [3, 4, 6, 3] with 64, 128, 256 and 512 planes (outputs ×4; strides 1,
    2, 2, 2 on the middle 3×3 conv), projection shortcuts (1×1 conv + BN) wherever the shape
    changes, global average pooling and a dense classifier.

    Args:
        include_top: whether to end with global average pooling and a dense classifier.
        weights: must be None (no pretrained weights are shipped; nothing is downloaded).
        input_tensor: optional Keras tensor to build the model on.
        input_shape: `(height, width, channels)`, default (32, 32, 3).
        pooling: without the top, None (4D feature map), "avg" or "max".
        classes: number of classes of the classifier.
        classifier_activation: activation of the classifier ("softmax", None for logits).
        conv: optional factory `conv(template_conv2d) -> Layer` building the middle 3×3
            convolution of every bottleneck (which carries the stride) from its unbuilt
            `Conv2D` template.
        attention: optional factory `attention(channels) -> Layer` placed on the residual
            branch before each add.
        name: model name.

    Returns:
        A functional `keras.Model`.

    Example:

    >>> CifarResNet50(classes=100).output_shape
    (None, 100)
    """
    return _cifar_resnet(
        name,
        64,
        _wide_stages((3, 4, 6, 3)),
        _blocks.bottleneck_block,
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
