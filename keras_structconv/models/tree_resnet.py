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

The authors' released variant (`variant="reference"`) needs static input sizes and
`filters == input channels` in every replaced convolution: it fits the bottleneck ResNets, not the
basic-block ones, whose first 3×3 of a stage widens the channels.

Example:

```python
model = keras_structconv.models.TreeResNet50(input_shape=(224, 224, 3), classes=1000)
maps = model.get_layer("conv5_block3_2_conv").explain(features)  # see keras_structconv.viz
```
"""

import keras

from keras_structconv.layers.tree_conv import treeconv_factory
from keras_structconv.models import _blocks, cifar_resnet, resnet

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


def _tree(vanilla, name):
    """The builder `vanilla` with `conv=treeconv_factory(depth, variant, fuse)`."""
    build = _blocks.conv_variant(
        vanilla,
        name,
        treeconv_factory,
        {"depth": 3, "variant": "paper", "fuse": False},
        doc=f"""Tree variant of `{vanilla.__name__}`: {vanilla.__doc__.split(chr(10))[0]}

    Every 3×3 convolution the builder's `conv` factory receives (all but the stem) is a
    `TreeConv2D(depth=depth, variant=variant, fuse=fuse)`.

    Args (keyword-only): those of `keras_structconv.models.{vanilla.__name__}` (except `conv`),
    plus
        depth: tree depth of every TreeConv2D (1..5, default 3 as the paper).
        variant: "paper" (default) or "reference" (the authors' gated form; needs a static
            `input_shape` and channel-preserving 3×3 convolutions).
        fuse: add the paper's 1×1 fusion inside each TreeConv2D (off by default: in a ResNet the
            next 1×1 fuses).

    Returns:
        A functional `keras.Model`.
    """,
    )
    build.__name__ = build.__qualname__ = "Tree" + vanilla.__name__
    return build


TreeResNet18 = _tree(resnet.ResNet18, "tree_resnet18")
TreeResNet50 = _tree(resnet.ResNet50, "tree_resnet50")
TreeResNet101 = _tree(resnet.ResNet101, "tree_resnet101")
TreeResNet20 = _tree(cifar_resnet.ResNet20, "tree_resnet20")
TreeResNet56 = _tree(cifar_resnet.ResNet56, "tree_resnet56")
TreeCifarResNet18 = _tree(cifar_resnet.CifarResNet18, "tree_cifar_resnet18")
TreeCifarResNet50 = _tree(cifar_resnet.CifarResNet50, "tree_cifar_resnet50")


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
