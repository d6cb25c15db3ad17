"""Configuring a structured convolution like the `keras.layers.Conv2D` it replaces.

`PSConv2D.from_conv` and `TreeConv2D.from_conv` (and through them the conv factories used by
`keras_structconv.convert` and the model builders) read the constructor arguments they share
with a template `Conv2D` here, so that both take the same keys and reject templates the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import keras

__all__ = ["TEMPLATE_KEYS", "conv_template_kwargs"]

# The `Conv2D` configuration entries a structured convolution can take over as they are.
TEMPLATE_KEYS = (
    "name",
    "dtype",
    "trainable",
    "filters",
    "kernel_size",
    "strides",
    "padding",
    "data_format",
    "groups",
    "activation",
    "use_bias",
    "kernel_initializer",
    "bias_initializer",
    "kernel_regularizer",
    "bias_regularizer",
    "activity_regularizer",
    "kernel_constraint",
    "bias_constraint",
)

# What each entry a layer may refuse holds in a plain convolution.
_PLAIN = {
    "dilation_rate": lambda value: tuple(value) == (1, 1),
    "groups": lambda value: value == 1,
    "activation": lambda value: value in (None, "linear"),
}


def conv_template_kwargs(
    conv: Any,
    layer_name: str,
    *,
    plain: Iterable[str] = ("dilation_rate",),
    keys: Iterable[str] = TEMPLATE_KEYS,
) -> dict[str, Any]:
    """The constructor arguments a `layer_name` standing for the `Conv2D` `conv` takes from it.

    Args:
        conv: a `keras.layers.Conv2D` (or subclass) instance; its weights are not read.
        layer_name: the class name of the new layer, for error messages.
        plain: configuration entries that must hold their plain-convolution value
            (`dilation_rate` (1, 1), `groups` 1, `activation` linear) because the new layer
            cannot represent anything else; they are not returned.
        keys: the configuration entries to return (when `conv` has them).

    Returns:
        `{key: conv.get_config()[key]}` for the keys `conv` has, `plain` ones left out.

    Example:

    ```python
    kwargs = conv_template_kwargs(keras.layers.Conv2D(64, 3), "PSConv2D")
    layer = PSConv2D(**kwargs, cyclic_interval=4)
    ```
    """
    if not isinstance(conv, keras.layers.Conv2D):
        raise ValueError(
            "`conv` must be a keras.layers.Conv2D (or subclass). "
            f"Received: conv={type(conv).__name__}"
        )
    config = conv.get_config()
    plain = tuple(plain)
    for key in plain:
        if key in config and not _PLAIN[key](config[key]):
            raise ValueError(
                f"{layer_name} can only stand for a convolution without `{key}`. "
                f"Received: {key}={config[key]!r}"
            )
    return {key: config[key] for key in keys if key in config and key not in plain}
