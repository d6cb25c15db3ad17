"""TAM variants of ResNets and mobile backbones: a TreeAttention module on every residual branch.

Reference: "Tree-structured Attention Module for Image Classification" (ICLR 2020 submission,
anonymous), Section 3: "We attach our module to the last part of every residual block before
addition" (group size 2 unless stated).

- `TAMResNet50`: `keras.applications.ResNet50` rewritten by `keras_structconv.convert`: 16 modules
  (one per bottleneck), +60,336 trainable weights with g=2.
- `TAMCifarResNet18`, `TAMCifarResNet50`: the TAM paper's CIFAR ResNets
  (`keras_structconv.models.CifarResNet18/50`) built with the module as their `attention`
  factory: +7,640 (8 modules) / +60,336 (16 modules).
- `TAMEfficientNetB0`, `TAMMobileNetV2`: `keras.applications` backbones rewritten the same way:
  9 / 10 modules (one per residual add; in EfficientNet the module sits between the block's
  `Dropout` and its `Add`). Not in the paper: our extension.
- `add_tree_attention(model, group_size)`: the same rewrite for any functional model.

Parameter overhead against the paper's Table 1 (CIFAR-100 heads, g=2): ResNet-18 +7,640
(+0.07 %; the paper says +0.00 %), ResNet-50 +60,336 (+0.25 %; the paper says +1.23 %). Neither the
paper's rule nor the authors' release produces the paper's +1.23 %; SPEC §3 records this.

The keras.applications builders take their usual arguments (`weights` can be None or a path to
a weights file; downloads are not available here).
"""

import keras

from keras_structconv.layers.tree_attention import TreeAttention
from keras_structconv.models.cifar_resnet import CifarResNet18, CifarResNet50
from keras_structconv.surgery import convert

__all__ = [
    "TAMCifarResNet18",
    "TAMCifarResNet50",
    "TAMEfficientNetB0",
    "TAMMobileNetV2",
    "TAMResNet50",
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


_APPLICATION_ARGS = """
    Args:
        group_size: TreeAttention's group size g.
        name: model name.
        **kwargs: the `keras.applications` builder's arguments (`include_top`, `weights`,
            `input_tensor`, `input_shape`, `pooling`, `classes`, `classifier_activation`, ...);
            `weights` defaults to None (ImageNet weights need a download; a local weights file
            is loaded into the vanilla model before the modules are added).
"""


def TAMResNet50(group_size=2, name="tam_resnet50", **kwargs):
    return _with_tree_attention(keras.applications.ResNet50, name, group_size, kwargs)


def TAMEfficientNetB0(group_size=2, name="tam_efficientnetb0", **kwargs):
    return _with_tree_attention(keras.applications.EfficientNetB0, name, group_size, kwargs)


def TAMMobileNetV2(group_size=2, name="tam_mobilenetv2", **kwargs):
    return _with_tree_attention(keras.applications.MobileNetV2, name, group_size, kwargs)


TAMResNet50.__doc__ = (
    "`keras.applications.ResNet50` with a TreeAttention module on each of its 16 residual\n"
    "    branches (after the block's last BatchNorm, before the add).\n" + _APPLICATION_ARGS
    + "\n    Example:\n\n    >>> TAMResNet50(input_shape=(64, 64, 3), classes=10).output_shape"
    "\n    (None, 10)\n"
)
TAMEfficientNetB0.__doc__ = (
    "`keras.applications.EfficientNetB0` with a TreeAttention module before each of its 9\n"
    "    residual adds (between the block's Dropout and the Add).\n" + _APPLICATION_ARGS
)
TAMMobileNetV2.__doc__ = (
    "`keras.applications.MobileNetV2` with a TreeAttention module before each of its 10\n"
    "    residual adds (after the block's projection BatchNorm).\n" + _APPLICATION_ARGS
)


def TAMCifarResNet18(group_size=2, name="tam_cifar_resnet18", **kwargs):
    """The TAM paper's CIFAR ResNet-18 (`CifarResNet18`, same arguments) with TreeAttention on
    the residual branch of each of its 8 basic blocks: +7,640 trainable weights with g=2."""
    return CifarResNet18(attention=tree_attention_factory(group_size), name=name, **kwargs)


def TAMCifarResNet50(group_size=2, name="tam_cifar_resnet50", **kwargs):
    """The TAM paper's CIFAR ResNet-50 (`CifarResNet50`, same arguments) with TreeAttention on
    the residual branch of each of its 16 bottlenecks: +60,336 trainable weights with g=2."""
    return CifarResNet50(attention=tree_attention_factory(group_size), name=name, **kwargs)
