"""Defaults shared by the layers, the model builders and the quadtree decoder.

- Batch normalisation constants: PyTorch's (`momentum=0.1` in PyTorch is 0.9 in Keras,
  `eps=1e-5`), the setting of the papers' released code.
- `he_normal_fan_out()`: torchvision's ResNet conv init, `kaiming_normal_(mode="fan_out")`.
- `distinct_initializer(initializer, index)`: a fresh initializer for each weight. A Keras 3
  initializer built without a seed draws a seed once, at construction, and returns the same values
  on every call; a layer that creates several weights from one instance would start them
  identical (its kernels would then get identical gradients and never separate).
"""

from __future__ import annotations

from typing import Any

import keras

__all__ = [
    "BN_EPSILON",
    "BN_MOMENTUM",
    "distinct_initializer",
    "he_normal_fan_out",
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
