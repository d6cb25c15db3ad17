"""TAM variants of ResNets and mobile backbones: a TreeAttention module on every residual branch.

Reference: "Tree-structured Attention Module for Image Classification" (ICLR 2020 submission,
anonymous), Section 3: "We attach our module to the last part of every residual block before
addition" (group size 2 unless stated).

- `TAMResNet50`: `keras.applications.ResNet50` rewritten by `keras_structconv.convert`: 16 modules
  (one per bottleneck), +60,336 trainable weights with g=2.
- `TAMResNet20`, `TAMResNet56`: He et al.'s CIFAR ResNets with the module on every basic block
  (our extension for small experiments; the zoo trains TAM-ResNet-20).
- `TAMCifarResNet18`, `TAMCifarResNet50`: the TAM paper's CIFAR ResNets
  (`keras_structconv.models.CifarResNet18/50`) built with the module as their `attention`
  factory: +7,640 (8 modules) / +60,336 (16 modules).
- `TAMEfficientNetB0`, `TAMMobileNetV2`: `keras.applications` backbones rewritten the same way:
  9 / 10 modules (one per residual add; in EfficientNet the module sits between the block's
  `Dropout` and its `Add`). Not in the paper: our extension.
- `add_tree_attention(model, group_size)`: the same rewrite for any functional model.

Parameter overhead against the paper's Table 1 (CIFAR-100 heads, g=2): ResNet-18 +7,640
(+0.07 %; the paper says +0.00 %), ResNet-50 +60,336 (+0.25 %; the paper says +1.23 %). Neither the
paper's rule (4C - 5 weights per module of C channels with g = 2) nor the authors' release
produces the paper's +1.23 %.

The keras.applications builders take their usual arguments (`weights` can be None or a path to
a weights file; downloads are not available here).
"""

from typing import Any

import keras

from keras_structconv.layers.tree_attention import TreeAttention
from keras_structconv.models._registry import register_model
from keras_structconv.models.cifar_resnet import CifarResNet18, CifarResNet50, ResNet20, ResNet56
from keras_structconv.surgery import convert

__all__ = [
    "TAMCifarResNet18",
    "TAMCifarResNet50",
    "TAMEfficientNetB0",
    "TAMMobileNetV2",
    "TAMResNet20",
    "TAMResNet50",
    "TAMResNet56",
    "add_tree_attention",
    "tree_attention_factory",
]


def tree_attention_factory(group_size=2, **kwargs):
    """`attention(channels) -> TreeAttention(group_size, **kwargs)`, for `convert` and the
    builders' `attention=` argument (the module infers its channels when built)."""

    def attention(channels):
        del channels  # TreeAttention works for any channel count
        return TreeAttention(group_size, **kwargs)

    return attention


def add_tree_attention(model, group_size=2, return_report=False, **kwargs):
    """A copy of the functional `model` with a TreeAttention module before every residual add.

    Args:
        model: a functional keras model (e.g. from `keras.applications`).
        group_size: the modules' group size.
        return_report: also return `convert`'s report (one line per inserted module).
        **kwargs: further TreeAttention arguments (initializers, regularizers).

    Returns:
        The new model (untouched layers keep the original's weights), or `(model, report)`.
    """
    return convert(
        model, attention=tree_attention_factory(group_size, **kwargs), return_report=return_report
    )


def _with_tree_attention(application, name, group_size, application_kwargs):
    """`application(**application_kwargs)` (a `keras.applications` builder; `weights` defaults
    to None here, since nothing can be downloaded) with TreeAttention on its residual branches,
    renamed `name` (a functional model's name is set at construction)."""
    base = application(**{"weights": None, **application_kwargs})
    model = add_tree_attention(base, group_size)
    return keras.Model(model.inputs, model.outputs, name=name)


@register_model
def TAMResNet50(*, group_size: int = 2, name: str = "tam_resnet50", **kwargs: Any) -> keras.Model:
    """`keras.applications.ResNet50` with a TreeAttention module on each of its 16 residual
    branches (after the block's last BatchNorm, before the add): +60,336 weights with g = 2.

    Args:
        group_size: TreeAttention's group size g.
        name: model name.
        **kwargs: `keras.applications.ResNet50`'s arguments (`include_top`, `weights`,
            `input_tensor`, `input_shape`, `pooling`, `classes`, `classifier_activation`);
            `weights` defaults to None (ImageNet weights need a download; a local weights file
            is loaded into the vanilla model before the modules are added).

    Example:

    >>> TAMResNet50(input_shape=(64, 64, 3), classes=10).output_shape
    (None, 10)
    """
    return _with_tree_attention(keras.applications.ResNet50, name, group_size, kwargs)


@register_model
def TAMEfficientNetB0(
    *, group_size: int = 2, name: str = "tam_efficientnetb0", **kwargs: Any
) -> keras.Model:
    """`keras.applications.EfficientNetB0` with a TreeAttention module before each of its 9
    residual adds (between the block's Dropout and the Add). Our extension, not in the paper.

    Args:
        group_size: TreeAttention's group size g.
        name: model name.
        **kwargs: `keras.applications.EfficientNetB0`'s arguments; `weights` defaults to None.
    """
    return _with_tree_attention(keras.applications.EfficientNetB0, name, group_size, kwargs)


@register_model
def TAMMobileNetV2(
    *, group_size: int = 2, name: str = "tam_mobilenetv2", **kwargs: Any
) -> keras.Model:
    """`keras.applications.MobileNetV2` with a TreeAttention module before each of its 10
    residual adds (after the block's projection BatchNorm). Our extension, not in the paper.

    Args:
        group_size: TreeAttention's group size g.
        name: model name.
        **kwargs: `keras.applications.MobileNetV2`'s arguments; `weights` defaults to None.
    """
    return _with_tree_attention(keras.applications.MobileNetV2, name, group_size, kwargs)


@register_model
def TAMResNet20(*, group_size: int = 2, name: str = "tam_resnet20", **kwargs: Any) -> keras.Model:
    """He et al.'s CIFAR ResNet-20 (`ResNet20`, same arguments) with TreeAttention on the
    residual branch of each of its 9 basic blocks, before the add (the TAM paper's placement).

    Args:
        group_size: TreeAttention's group size g.
        name: model name.
        **kwargs: `keras_structconv.models.ResNet20`'s arguments (except `attention`).

    Example:

    >>> TAMResNet20().count_params() - ResNet20().count_params()  # 9 modules, 4C - 5 each
    1299
    """
    return ResNet20(attention=tree_attention_factory(group_size), name=name, **kwargs)


@register_model
def TAMResNet56(*, group_size: int = 2, name: str = "tam_resnet56", **kwargs: Any) -> keras.Model:
    """He et al.'s CIFAR ResNet-56 with TreeAttention on each of its 27 residual branches.

    Args:
        group_size: TreeAttention's group size g.
        name: model name.
        **kwargs: `keras_structconv.models.ResNet56`'s arguments (except `attention`).
    """
    return ResNet56(attention=tree_attention_factory(group_size), name=name, **kwargs)


@register_model
def TAMCifarResNet18(
    *, group_size: int = 2, name: str = "tam_cifar_resnet18", **kwargs: Any
) -> keras.Model:
    """The TAM paper's CIFAR ResNet-18 (`CifarResNet18`, same arguments) with TreeAttention on
    the residual branch of each of its 8 basic blocks: +7,640 trainable weights with g=2.

    Args:
        group_size: TreeAttention's group size g.
        name: model name.
        **kwargs: `keras_structconv.models.CifarResNet18`'s arguments (except `attention`).
    """
    return CifarResNet18(attention=tree_attention_factory(group_size), name=name, **kwargs)


@register_model
def TAMCifarResNet50(
    *, group_size: int = 2, name: str = "tam_cifar_resnet50", **kwargs: Any
) -> keras.Model:
    """The TAM paper's CIFAR ResNet-50 (`CifarResNet50`, same arguments) with TreeAttention on
    the residual branch of each of its 16 bottlenecks: +60,336 trainable weights with g=2.

    Args:
        group_size: TreeAttention's group size g.
        name: model name.
        **kwargs: `keras_structconv.models.CifarResNet50`'s arguments (except `attention`).
    """
    return CifarResNet50(attention=tree_attention_factory(group_size), name=name, **kwargs)
