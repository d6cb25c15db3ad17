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

Each builder takes the arguments of its vanilla builder plus `cyclic_interval` and
`dilation_pattern` (see `PSConv2D`). To convert any other functional model (e.g.
`keras.applications.ResNet50`), use `keras_structconv.convert(model, conv=psconv_factory())`.

Example:

```python
model = keras_structconv.models.PSResNet50(input_shape=(224, 224, 3), classes=1000)
```
"""

from collections.abc import Sequence
from typing import Any

import keras

from keras_structconv.layers.ps_conv import psconv_factory
from keras_structconv.models import _blocks, cifar_resnet, resnet, resnext
from keras_structconv.models._registry import register_model

__all__ = [
    "PSResNeXt29_16x64d",
    "PSResNeXt29_8x64d",
    "PSResNeXt50_32x4d",
    "PSResNeXt101_32x4d",
    "PSResNet20",
    "PSResNet50",
    "PSResNet56",
    "PSResNet101",
]


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

    Args:
        cyclic_interval: t, the length of the dilation cycle.
        dilation_pattern: t dilation rates; default (1, 2, 1, 4) for t = 4, otherwise slot 1
            dilated by 2 and the others by 1 (the paper's Table 3).
        name: model name.
        **kwargs: the vanilla builder's keyword arguments (`include_top`, `input_shape`,
            `classes`, `attention`, ...) except `conv`.

    Returns:
        A functional `keras.Model` with the vanilla model's parameter count.
    """
    _blocks.check_no_conv("PSResNet50", kwargs)
    return resnet.ResNet50(
        conv=psconv_factory(cyclic_interval, dilation_pattern), name=name, **kwargs
    )


@register_model
def PSResNet101(
    *,
    cyclic_interval: int = 4,
    dilation_pattern: Sequence[int] | None = None,
    name: str = "ps_resnet101",
    **kwargs: Any,
) -> keras.Model:
    """PS-ResNet-101 (paper Table 1): `ResNet101` (v1.5) with the 3×3 conv of every bottleneck a
    PSConv2D; the vanilla model's parameter count.

    Args:
        cyclic_interval: t, the length of the dilation cycle.
        dilation_pattern: t dilation rates; default (1, 2, 1, 4) for t = 4, otherwise slot 1
            dilated by 2 and the others by 1 (the paper's Table 3).
        name: model name.
        **kwargs: the vanilla builder's keyword arguments (`include_top`, `input_shape`,
            `classes`, `attention`, ...) except `conv`.

    Returns:
        A functional `keras.Model` with the vanilla model's parameter count.
    """
    _blocks.check_no_conv("PSResNet101", kwargs)
    return resnet.ResNet101(
        conv=psconv_factory(cyclic_interval, dilation_pattern), name=name, **kwargs
    )


@register_model
def PSResNeXt50_32x4d(
    *,
    cyclic_interval: int = 4,
    dilation_pattern: Sequence[int] | None = None,
    name: str = "ps_resnext50_32x4d",
    **kwargs: Any,
) -> keras.Model:
    """PS-ResNeXt-50 32×4d (paper Table 1): `ResNeXt50_32x4d` with every grouped 3×3 conv a
    PSConv2D applying the pattern inside each group.

    Args:
        cyclic_interval: t, the length of the dilation cycle.
        dilation_pattern: t dilation rates; default (1, 2, 1, 4) for t = 4, otherwise slot 1
            dilated by 2 and the others by 1 (the paper's Table 3).
        name: model name.
        **kwargs: the vanilla builder's keyword arguments (`include_top`, `input_shape`,
            `classes`, `attention`, ...) except `conv`.

    Returns:
        A functional `keras.Model` with the vanilla model's parameter count.
    """
    _blocks.check_no_conv("PSResNeXt50_32x4d", kwargs)
    return resnext.ResNeXt50_32x4d(
        conv=psconv_factory(cyclic_interval, dilation_pattern), name=name, **kwargs
    )


@register_model
def PSResNeXt101_32x4d(
    *,
    cyclic_interval: int = 4,
    dilation_pattern: Sequence[int] | None = None,
    name: str = "ps_resnext101_32x4d",
    **kwargs: Any,
) -> keras.Model:
    """PS-ResNeXt-101 32×4d (paper Table 1): `ResNeXt101_32x4d` with every grouped 3×3 conv a
    PSConv2D applying the pattern inside each group.

    Args:
        cyclic_interval: t, the length of the dilation cycle.
        dilation_pattern: t dilation rates; default (1, 2, 1, 4) for t = 4, otherwise slot 1
            dilated by 2 and the others by 1 (the paper's Table 3).
        name: model name.
        **kwargs: the vanilla builder's keyword arguments (`include_top`, `input_shape`,
            `classes`, `attention`, ...) except `conv`.

    Returns:
        A functional `keras.Model` with the vanilla model's parameter count.
    """
    _blocks.check_no_conv("PSResNeXt101_32x4d", kwargs)
    return resnext.ResNeXt101_32x4d(
        conv=psconv_factory(cyclic_interval, dilation_pattern), name=name, **kwargs
    )


@register_model
def PSResNeXt29_8x64d(
    *,
    cyclic_interval: int = 4,
    dilation_pattern: Sequence[int] | None = None,
    name: str = "ps_resnext29_8x64d",
    **kwargs: Any,
) -> keras.Model:
    """CIFAR PS-ResNeXt-29 8×64d (paper Table 6): `ResNeXt29_8x64d` with every grouped 3×3 conv
    a PSConv2D.

    Args:
        cyclic_interval: t, the length of the dilation cycle.
        dilation_pattern: t dilation rates; default (1, 2, 1, 4) for t = 4, otherwise slot 1
            dilated by 2 and the others by 1 (the paper's Table 3).
        name: model name.
        **kwargs: the vanilla builder's keyword arguments (`include_top`, `input_shape`,
            `classes`, `attention`, ...) except `conv`.

    Returns:
        A functional `keras.Model` with the vanilla model's parameter count.
    """
    _blocks.check_no_conv("PSResNeXt29_8x64d", kwargs)
    return resnext.ResNeXt29_8x64d(
        conv=psconv_factory(cyclic_interval, dilation_pattern), name=name, **kwargs
    )


@register_model
def PSResNeXt29_16x64d(
    *,
    cyclic_interval: int = 4,
    dilation_pattern: Sequence[int] | None = None,
    name: str = "ps_resnext29_16x64d",
    **kwargs: Any,
) -> keras.Model:
    """CIFAR PS-ResNeXt-29 16×64d (paper Table 6): `ResNeXt29_16x64d` with every grouped 3×3
    conv a PSConv2D.

    Args:
        cyclic_interval: t, the length of the dilation cycle.
        dilation_pattern: t dilation rates; default (1, 2, 1, 4) for t = 4, otherwise slot 1
            dilated by 2 and the others by 1 (the paper's Table 3).
        name: model name.
        **kwargs: the vanilla builder's keyword arguments (`include_top`, `input_shape`,
            `classes`, `attention`, ...) except `conv`.

    Returns:
        A functional `keras.Model` with the vanilla model's parameter count.
    """
    _blocks.check_no_conv("PSResNeXt29_16x64d", kwargs)
    return resnext.ResNeXt29_16x64d(
        conv=psconv_factory(cyclic_interval, dilation_pattern), name=name, **kwargs
    )


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

    Args:
        cyclic_interval: t, the length of the dilation cycle.
        dilation_pattern: t dilation rates; default (1, 2, 1, 4) for t = 4, otherwise slot 1
            dilated by 2 and the others by 1 (the paper's Table 3).
        name: model name.
        **kwargs: the vanilla builder's keyword arguments (`include_top`, `input_shape`,
            `classes`, `attention`, ...) except `conv`.

    Returns:
        A functional `keras.Model` with the vanilla model's parameter count.
    """
    _blocks.check_no_conv("PSResNet20", kwargs)
    return cifar_resnet.ResNet20(
        conv=psconv_factory(cyclic_interval, dilation_pattern), name=name, **kwargs
    )


@register_model
def PSResNet56(
    *,
    cyclic_interval: int = 4,
    dilation_pattern: Sequence[int] | None = None,
    name: str = "ps_resnet56",
    **kwargs: Any,
) -> keras.Model:
    """PS-ResNet-56: He et al.'s CIFAR `ResNet56` with every 3×3 conv but the stem a PSConv2D
    (this library's extension, not a model of the paper).

    Args:
        cyclic_interval: t, the length of the dilation cycle.
        dilation_pattern: t dilation rates; default (1, 2, 1, 4) for t = 4, otherwise slot 1
            dilated by 2 and the others by 1 (the paper's Table 3).
        name: model name.
        **kwargs: the vanilla builder's keyword arguments (`include_top`, `input_shape`,
            `classes`, `attention`, ...) except `conv`.

    Returns:
        A functional `keras.Model` with the vanilla model's parameter count.
    """
    _blocks.check_no_conv("PSResNet56", kwargs)
    return cifar_resnet.ResNet56(
        conv=psconv_factory(cyclic_interval, dilation_pattern), name=name, **kwargs
    )
