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

Two families: `with_tree_attention(builder, group_size, ...)` gives a builder of this package the
module as its `attention` factory; `application_with_tree_attention(application, group_size,
...)` rewrites a `keras.applications` model with `add_tree_attention` (`weights` can be None or
a path to a weights file; downloads are not available here).
"""

from collections.abc import Callable
from typing import Any

import keras

from keras_structconv.layers import TreeAttention
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
    "application_with_tree_attention",
    "tree_attention_factory",
    "with_tree_attention",
]


def tree_attention_factory(group_size: int = 2, **kwargs: Any) -> Callable[[int], TreeAttention]:
    """`attention(channels) -> TreeAttention(group_size, **kwargs)`, for `convert` and the
    builders' `attention=` argument (the module infers its channels when built)."""

    def attention(channels):
        del channels  # TreeAttention works for any channel count
        return TreeAttention(group_size, **kwargs)

    return attention


def add_tree_attention(
    model: keras.Model, group_size: int = 2, return_report: bool = False, **kwargs: Any
) -> Any:
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


def with_tree_attention(
    builder: Callable[..., keras.Model], group_size: int = 2, **kwargs: Any
) -> keras.Model:
    """`builder(attention=tree_attention_factory(group_size), **kwargs)`: the model of a builder
    of this package with a TreeAttention module on every residual branch, before the add (the
    TAM paper's placement); each module has `4C - 5` weights with g = 2.

    Args:
        builder: a builder with an `attention` argument (`ResNet20`, `CifarResNet18`, ...).
        group_size: TreeAttention's group size g.
        **kwargs: the builder's keyword arguments (`name`, `include_top`, `input_shape`,
            `classes`, `conv`, ...) except `attention`.

    Returns:
        A functional `keras.Model`.

    Example:

    >>> with_tree_attention(ResNet20).count_params() - ResNet20().count_params()  # 9 modules
    1299
    """
    return builder(attention=tree_attention_factory(group_size), **kwargs)


def application_with_tree_attention(
    application: Callable[..., keras.Model], group_size: int = 2, *, name: str, **kwargs: Any
) -> keras.Model:
    """`application(**kwargs)` (a `keras.applications` builder) with a TreeAttention module
    before each of its residual adds (`add_tree_attention`), named `name`.

    Args:
        application: e.g. `keras.applications.ResNet50`.
        group_size: TreeAttention's group size g.
        name: model name (a functional model's name is set when it is built).
        **kwargs: the application's arguments (`include_top`, `weights`, `input_tensor`,
            `input_shape`, `pooling`, `classes`, `classifier_activation`); `weights` defaults
            to None (ImageNet weights need a download; a local weights file is loaded into the
            vanilla model before the modules are added).

    Returns:
        A functional `keras.Model`; untouched layers keep the application's weights.

    Example:

    >>> model = application_with_tree_attention(
    ...     keras.applications.MobileNetV2, input_shape=(64, 64, 3), name="tam_mobilenetv2"
    ... )
    >>> len([layer for layer in model.layers if isinstance(layer, TreeAttention)])
    10
    """
    base = application(**{"weights": None, **kwargs})
    model = add_tree_attention(base, group_size)
    return keras.Model(model.inputs, model.outputs, name=name)


@register_model
def TAMResNet50(*, group_size: int = 2, name: str = "tam_resnet50", **kwargs: Any) -> keras.Model:
    """`keras.applications.ResNet50` with a TreeAttention module on each of its 16 residual
    branches (after the block's last BatchNorm, before the add): +60,336 trainable weights with
    g = 2 (25,643,928 with 1000 classes).

    Other arguments: as `application_with_tree_attention`.

    Example:

    >>> TAMResNet50(input_shape=(64, 64, 3), classes=10).output_shape
    (None, 10)
    """
    return application_with_tree_attention(
        keras.applications.ResNet50, group_size, name=name, **kwargs
    )


@register_model
def TAMEfficientNetB0(
    *, group_size: int = 2, name: str = "tam_efficientnetb0", **kwargs: Any
) -> keras.Model:
    """`keras.applications.EfficientNetB0` with a TreeAttention module before each of its 9
    residual adds (between the block's Dropout and the Add): +3,982 trainable weights with
    g = 2 (5,292,530 with 1000 classes). Our extension, not in the paper.

    Other arguments: as `application_with_tree_attention`.

    Example:

    >>> TAMEfficientNetB0(input_shape=(64, 64, 3), include_top=False, pooling="avg").output_shape
    (None, 1280)
    """
    return application_with_tree_attention(
        keras.applications.EfficientNetB0, group_size, name=name, **kwargs
    )


@register_model
def TAMMobileNetV2(
    *, group_size: int = 2, name: str = "tam_mobilenetv2", **kwargs: Any
) -> keras.Model:
    """`keras.applications.MobileNetV2` with a TreeAttention module before each of its 10
    residual adds (after the block's projection BatchNorm): +3,091 trainable weights with
    g = 2 (3,507,963 with 1000 classes). Our extension, not in the paper.

    Other arguments: as `application_with_tree_attention`.

    Example:

    >>> TAMMobileNetV2(input_shape=(64, 64, 3), classes=10).output_shape
    (None, 10)
    """
    return application_with_tree_attention(
        keras.applications.MobileNetV2, group_size, name=name, **kwargs
    )


@register_model
def TAMResNet20(*, group_size: int = 2, name: str = "tam_resnet20", **kwargs: Any) -> keras.Model:
    """He et al.'s CIFAR ResNet-20 (`ResNet20`) with TreeAttention on the residual branch of
    each of its 9 basic blocks, before the add: +1,299 trainable weights with g = 2 (271,021
    with 10 classes).

    Other arguments: as `with_tree_attention`.

    Example:

    >>> TAMResNet20().count_params() - ResNet20().count_params()  # 9 modules, 4C - 5 each
    1299
    """
    return with_tree_attention(ResNet20, group_size, name=name, **kwargs)


@register_model
def TAMResNet56(*, group_size: int = 2, name: str = "tam_resnet56", **kwargs: Any) -> keras.Model:
    """He et al.'s CIFAR ResNet-56 (`ResNet56`) with TreeAttention on each of its 27 residual
    branches: +3,897 trainable weights with g = 2 (856,915 with 10 classes).

    Other arguments: as `with_tree_attention`.

    Example:

    >>> TAMResNet56(classes=100).output_shape
    (None, 100)
    """
    return with_tree_attention(ResNet56, group_size, name=name, **kwargs)


@register_model
def TAMCifarResNet18(
    *, group_size: int = 2, name: str = "tam_cifar_resnet18", **kwargs: Any
) -> keras.Model:
    """The TAM paper's CIFAR ResNet-18 (`CifarResNet18`) with TreeAttention on the residual
    branch of each of its 8 basic blocks: +7,640 trainable weights with g = 2 (11,181,602 with
    10 classes).

    Other arguments: as `with_tree_attention`.

    Example:

    >>> TAMCifarResNet18(classes=100).output_shape
    (None, 100)
    """
    return with_tree_attention(CifarResNet18, group_size, name=name, **kwargs)


@register_model
def TAMCifarResNet50(
    *, group_size: int = 2, name: str = "tam_cifar_resnet50", **kwargs: Any
) -> keras.Model:
    """The TAM paper's CIFAR ResNet-50 (`CifarResNet50`) with TreeAttention on the residual
    branch of each of its 16 bottlenecks: +60,336 trainable weights with g = 2 (23,581,178
    with 10 classes).

    Other arguments: as `with_tree_attention`.

    Example:

    >>> TAMCifarResNet50(include_top=False, pooling="avg").output_shape
    (None, 2048)
    """
    return with_tree_attention(CifarResNet50, group_size, name=name, **kwargs)
