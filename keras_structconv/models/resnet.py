"""ImageNet-style ResNets as torchvision builds them (ResNet v1.5), with conv/attention factories.

He et al., "Deep Residual Learning for Image Recognition", CVPR 2016
(https://arxiv.org/abs/1512.03385); "v1.5" is torchvision's variant that puts the stride of a
bottleneck on its 3×3 convolution instead of the first 1×1 (as PS-ResNet and TAM-ResNet do).

Layout: stem 7×7/2 conv (64) - BN - ReLU - 3×3/2 max-pool; four stages of 64, 128, 256, 512
filters (strides 1, 2, 2, 2), basic blocks (ResNet-18) or bottlenecks ×4 (ResNet-50/101), a
projection shortcut (1×1 conv + BN) wherever the shape changes; global average pool and a dense
classifier. No conv biases, BatchNorm `momentum=0.9, epsilon=1e-5`, He-normal (fan_out) init,
symmetric PyTorch padding (see `_blocks`). Trainable parameters with 1000 classes equal
torchvision's: ResNet-18 11,689,512; ResNet-50 25,557,032; ResNet-101 44,549,160.

The factories are those of `keras_structconv.convert`: `conv(template) -> Layer` builds every
3×3 convolution but the stem (ResNet-50/101: the bottleneck 3×3, which carries the stride;
ResNet-18: both 3×3 convolutions of every basic block), `attention(channels) -> Layer` goes on
the residual branch right before each add.

Example:

```python
model = keras_structconv.models.ResNet50(input_shape=(224, 224, 3), classes=1000)
```
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras

from keras_structconv.models import _blocks
from keras_structconv.models._registry import register_model

__all__ = ["ResNet18", "ResNet50", "ResNet101"]

_STAGE_FILTERS = (64, 128, 256, 512)
_STAGE_STRIDES = (1, 2, 2, 2)


def _resnet(
    name: str,
    block: Callable[..., Any],
    blocks_per_stage: Sequence[int],
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
) -> keras.Model:
    """The ResNet family: `block` (basic or bottleneck) repeated `blocks_per_stage` times."""
    _blocks.check_weights(weights)
    _blocks.check_head(include_top, pooling, classes)
    default_shape = (224, 224, 3) if include_top else (None, None, 3)
    image, inputs = _blocks.model_input(input_tensor, input_shape, default_shape)

    x = _blocks.imagenet_stem(image)

    for stage, (filters, strides, blocks) in enumerate(
        zip(_STAGE_FILTERS, _STAGE_STRIDES, blocks_per_stage, strict=True)
    ):
        x = _blocks.stack(
            x,
            block,
            filters,
            blocks,
            strides,
            name=f"conv{stage + 2}",
            conv_factory=conv,
            attention=attention,
        )
    x = _blocks.classifier_head(x, include_top, pooling, classes, classifier_activation)
    return keras.Model(inputs, x, name=name)


@register_model
def ResNet18(
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
    name: str = "resnet18",
) -> keras.Model:
    """ResNet-18 (He et al. 2016, torchvision layout): 11,689,512 trainable weights with 1000
    classes.

    A 7×7/2 stem with 3×3/2 max-pooling, then four stages of basic blocks [2, 2, 2, 2] with 64,
    128, 256 and 512 filters (strides 1, 2, 2, 2), a projection shortcut wherever the shape
    changes, global average pooling and a dense classifier.

    Args:
        include_top: whether to end with global average pooling and a dense classifier.
        weights: must be None (no pretrained weights are shipped; nothing is downloaded).
        input_tensor: optional Keras tensor to build the model on.
        input_shape: `(height, width, channels)`; default (224, 224, 3), or (None, None, 3)
            without the top.
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

    >>> ResNet18(input_shape=(64, 64, 3), classes=10).output_shape
    (None, 10)
    """
    return _resnet(
        name,
        _blocks.basic_block,
        (2, 2, 2, 2),
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
def ResNet50(
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
    name: str = "resnet50",
) -> keras.Model:
    """ResNet-50 v1.5 (He et al. 2016, torchvision layout): 25,557,032 trainable weights with
    1000 classes.

    A 7×7/2 stem with 3×3/2 max-pooling, then four stages of bottlenecks [3, 4, 6, 3] with 64,
    128, 256 and 512 planes (outputs ×4; strides 1, 2, 2, 2 on the 3×3 conv), a projection
    shortcut wherever the shape changes, global average pooling and a dense classifier.

    Args:
        include_top: whether to end with global average pooling and a dense classifier.
        weights: must be None (no pretrained weights are shipped; nothing is downloaded).
        input_tensor: optional Keras tensor to build the model on.
        input_shape: `(height, width, channels)`; default (224, 224, 3), or (None, None, 3)
            without the top.
        pooling: without the top, None (4D feature map), "avg" or "max".
        classes: number of classes of the classifier.
        classifier_activation: activation of the classifier ("softmax", None for logits).
        conv: optional factory `conv(template_conv2d) -> Layer` building the 3×3 convolution of
            every bottleneck (which carries the stride) from its unbuilt `Conv2D` template.
        attention: optional factory `attention(channels) -> Layer` placed on the residual
            branch before each add.
        name: model name.

    Returns:
        A functional `keras.Model`.

    Example:

    >>> ResNet50(include_top=False, pooling="avg", input_shape=(64, 64, 3)).output_shape
    (None, 2048)
    """
    return _resnet(
        name,
        _blocks.bottleneck_block,
        (3, 4, 6, 3),
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
def ResNet101(
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
    name: str = "resnet101",
) -> keras.Model:
    """ResNet-101 v1.5 (He et al. 2016, torchvision layout): 44,549,160 trainable weights with
    1000 classes.

    As `ResNet50` with bottlenecks [3, 4, 23, 3]: a 7×7/2 stem with 3×3/2 max-pooling, four
    stages of 64, 128, 256 and 512 planes (outputs ×4; strides 1, 2, 2, 2 on the 3×3 conv),
    global average pooling and a dense classifier.

    Args:
        include_top: whether to end with global average pooling and a dense classifier.
        weights: must be None (no pretrained weights are shipped; nothing is downloaded).
        input_tensor: optional Keras tensor to build the model on.
        input_shape: `(height, width, channels)`; default (224, 224, 3), or (None, None, 3)
            without the top.
        pooling: without the top, None (4D feature map), "avg" or "max".
        classes: number of classes of the classifier.
        classifier_activation: activation of the classifier ("softmax", None for logits).
        conv: optional factory `conv(template_conv2d) -> Layer` building the 3×3 convolution of
            every bottleneck (which carries the stride) from its unbuilt `Conv2D` template.
        attention: optional factory `attention(channels) -> Layer` placed on the residual
            branch before each add.
        name: model name.

    Returns:
        A functional `keras.Model`.

    Example:

    >>> ResNet101(input_shape=(64, 64, 3), classifier_activation=None).output_shape
    (None, 1000)
    """
    return _resnet(
        name,
        _blocks.bottleneck_block,
        (3, 4, 23, 3),
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
