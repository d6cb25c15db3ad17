"""`psconv_factory`: poly-scale convolutions for `keras_structconv.convert` and the model
builders."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from keras_structconv.layers.conv_factory import ConvFactory
from keras_structconv.layers.ps_conv.layer import PSConv2D

__all__ = ["psconv_factory"]


def psconv_factory(
    cyclic_interval: int = 4, dilation_pattern: Sequence[int] | None = None, **overrides: Any
) -> ConvFactory:
    """A conv factory for `keras_structconv.convert` and the model builders:
    `factory(template_conv2d) -> PSConv2D` with the template's configuration (see
    `PSConv2D.from_conv`) and the given cyclic interval, pattern and overrides.

    Zero padding is not folded: `ZeroPadding2D + PSConv2D("valid")` is already exact.

    Example:

    >>> model = keras_structconv.convert(
    ...     keras.applications.ResNet50(weights=None), conv=psconv_factory(cyclic_interval=4))
    """
    options = {"cyclic_interval": cyclic_interval, "dilation_pattern": dilation_pattern}
    return ConvFactory(PSConv2D.from_conv, {**options, **overrides})
