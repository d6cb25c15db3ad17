"""PS-ResNet and PS-ResNeXt: our builders with every 3×3 bottleneck conv replaced by PSConv2D.

Li, Yao, Chen, "PSConv: Squeezing Feature Pyramid into One Compact Poly-Scale Convolutional
Layer", ECCV 2020 (https://arxiv.org/abs/2007.06191), §4.1: "We replace all the 3×3 standard
convolutional layers in the middle of bottleneck blocks with our PSConv layers", in all four
stages of a torchvision-style ResNet (v1.5: the stride sits on the 3×3 conv), not the stem and
not the 1×1 convs; default cyclic interval 4 with the pattern (1, 2, 1, 4). The replacement keeps
`filters`, stride, padding, groups and `use_bias` of the vanilla conv, so every model here has
exactly the parameters of its vanilla counterpart (e.g. 25,557,032 for PS-ResNet-50).

- `PSResNet50`, `PSResNet101`: on `keras_structconv.models.ResNet50/101` (the paper's Table 1).
- `PSResNeXt50_32x4d`, `PSResNeXt101_32x4d`: grouped 3×3 convs with the pattern inside each group
  (Table 1); `PSResNeXt29_8x64d`, `PSResNeXt29_16x64d`: the paper's CIFAR models (Table 6).
- `PSResNet20`, `PSResNet56`: every 3×3 conv but the stem of He et al.'s CIFAR ResNets (basic
  blocks). This is this library's extension for small experiments, not a model of the paper.

`with_psconv(vanilla, ...)` is the family: each builder is `with_psconv` of its vanilla builder,
and takes that builder's arguments plus `cyclic_interval` and `dilation_pattern` (see
`PSConv2D`). To convert any other functional model (e.g. `keras.applications.ResNet50`), use
`keras_structconv.convert(model, conv=psconv_factory())`.

Example:

```python
model = keras_structconv.models.PSResNet50(input_shape=(224, 224, 3), classes=1000)
```
"""

from collections.abc import Callable, Sequence
from typing import Any

import keras

from keras_structconv.layers import psconv_factory
from keras_structconv.models import _blocks
from keras_structconv.models._registry import register_model
from keras_structconv.models.cifar_resnet import ResNet20, ResNet56
from keras_structconv.models.resnet import ResNet50, ResNet101
from keras_structconv.models.resnext import (
    ResNeXt29_8x64d,
    ResNeXt29_16x64d,
    ResNeXt50_32x4d,
    ResNeXt101_32x4d,
)

__all__ = [
    "PSResNeXt29_16x64d",
    "PSResNeXt29_8x64d",
    "PSResNeXt50_32x4d",
    "PSResNeXt101_32x4d",
    "PSResNet20",
    "PSResNet50",
    "PSResNet56",
    "PSResNet101",
    "with_psconv",
]


def with_psconv(
    vanilla: Callable[..., keras.Model],
    cyclic_interval: int = 4,
    dilation_pattern: Sequence[int] | None = None,
    **kwargs: Any,
) -> keras.Model:
    """`vanilla(conv=psconv_factory(cyclic_interval, dilation_pattern), **kwargs)`: the model of
    a builder of this package with every convolution its `conv` factory builds a `PSConv2D`.

    `PSConv2D.from_conv` keeps the filters, stride, padding, groups and `use_bias` of each
    replaced convolution, so the model has the vanilla model's parameter count.

    Args:
        vanilla: a builder with a `conv` argument (`ResNet50`, `ResNeXt50_32x4d`, `ResNet20`,
            ...).
        cyclic_interval: t, the length of the dilation cycle.
        dilation_pattern: t dilation rates; default (1, 2, 1, 4) for t = 4, otherwise slot 1
            dilated by 2 and the others by 1 (the paper's Table 3).
        **kwargs: the vanilla builder's keyword arguments (`name`, `include_top`,
            `input_shape`, `classes`, `attention`, ...) except `conv`.

    Returns:
        A functional `keras.Model` with the vanilla model's parameter count.

    Example:

    >>> with_psconv(ResNet20, cyclic_interval=2).count_params() == ResNet20().count_params()
    True
    """
    _blocks.check_no_conv(f"The PSConv2D variant of {vanilla.__name__}", kwargs)
    return vanilla(conv=psconv_factory(cyclic_interval, dilation_pattern), **kwargs)


@register_model
def PSResNet50(
    *,
    cyclic_interval: int = 4,
    dilation_pattern: Sequence[int] | None = None,
    name: str = "ps_resnet50",
    **kwargs: Any,
) -> keras.Model:
    """PS-ResNet-50 (paper Table 1): `ResNet50` (v1.5) with the 3×3 conv of every bottleneck a
    PSConv2D; 25,557,032 trainable weights with 1000 classes, as the vanilla model.

    Other arguments: as `with_psconv`.

    Example:

    >>> PSResNet50(input_shape=(64, 64, 3), classes=10).output_shape
    (None, 10)
    """
    return with_psconv(ResNet50, cyclic_interval, dilation_pattern, name=name, **kwargs)


@register_model
def PSResNet101(
    *,
    cyclic_interval: int = 4,
    dilation_pattern: Sequence[int] | None = None,
    name: str = "ps_resnet101",
    **kwargs: Any,
) -> keras.Model:
    """PS-ResNet-101 (paper Table 1): `ResNet101` (v1.5) with the 3×3 conv of every bottleneck a
    PSConv2D; 44,549,160 trainable weights with 1000 classes, as the vanilla model.

    Other arguments: as `with_psconv`.

    Example:

    >>> PSResNet101(include_top=False, pooling="avg", input_shape=(64, 64, 3)).output_shape
    (None, 2048)
    """
    return with_psconv(ResNet101, cyclic_interval, dilation_pattern, name=name, **kwargs)


@register_model
def PSResNeXt50_32x4d(
    *,
    cyclic_interval: int = 4,
    dilation_pattern: Sequence[int] | None = None,
    name: str = "ps_resnext50_32x4d",
    **kwargs: Any,
) -> keras.Model:
    """PS-ResNeXt-50 32×4d (paper Table 1): `ResNeXt50_32x4d` with every grouped 3×3 conv a
    PSConv2D applying the pattern inside each group; 25,028,904 trainable weights with 1000
    classes, as the vanilla model.

    Other arguments: as `with_psconv`.

    Example:

    >>> PSResNeXt50_32x4d(input_shape=(64, 64, 3), cyclic_interval=2).output_shape
    (None, 1000)
    """
    return with_psconv(ResNeXt50_32x4d, cyclic_interval, dilation_pattern, name=name, **kwargs)


@register_model
def PSResNeXt101_32x4d(
    *,
    cyclic_interval: int = 4,
    dilation_pattern: Sequence[int] | None = None,
    name: str = "ps_resnext101_32x4d",
    **kwargs: Any,
) -> keras.Model:
    """PS-ResNeXt-101 32×4d (paper Table 1): `ResNeXt101_32x4d` with every grouped 3×3 conv a
    PSConv2D applying the pattern inside each group; 44,177,704 trainable weights with 1000
    classes, as the vanilla model.

    Other arguments: as `with_psconv`.

    Example:

    >>> PSResNeXt101_32x4d(include_top=False, input_shape=(64, 64, 3)).output_shape
    (None, 2, 2, 2048)
    """
    return with_psconv(ResNeXt101_32x4d, cyclic_interval, dilation_pattern, name=name, **kwargs)


@register_model
def PSResNeXt29_8x64d(
    *,
    cyclic_interval: int = 4,
    dilation_pattern: Sequence[int] | None = None,
    name: str = "ps_resnext29_8x64d",
    **kwargs: Any,
) -> keras.Model:
    """CIFAR PS-ResNeXt-29 8×64d (paper Table 6): `ResNeXt29_8x64d` with every grouped 3×3 conv
    a PSConv2D; 34,426,698 trainable weights with 10 classes, as the vanilla model.

    Other arguments: as `with_psconv`.

    Example:

    >>> PSResNeXt29_8x64d(classes=100).output_shape  # (32, 32, 3) inputs
    (None, 100)
    """
    return with_psconv(ResNeXt29_8x64d, cyclic_interval, dilation_pattern, name=name, **kwargs)


@register_model
def PSResNeXt29_16x64d(
    *,
    cyclic_interval: int = 4,
    dilation_pattern: Sequence[int] | None = None,
    name: str = "ps_resnext29_16x64d",
    **kwargs: Any,
) -> keras.Model:
    """CIFAR PS-ResNeXt-29 16×64d (paper Table 6): `ResNeXt29_16x64d` with every grouped 3×3
    conv a PSConv2D; 68,155,210 trainable weights with 10 classes, as the vanilla model.

    Other arguments: as `with_psconv`.

    Example:

    >>> PSResNeXt29_16x64d(include_top=False, pooling="avg").output_shape
    (None, 1024)
    """
    return with_psconv(ResNeXt29_16x64d, cyclic_interval, dilation_pattern, name=name, **kwargs)


@register_model
def PSResNet20(
    *,
    cyclic_interval: int = 4,
    dilation_pattern: Sequence[int] | None = None,
    name: str = "ps_resnet20",
    **kwargs: Any,
) -> keras.Model:
    """PS-ResNet-20: He et al.'s CIFAR `ResNet20` with every 3×3 conv but the stem a PSConv2D
    (this library's extension for small experiments, not a model of the paper); 269,722
    trainable weights with 10 classes, as the vanilla model.

    Other arguments: as `with_psconv`.

    Example:

    >>> PSResNet20(cyclic_interval=2).get_layer("conv2_block1_1_conv").dilation_pattern
    (1, 2)
    """
    return with_psconv(ResNet20, cyclic_interval, dilation_pattern, name=name, **kwargs)


@register_model
def PSResNet56(
    *,
    cyclic_interval: int = 4,
    dilation_pattern: Sequence[int] | None = None,
    name: str = "ps_resnet56",
    **kwargs: Any,
) -> keras.Model:
    """PS-ResNet-56: He et al.'s CIFAR `ResNet56` with every 3×3 conv but the stem a PSConv2D
    (this library's extension, not a model of the paper); 853,018 trainable weights with 10
    classes, as the vanilla model.

    Other arguments: as `with_psconv`.

    Example:

    >>> PSResNet56(classes=100, classifier_activation=None).output_shape
    (None, 100)
    """
    return with_psconv(ResNet56, cyclic_interval, dilation_pattern, name=name, **kwargs)
