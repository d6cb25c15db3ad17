"""Defaults shared by the layers, the model builders and the quadtree decoder.

- Batch normalisation constants: PyTorch's (`momentum=0.1` in PyTorch is 0.9 in Keras,
  `eps=1e-5`), the setting of the papers' released code.
- `he_normal_fan_out()`: torchvision's ResNet conv init, `kaiming_normal_(mode="fan_out")`.
- `distinct_initializer(initializer, index)`: a fresh initializer for each weight. A Keras 3
  initializer built without a seed draws a seed once, at construction, and returns the same values
  on every call; a layer that creates several weights from one instance would start them
  identical (its kernels would then get identical gradients and never separate).
- `add_bias_weight(layer, units)`: the `(units,)` bias of a layer with Keras' bias arguments.
- `set_weight_arguments(layer, weight, ...)`: a layer's Keras-style `<weight>_initializer`,
  `_regularizer` and `_constraint` arguments, read in `__init__` as `keras.layers.Conv2D` does;
  `arguments_config(layer, names)` (with `constructor_arguments(cls)`): its `get_config`.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

import keras

__all__ = [
    "BN_EPSILON",
    "BN_MOMENTUM",
    "add_bias_weight",
    "arguments_config",
    "constructor_arguments",
    "distinct_initializer",
    "he_normal_fan_out",
    "set_weight_arguments",
]

BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def he_normal_fan_out() -> keras.initializers.Initializer:
    """He normal over fan-out (torchvision's `kaiming_normal_(mode="fan_out", "relu")`)."""
    return keras.initializers.VarianceScaling(
        scale=2.0, mode="fan_out", distribution="untruncated_normal"
    )


def distinct_initializer(initializer: Any, index: int) -> keras.initializers.Initializer:
    """A new initializer like `initializer`, for the `index`-th weight a layer creates with it.

    Unseeded initializers are rebuilt from their config, so each draws its own seed (reproducible
    under `keras.utils.set_random_seed`); an integer seed `s` becomes `s + index`, so a seeded
    layer stays deterministic and its weights still differ. Deterministic initializers (zeros,
    constants) are returned as they are.

    Example:

    ```python
    init = keras.initializers.get("he_normal")
    kernels = [distinct_initializer(init, i)((1, 1, 8, 4)) for i in range(3)]  # all different
    ```
    """
    initializer = keras.initializers.get(initializer)
    config = initializer.get_config()
    if "seed" not in config:
        return initializer
    seed = config["seed"]
    if isinstance(seed, int):
        config["seed"] = seed + index
    elif seed is not None:
        # A SeedGenerator draws new values on every call already.
        return initializer
    return initializer.__class__.from_config(config)


def add_bias_weight(layer: keras.layers.Layer, units: int) -> keras.Variable:
    """Adds the `(units,)` weight "bias" to `layer`, configured by its `bias_initializer`,
    `bias_regularizer` and `bias_constraint` attributes (Keras' convolution arguments).

    Example:

    ```python
    def build(self, input_shape):
        self.bias = add_bias_weight(self, self.filters) if self.use_bias else None
    ```
    """
    return layer.add_weight(
        name="bias",
        shape=(units,),
        initializer=layer.bias_initializer,
        regularizer=layer.bias_regularizer,
        constraint=layer.bias_constraint,
    )


def set_weight_arguments(
    layer: keras.layers.Layer,
    weight: str,
    initializer: Any,
    regularizer: Any = None,
    constraint: Any = None,
) -> None:
    """Sets `layer.<weight>_initializer`, `<weight>_regularizer` and `<weight>_constraint` from
    identifiers or objects, read by `keras.initializers.get`, `keras.regularizers.get` and
    `keras.constraints.get` (in that order, as `keras.layers.Conv2D` reads its arguments).

    Example:

    ```python
    set_weight_arguments(self, "kernel", kernel_initializer, kernel_regularizer, kernel_constraint)
    set_weight_arguments(self, "bias", bias_initializer, bias_regularizer, bias_constraint)
    ```
    """
    setattr(layer, f"{weight}_initializer", keras.initializers.get(initializer))
    setattr(layer, f"{weight}_regularizer", keras.regularizers.get(regularizer))
    setattr(layer, f"{weight}_constraint", keras.constraints.get(constraint))


# Constructor arguments that hold Keras objects, by name, which `get_config` serializes.
_KERAS_OBJECT_SUFFIXES = ("_initializer", "_regularizer", "_constraint")


def arguments_config(layer: keras.layers.Layer, names: Iterable[str]) -> dict[str, Any]:
    """`{name: getattr(layer, name)}` for `get_config`, in the order of `names`; the Keras objects
    (`activation` and every `*_initializer`, `*_regularizer`, `*_constraint`) serialized.

    Example:

    ```python
    def get_config(self):
        return {**super().get_config(), **arguments_config(self, ("filters", "activation"))}
    ```
    """
    config = {}
    for name in names:
        value = getattr(layer, name)
        if name == "activation":
            value = keras.activations.serialize(value)  # "relu", not a function record
        elif name.endswith(_KERAS_OBJECT_SUFFIXES):
            value = keras.saving.serialize_keras_object(value)
        config[name] = value
    return config


def constructor_arguments(cls: type) -> tuple[str, ...]:
    """The named arguments of `cls.__init__` (not `self`, `*args`, `**kwargs`), in order: what
    a layer that stores each argument under its own name returns from `get_config`.

    Example:

    ```python
    def get_config(self):
        config = super().get_config()
        config.update(arguments_config(self, constructor_arguments(PSConv2D)))
        return config
    ```
    """
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    parameters = inspect.signature(cls.__init__).parameters.values()
    return tuple(p.name for p in parameters if p.kind in named and p.name != "self")
