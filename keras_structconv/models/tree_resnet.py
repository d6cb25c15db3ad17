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

`with_treeconv(vanilla, ...)` is the family: each builder is `with_treeconv` of its vanilla
builder, and takes that builder's arguments plus `depth`, `variant` and `fuse`.

With `variant="reference"` every replaced convolution is a `ReferenceTreeConv2D` (the authors'
released form), which needs static input sizes and `filters == input channels`: it fits the
bottleneck ResNets, not the basic-block ones, whose first 3×3 of a stage widens the channels.

Example:

```python
model = keras_structconv.models.TreeResNet50(input_shape=(224, 224, 3), classes=1000)
maps = model.get_layer("conv5_block3_2_conv").explain(features)  # see keras_structconv.viz
```
"""

from collections.abc import Callable, Sequence
from typing import Any

import keras

from keras_structconv.layers import treeconv_factory
from keras_structconv.models import _blocks
from keras_structconv.models._registry import register_model
from keras_structconv.models.cifar_resnet import CifarResNet18, CifarResNet50, ResNet20, ResNet56
from keras_structconv.models.resnet import ResNet18, ResNet50, ResNet101

__all__ = [
    "TreeCifarResNet18",
    "TreeCifarResNet50",
    "TreeResNet18",
    "TreeResNet20",
    "TreeResNet50",
    "TreeResNet56",
    "TreeResNet101",
    "tree_resnet50_from_keras",
    "with_treeconv",
]


def with_treeconv(
    vanilla: Callable[..., keras.Model],
    depth: int = 3,
    variant: str = "paper",
    fuse: bool = False,
    **kwargs: Any,
) -> keras.Model:
    """`vanilla(conv=treeconv_factory(depth, variant, fuse=fuse), **kwargs)`: the model of a
    builder of this package with every convolution its `conv` factory builds a tree convolution.

    The factory folds the explicit zero padding of strided convolutions into the tree
    convolution (which pads the same way), and keeps the stem.

    Args:
        vanilla: a builder with a `conv` argument (`ResNet50`, `ResNet20`, `CifarResNet18`,
            ...).
        depth: tree depth of every TreeConv2D (1..5; the paper uses 3).
        variant: "paper" (`TreeConv2D`) or "reference" (`ReferenceTreeConv2D`, the authors'
            gated form; needs a static `input_shape` and channel-preserving 3×3 convolutions).
        fuse: add the paper's 1×1 fusion inside each TreeConv2D (off: in a ResNet the next 1×1
            fuses).
        **kwargs: the vanilla builder's keyword arguments (`name`, `include_top`,
            `input_shape`, `classes`, `attention`, ...) except `conv`.

    Returns:
        A functional `keras.Model`.

    Example:

    >>> with_treeconv(ResNet20, depth=2).count_params() - ResNet20().count_params()  # gates
    1284
    """
    _blocks.check_no_conv(f"The TreeConv2D variant of {vanilla.__name__}", kwargs)
    factory = treeconv_factory(depth=depth, variant=variant, fuse=fuse)
    return vanilla(conv=factory, **kwargs)


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
    TreeConv2D; 11,699,736 trainable weights at depth 3 with 1000 classes.

    Other arguments: as `with_treeconv`.

    Example:

    >>> TreeResNet18(input_shape=(64, 64, 3), classes=10).output_shape
    (None, 10)
    """
    return with_treeconv(ResNet18, depth, variant, fuse, name=name, **kwargs)


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

    Other arguments: as `with_treeconv`.

    Example:

    >>> TreeResNet50(include_top=False, pooling="avg", input_shape=(64, 64, 3)).output_shape
    (None, 2048)
    """
    return with_treeconv(ResNet50, depth, variant, fuse, name=name, **kwargs)


@register_model
def TreeResNet101(
    *,
    depth: int = 3,
    variant: str = "paper",
    fuse: bool = False,
    name: str = "tree_resnet101",
    **kwargs: Any,
) -> keras.Model:
    """Tree-ResNet-101: `ResNet101` (v1.5) with the 3×3 conv of every bottleneck a TreeConv2D;
    44,573,643 trainable weights at depth 3 with 1000 classes.

    Other arguments: as `with_treeconv`.

    Example:

    >>> TreeResNet101(input_shape=(64, 64, 3), depth=2).output_shape
    (None, 1000)
    """
    return with_treeconv(ResNet101, depth, variant, fuse, name=name, **kwargs)


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
    (our extension for small experiments); 271,648 trainable weights at depth 3 with 10
    classes (ResNet-20's 269,722 plus 1,926 gates).

    Other arguments: as `with_treeconv`.

    Example:

    >>> TreeResNet20().output_shape  # (32, 32, 3) inputs
    (None, 10)
    """
    return with_treeconv(ResNet20, depth, variant, fuse, name=name, **kwargs)


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
    (our extension); 859,084 trainable weights at depth 3 with 10 classes.

    Other arguments: as `with_treeconv`.

    Example:

    >>> TreeResNet56(classes=100).output_shape
    (None, 100)
    """
    return with_treeconv(ResNet56, depth, variant, fuse, name=name, **kwargs)


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
    TreeConv2D (our extension); 11,184,186 trainable weights at depth 3 with 10 classes.

    Other arguments: as `with_treeconv`.

    Example:

    >>> TreeCifarResNet18(include_top=False, pooling="avg").output_shape
    (None, 512)
    """
    return with_treeconv(CifarResNet18, depth, variant, fuse, name=name, **kwargs)


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
    TreeConv2D (our extension); 23,532,218 trainable weights at depth 3 with 10 classes.

    Other arguments: as `with_treeconv`.

    Example:

    >>> TreeCifarResNet50(classes=100).output_shape
    (None, 100)
    """
    return with_treeconv(CifarResNet50, depth, variant, fuse, name=name, **kwargs)


def tree_resnet50_from_keras(
    input_shape: Sequence[int | None] = (224, 224, 3),
    classes: int = 1000,
    depth: int = 3,
    variant: str = "paper",
    fuse: bool = False,
    return_report: bool = False,
    **resnet_kwargs: Any,
) -> Any:
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
