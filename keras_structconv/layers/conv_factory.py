"""`ConvFactory`: how model builders and `convert` make a replacement for a template conv.

A conv factory is called with a template `Conv2D` (or `GroupedConv2D`) that carries the filters,
kernel size, strides, padding, groups and initialisers of the convolution being replaced, and
returns the layer that replaces it. Plain callables `factory(template) -> Layer` work wherever a
factory is accepted; `ConvFactory` adds what a callable cannot say about itself:

- `folds_zero_padding`: the layer pads by itself, so an explicit symmetric `ZeroPadding2D` in front
  of a strided 'valid' conv (torchvision-style ResNets, Keras ResNet50V2) is removed and passed to
  the factory as `zero_padding=((top, bottom), (left, right))`;
- `options`: the operator's hyper-parameters, visible to reports and the tuner.

Example:

```python
factory = ConvFactory(PSConv2D.from_conv, {"cyclic_interval": 4})
model = keras_structconv.convert(keras.applications.ResNet50(weights=None), conv=factory)
```
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import keras

__all__ = ["ConvFactory", "folds_zero_padding"]


@dataclasses.dataclass(frozen=True)
class ConvFactory:
    """`factory(template, zero_padding=None) -> build(template, **options[, zero_padding])`.

    Args:
        build: `build(template, **options) -> keras.layers.Layer`, e.g. `PSConv2D.from_conv`;
            when `folds_zero_padding`, it also takes `zero_padding=`.
        options: keyword arguments passed to `build` on every call.
        folds_zero_padding: whether `build` takes the explicit padding in front of the conv.
    """

    build: Callable[..., keras.layers.Layer]
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    folds_zero_padding: bool = False

    def __call__(self, template: keras.layers.Layer, zero_padding: Any = None) -> Any:
        if zero_padding is None:
            return self.build(template, **self.options)
        if not self.folds_zero_padding:
            raise ValueError(
                "This factory does not fold zero padding (folds_zero_padding=False). "
                f"Received: zero_padding={zero_padding!r}"
            )
        return self.build(template, zero_padding=zero_padding, **self.options)


def folds_zero_padding(factory: Any) -> bool:
    """Whether `factory` (a `ConvFactory` or a plain callable) takes `zero_padding=`."""
    return isinstance(factory, ConvFactory) and factory.folds_zero_padding
