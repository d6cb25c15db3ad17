"""Tree-ResNets: ResNets whose 3×3 convolutions are tree convolutions (`TreeConv2D`).

Reference: G. Wang et al., "Grammatically Recognizing Images with Tree Convolution" (TreeConv),
KDD 2020, §4.2: "for our Tree-ResNet50, all the 3 × 3 convolution in the standard
ResNet50 are replaced with TreeConv" (depth 3; Table 1 ablates depths 1-4).

- `TreeResNet50` / `TreeResNet18` / `TreeResNet101`: our torchvision-style ResNet v1.5 builders
  (`keras_structconv.models.resnet`) with `conv=treeconv_factory(depth, variant)`: the
  bottleneck 3×3 of every block (which carries the stride) or both 3×3 of a basic block; the 7×7
  stem stays. Tree-ResNet-50 (depth 3, 1000 classes) has ResNet-50's 25,557,032 trainable weights
  plus its gates, `3 * (C + 1)` per bottleneck: 3 x (65·3 + 129·4 + 257·6 + 513·3) = 11,376, in
  all 25,568,408 (the paper's Table 1: 25.57M, ResNet-50 25.56M).
- `tree_resnet50_from_keras`: the same replacement done by `keras_structconv.convert` on
  `keras.applications.ResNet50` (Keras' ResNet v1: the stride sits on the first 1×1, so every
  3×3 is stride 1; its convolutions have biases, which the tree convolutions keep).
- `TreeResNet20`, `TreeResNet56`, `TreeCifarResNet18`, `TreeCifarResNet50`: the CIFAR builders
  (`keras_structconv.models.cifar_resnet`) with every 3×3 convolution but the stem replaced (our
  extension for small experiments; the paper's CIFAR model is a DARTS network).

With `variant="reference"` every replaced convolution is a `ReferenceTreeConv2D` (the authors'
released form), which needs static input sizes and `filters == input channels`: it fits the
bottleneck ResNets, not the basic-block ones, whose first 3×3 of a stage widens the channels.

Example:

```python
model = keras_structconv.models.TreeResNet50(input_shape=(224, 224, 3), classes=1000)
maps = model.get_layer("conv5_block3_2_conv").explain(features)  # see keras_structconv.viz
```
"""

from typing import Any

import keras

from keras_structconv.layers.tree_conv import treeconv_factory
from keras_structconv.models import _blocks, cifar_resnet, resnet
from keras_structconv.models._registry import register_model

__all__ = [
    "TreeCifarResNet18",
    "TreeCifarResNet50",
    "TreeResNet18",
    "TreeResNet20",
    "TreeResNet50",
    "TreeResNet56",
    "TreeResNet101",
    "tree_resnet50_from_keras",
]


@register_model
def TreeResNet18(
    *,
    depth: int = 3,
    variant: str = "paper",
    fuse: bool = False,
    name: str = "tree_resnet18",
    **kwargs: Any,
) -> keras.Model:
    """Tree-ResNet-18: `ResNet18` (torchvision layout) with both 3×3 convs of every basic block a
    TreeConv2D.

    Args:
        depth: tree depth of every TreeConv2D (1..5; the paper uses 3).
        variant: "paper" (`TreeConv2D`) or "reference" (`ReferenceTreeConv2D`, the authors'
            gated form; needs a static `input_shape` and channel-preserving 3×3 convolutions).
        fuse: add the paper's 1×1 fusion inside each TreeConv2D (off: in a ResNet the next 1×1
            fuses).
        name: model name.
        **kwargs: the vanilla builder's keyword arguments (`include_top`, `input_shape`,
            `classes`, `attention`, ...) except `conv`.

    Returns:
        A functional `keras.Model`.
    """
    _blocks.check_no_conv("TreeResNet18", kwargs)
    factory = treeconv_factory(depth=depth, variant=variant, fuse=fuse)
    return resnet.ResNet18(conv=factory, name=name, **kwargs)


@register_model
def TreeResNet50(
    *,
    depth: int = 3,
    variant: str = "paper",
    fuse: bool = False,
    name: str = "tree_resnet50",
    **kwargs: Any,
) -> keras.Model:
    """Tree-ResNet-50 (paper §4.2): `ResNet50` (v1.5) with the 3×3 conv of every bottleneck a
    TreeConv2D; 25,568,408 trainable weights at depth 3 with 1000 classes (ResNet-50's
    25,557,032 plus 11,376 gates).

    Args:
        depth: tree depth of every TreeConv2D (1..5; the paper uses 3).
        variant: "paper" (`TreeConv2D`) or "reference" (`ReferenceTreeConv2D`, the authors'
            gated form; needs a static `input_shape` and channel-preserving 3×3 convolutions).
        fuse: add the paper's 1×1 fusion inside each TreeConv2D (off: in a ResNet the next 1×1
            fuses).
        name: model name.
        **kwargs: the vanilla builder's keyword arguments (`include_top`, `input_shape`,
            `classes`, `attention`, ...) except `conv`.

    Returns:
        A functional `keras.Model`.
    """
    _blocks.check_no_conv("TreeResNet50", kwargs)
    factory = treeconv_factory(depth=depth, variant=variant, fuse=fuse)
    return resnet.ResNet50(conv=factory, name=name, **kwargs)


@register_model
def TreeResNet101(
    *,
    depth: int = 3,
    variant: str = "paper",
    fuse: bool = False,
    name: str = "tree_resnet101",
    **kwargs: Any,
) -> keras.Model:
    """Tree-ResNet-101: `ResNet101` (v1.5) with the 3×3 conv of every bottleneck a TreeConv2D.

    Args:
        depth: tree depth of every TreeConv2D (1..5; the paper uses 3).
        variant: "paper" (`TreeConv2D`) or "reference" (`ReferenceTreeConv2D`, the authors'
            gated form; needs a static `input_shape` and channel-preserving 3×3 convolutions).
        fuse: add the paper's 1×1 fusion inside each TreeConv2D (off: in a ResNet the next 1×1
            fuses).
        name: model name.
        **kwargs: the vanilla builder's keyword arguments (`include_top`, `input_shape`,
            `classes`, `attention`, ...) except `conv`.

    Returns:
        A functional `keras.Model`.
    """
    _blocks.check_no_conv("TreeResNet101", kwargs)
    factory = treeconv_factory(depth=depth, variant=variant, fuse=fuse)
    return resnet.ResNet101(conv=factory, name=name, **kwargs)


@register_model
def TreeResNet20(
    *,
    depth: int = 3,
    variant: str = "paper",
    fuse: bool = False,
    name: str = "tree_resnet20",
    **kwargs: Any,
) -> keras.Model:
    """Tree-ResNet-20: He et al.'s CIFAR `ResNet20` with every 3×3 conv but the stem a TreeConv2D
    (our extension for small experiments).

    Args:
        depth: tree depth of every TreeConv2D (1..5; the paper uses 3).
        variant: "paper" (`TreeConv2D`) or "reference" (`ReferenceTreeConv2D`, the authors'
            gated form; needs a static `input_shape` and channel-preserving 3×3 convolutions).
        fuse: add the paper's 1×1 fusion inside each TreeConv2D (off: in a ResNet the next 1×1
            fuses).
        name: model name.
        **kwargs: the vanilla builder's keyword arguments (`include_top`, `input_shape`,
            `classes`, `attention`, ...) except `conv`.

    Returns:
        A functional `keras.Model`.
    """
    _blocks.check_no_conv("TreeResNet20", kwargs)
    factory = treeconv_factory(depth=depth, variant=variant, fuse=fuse)
    return cifar_resnet.ResNet20(conv=factory, name=name, **kwargs)


@register_model
def TreeResNet56(
    *,
    depth: int = 3,
    variant: str = "paper",
    fuse: bool = False,
    name: str = "tree_resnet56",
    **kwargs: Any,
) -> keras.Model:
    """Tree-ResNet-56: He et al.'s CIFAR `ResNet56` with every 3×3 conv but the stem a TreeConv2D
    (our extension).

    Args:
        depth: tree depth of every TreeConv2D (1..5; the paper uses 3).
        variant: "paper" (`TreeConv2D`) or "reference" (`ReferenceTreeConv2D`, the authors'
            gated form; needs a static `input_shape` and channel-preserving 3×3 convolutions).
        fuse: add the paper's 1×1 fusion inside each TreeConv2D (off: in a ResNet the next 1×1
            fuses).
        name: model name.
        **kwargs: the vanilla builder's keyword arguments (`include_top`, `input_shape`,
            `classes`, `attention`, ...) except `conv`.

    Returns:
        A functional `keras.Model`.
    """
    _blocks.check_no_conv("TreeResNet56", kwargs)
    factory = treeconv_factory(depth=depth, variant=variant, fuse=fuse)
    return cifar_resnet.ResNet56(conv=factory, name=name, **kwargs)


@register_model
def TreeCifarResNet18(
    *,
    depth: int = 3,
    variant: str = "paper",
    fuse: bool = False,
    name: str = "tree_cifar_resnet18",
    **kwargs: Any,
) -> keras.Model:
    """The TAM paper's CIFAR ResNet-18 (`CifarResNet18`) with every 3×3 conv but the stem a
    TreeConv2D (our extension).

    Args:
        depth: tree depth of every TreeConv2D (1..5; the paper uses 3).
        variant: "paper" (`TreeConv2D`) or "reference" (`ReferenceTreeConv2D`, the authors'
            gated form; needs a static `input_shape` and channel-preserving 3×3 convolutions).
        fuse: add the paper's 1×1 fusion inside each TreeConv2D (off: in a ResNet the next 1×1
            fuses).
        name: model name.
        **kwargs: the vanilla builder's keyword arguments (`include_top`, `input_shape`,
            `classes`, `attention`, ...) except `conv`.

    Returns:
        A functional `keras.Model`.
    """
    _blocks.check_no_conv("TreeCifarResNet18", kwargs)
    factory = treeconv_factory(depth=depth, variant=variant, fuse=fuse)
    return cifar_resnet.CifarResNet18(conv=factory, name=name, **kwargs)


@register_model
def TreeCifarResNet50(
    *,
    depth: int = 3,
    variant: str = "paper",
    fuse: bool = False,
    name: str = "tree_cifar_resnet50",
    **kwargs: Any,
) -> keras.Model:
    """The TAM paper's CIFAR ResNet-50 (`CifarResNet50`) with every bottleneck 3×3 conv a
    TreeConv2D (our extension).

    Args:
        depth: tree depth of every TreeConv2D (1..5; the paper uses 3).
        variant: "paper" (`TreeConv2D`) or "reference" (`ReferenceTreeConv2D`, the authors'
            gated form; needs a static `input_shape` and channel-preserving 3×3 convolutions).
        fuse: add the paper's 1×1 fusion inside each TreeConv2D (off: in a ResNet the next 1×1
            fuses).
        name: model name.
        **kwargs: the vanilla builder's keyword arguments (`include_top`, `input_shape`,
            `classes`, `attention`, ...) except `conv`.

    Returns:
        A functional `keras.Model`.
    """
    _blocks.check_no_conv("TreeCifarResNet50", kwargs)
    factory = treeconv_factory(depth=depth, variant=variant, fuse=fuse)
    return cifar_resnet.CifarResNet50(conv=factory, name=name, **kwargs)


def tree_resnet50_from_keras(
    input_shape=(224, 224, 3),
    classes=1000,
    depth=3,
    variant="paper",
    fuse=False,
    return_report=False,
    **resnet_kwargs,
):
    """`keras.applications.ResNet50(weights=None, ...)` converted to a Tree-ResNet-50 by
    `keras_structconv.convert` (every 3×3 `Conv2D` becomes a `TreeConv2D`; nothing is
    downloaded).

    Args:
        input_shape: image shape (Keras Applications needs >= 32×32).
        classes: classifier width.
        depth, variant, fuse: the TreeConv2D settings.
        return_report: also return `convert`'s report (16 replaced convolutions).
        **resnet_kwargs: more arguments of `keras.applications.ResNet50` (`include_top`,
            `pooling`, `classifier_activation`).

    Returns:
        The converted model (and the report).
    """
    from keras_structconv.surgery import convert

    base = keras.applications.ResNet50(
        weights=None, input_shape=input_shape, classes=classes, **resnet_kwargs
    )
    return convert(
        base,
        conv=treeconv_factory(depth=depth, variant=variant, fuse=fuse),
        return_report=return_report,
    )
