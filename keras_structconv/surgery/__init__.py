"""Model surgery: rewrite a functional Keras model with new convolutions and attention modules.

`convert(model, conv=..., attention=...)` returns a new model in which

- every selected convolution (default: each 3×3 `Conv2D` that does not read the image, i.e. not
  the stem) is replaced by `conv(old_conv)`, keeping the old layer's name;
- an attention module `attention(channels)` sits on the residual branch right before each
  two-input `Add`, named `<add name>_attention`.

Which input of `Add(a, b)` is the residual branch (the TAM paper, "Tree-structured attention
module for image classification", Section 3, attaches its module "to the last part of every
residual block before addition"): the shortcut is the input that is an ancestor of the other;
otherwise it is the input with fewer layers back to the nearest common ancestor of the two. The
module goes on the other input (in EfficientNet that is between the block's `Dropout` and the
`Add`).

Modules: `report` (what changed), `_rewriter` (the rewriting), `_attention` (the insertion before
adds), `_graph` (read-only queries on the functional graph).

Every layer of the new model is re-created from its config (no layer object is shared with the
original), untouched layers get the original's weights, and nested models (e.g. a
`keras.applications` backbone used as a layer) are rewritten recursively. Sequential models
support convolution replacement only (a Sequential model has no residual `Add`).

Factories are plain callables, so the same factory works here and in our model builders:

- `conv(old_conv) -> Layer`: `old_conv` is the original convolution layer (its config via
  `get_config()`, its weights via `get_weights()`). A `keras_structconv.layers.ConvFactory` with
  `folds_zero_padding=True` is called as `conv(old_conv, zero_padding=padding)` when the
  convolution's only input is a `ZeroPadding2D` used by nothing else; `padding` is that layer's
  `((top, bottom), (left, right))` and the `ZeroPadding2D` is removed (Keras ResNet50V2 pads
  explicitly before its 'valid' stride-2 convolutions).
- `attention(channels) -> Layer`: a module mapping a `(N, H, W, channels)` tensor to the same
  shape (channels_last).
- `select(old_conv) -> bool`: called for every `Conv2D`, `DepthwiseConv2D` and
  `SeparableConv2D`; a custom `select` decides alone (the stem rule applies to the default only).

Layers made by the factories take the global dtype policy (re-created layers keep their own):
convert a mixed-precision model under the same policy it was built with.

When the replacement's weights have the shapes of the original's (e.g. a `Conv2D` subclass),
the original weights are copied into it (`copy_conv_weights=False` keeps the replacement's own
initialisation).

Example:

```python
backbone = keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3))
model, report = keras_structconv.convert(
    backbone, attention=lambda channels: MyAttention(), return_report=True
)
print(report)  # 16 attention modules, one per residual Add
```
"""

from __future__ import annotations

from collections.abc import Callable

import keras

from keras_structconv._internals import Functional
from keras_structconv.surgery._rewriter import Rewriter
from keras_structconv.surgery.report import (
    ConvertReport,
    InsertedAttention,
    ReplacedConv,
    SkippedAdd,
)

__all__ = ["ConvertReport", "InsertedAttention", "ReplacedConv", "SkippedAdd", "convert"]


def convert(
    model: keras.Model,
    conv: Callable[..., keras.layers.Layer] | None = None,
    attention: Callable[[int], keras.layers.Layer] | None = None,
    select: Callable[[keras.layers.Layer], bool] | None = None,
    *,
    copy_conv_weights: bool = True,
    return_report: bool = False,
) -> keras.Model | tuple[keras.Model, ConvertReport]:
    """Return a new model with replaced convolutions and/or attention before residual adds.

    Args:
        model: a functional `keras.Model` (e.g. from `keras.applications`) or a
            `keras.Sequential` (convolution replacement only).
        conv: `conv(old_conv) -> Layer`, or None to keep every convolution. See the module
            docstring for `folds_zero_padding`.
        attention: `attention(channels) -> Layer`, or None to insert nothing.
        select: `select(old_conv) -> bool`; default: a 3×3 `Conv2D` that is not a stem
            convolution (a stem convolution has no weighted layer between it and a model input,
            normalization and padding aside).
        copy_conv_weights: copy the original weights into a replacement whose weights have the
            same shapes.
        return_report: also return a `ConvertReport`.

    Returns:
        The new model, or `(model, report)` when `return_report` is True.

    Raises:
        ValueError: for a subclassed model, attention on a Sequential model, an `Add` with more
            than two inputs, an `Add` whose residual input cannot be told apart (both inputs equally
            far from their nearest common ancestor), or a factory that returns no new layer.
    """
    _check_arguments(model, conv, attention, select)
    report = ConvertReport(model=model.name)
    rewriter = Rewriter(
        conv=conv,
        attention=attention,
        select=select,
        copy_conv_weights=copy_conv_weights,
        report=report,
    )
    new_model = rewriter.rewrite(model, prefix="", reads_image=None)
    return (new_model, report) if return_report else new_model


def _check_arguments(model, conv, attention, select):
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"`model` must be a functional or Sequential keras.Model. Received: model={model!r}"
        )
    if not isinstance(model, (Functional, keras.Sequential)):
        raise ValueError(
            "`model` must be a functional or Sequential keras.Model: a subclassed model has no "
            "layer graph to rewrite (write it with the functional API, or build it with the "
            "factories directly). Received: model of type "
            f"{type(model).__name__} ({model.name!r})"
        )
    if isinstance(model, keras.Sequential) and attention is not None:
        raise ValueError(
            "`attention` is not supported on a Sequential model: it has no residual Add to put "
            "attention before (only `conv` replacement is). Received: attention="
            f"{attention!r} with a Sequential model ({model.name!r})"
        )
    for arg_name, value in (("conv", conv), ("attention", attention), ("select", select)):
        if value is not None and not callable(value):
            raise ValueError(
                f"`{arg_name}` must be callable or None. Received: {arg_name}={value!r}"
            )
