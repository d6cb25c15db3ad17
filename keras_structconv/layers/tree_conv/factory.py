"""`treeconv_factory`: tree convolutions for `keras_structconv.convert` and the model builders."""

from __future__ import annotations

from typing import Any

from keras_structconv import _validation
from keras_structconv.layers.conv_factory import ConvFactory
from keras_structconv.layers.tree_conv.layer import TreeConv2D
from keras_structconv.layers.tree_conv.reference import ReferenceTreeConv2D

__all__ = ["VARIANTS", "treeconv_factory"]

VARIANTS = {"paper": TreeConv2D, "reference": ReferenceTreeConv2D}


def treeconv_factory(
    depth: int = 3, variant: str = "paper", **overrides: Any
) -> ConvFactory:
    """A conv factory: `factory(template_conv2d) -> TreeConv2D` configured like the template.

    The layer is a `TreeConv2D` (`variant="paper"`) or a `ReferenceTreeConv2D`
    (`variant="reference"`) made by `from_conv` with `depth` and `overrides` (e.g. `fuse=True`).
    The factory folds zero padding (`folds_zero_padding=True`): a strided 'valid' convolution
    behind a symmetric `ZeroPadding2D` (our ResNet builders, Keras' ResNet50V2) becomes one tree
    convolution, which pads the same way itself.

    Args:
        depth: tree depth of every layer made (1 to 5).
        variant: `"paper"` or `"reference"`.
        **overrides: more constructor arguments of the layer class.

    Returns:
        A `ConvFactory`: `factory(template, zero_padding=None)`.

    Example:

    >>> model = keras_structconv.convert(
    ...     keras.applications.ResNet50(weights=None), conv=treeconv_factory(depth=3))
    """
    layer_class = VARIANTS[_validation.one_of(variant, "variant", VARIANTS)]
    options = {"depth": depth, **overrides}
    return ConvFactory(layer_class.from_conv, options, folds_zero_padding=True)
