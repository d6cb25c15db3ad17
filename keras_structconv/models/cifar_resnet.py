"""CIFAR ResNets: He et al.'s ResNet-20/56 and the TAM paper's CIFAR ResNet-18/50.

- `ResNet20`, `ResNet56`: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016,
  §4.2 (https://arxiv.org/abs/1512.03385): 3×3 stem (16), three stages of n = 3 / 9 basic blocks
  with 16, 32, 64 filters (strides 1, 2, 2), parameter-free option-A shortcuts (subsample + zero
  channels), global average pool, dense classifier. 269,722 / 853,018 trainable (10 classes).
- `CifarResNet18`, `CifarResNet50`: the CIFAR ResNets used by the TAM paper (the widespread
  "pytorch-cifar" layout): 3×3 stem with 64 filters and no max-pool, four stages of 64, 128,
  256, 512 filters (strides 1, 2, 2, 2), basic blocks [2, 2, 2, 2] / bottlenecks ×4 [3, 4, 6, 3]
  with the stride on the 3×3 conv, projection shortcuts (1×1 conv + BN). 11,173,962 /
  23,520,842 trainable with 10 classes, 11,220,132 / 23,705,252 with 100.

All four are `keras_structconv.models.build_resnet` with the CIFAR stem (its conventions, its
`conv` and `attention` factories). PS/Tree variants of the basic-block CIFAR ResNets are this
library's extension for small experiments (the papers use other CIFAR models).

Example:

```python
model = keras_structconv.models.ResNet20()  # (32, 32, 3) inputs, 10 classes
```
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras

from keras_structconv.models._registry import register_model
from keras_structconv.models.resnet import build_resnet

__all__ = ["CifarResNet18", "CifarResNet50", "ResNet20", "ResNet56"]


@register_model
def ResNet20(
    *,
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: keras.KerasTensor | None = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 10,
    classifier_activation: str | Callable[..., Any] | None = "softmax",
    conv: Callable[..., keras.layers.Layer] | None = None,
    attention: Callable[[int], keras.layers.Layer] | None = None,
    name: str = "resnet20",
) -> keras.Model:
    """He et al.'s CIFAR ResNet-20 (§4.2, n = 3): 269,722 trainable weights with 10 classes.

    A 3×3 stem with 16 filters, three stages of 3 basic blocks with 16, 32 and 64 filters
    (strides 1, 2, 2), parameter-free option-A shortcuts (subsampling and zero channels), global
    average pooling and a dense classifier. `conv` builds both 3×3 convolutions of every basic
    block.

    Other arguments: as `build_resnet` (default `input_shape` (32, 32, 3)).

    Example:

    >>> ResNet20().output_shape  # (32, 32, 3) inputs
    (None, 10)
    """
    return build_resnet(
        "basic", (3, 3, 3), stage_filters=(16, 32, 64), stem="cifar", shortcut="A", **locals()
    )


@register_model
def ResNet56(
    *,
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: keras.KerasTensor | None = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 10,
    classifier_activation: str | Callable[..., Any] | None = "softmax",
    conv: Callable[..., keras.layers.Layer] | None = None,
    attention: Callable[[int], keras.layers.Layer] | None = None,
    name: str = "resnet56",
) -> keras.Model:
    """He et al.'s CIFAR ResNet-56 (§4.2, n = 9): 853,018 trainable weights with 10 classes.

    As `ResNet20` with 9 basic blocks per stage: a 3×3 stem with 16 filters, three stages with
    16, 32 and 64 filters (strides 1, 2, 2), option-A shortcuts, global average pooling and a
    dense classifier.

    Other arguments: as `build_resnet` (default `input_shape` (32, 32, 3)).

    Example:

    >>> ResNet56(classes=100).output_shape
    (None, 100)
    """
    return build_resnet(
        "basic", (9, 9, 9), stage_filters=(16, 32, 64), stem="cifar", shortcut="A", **locals()
    )


@register_model
def CifarResNet18(
    *,
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: keras.KerasTensor | None = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 10,
    classifier_activation: str | Callable[..., Any] | None = "softmax",
    conv: Callable[..., keras.layers.Layer] | None = None,
    attention: Callable[[int], keras.layers.Layer] | None = None,
    name: str = "cifar_resnet18",
) -> keras.Model:
    """The TAM paper's CIFAR ResNet-18: 11,173,962 trainable weights with 10 classes
    (11,220,132 with 100).

    The common "pytorch-cifar" layout: a 3×3 stem with 64 filters and no max-pooling, four
    stages of basic blocks [2, 2, 2, 2] with 64, 128, 256 and 512 filters (strides 1, 2, 2, 2),
    projection shortcuts (1×1 conv + BN) wherever the shape changes, global average pooling and
    a dense classifier. `conv` builds both 3×3 convolutions of every basic block.

    Other arguments: as `build_resnet` (default `input_shape` (32, 32, 3)).

    Example:

    >>> CifarResNet18(include_top=False, pooling="avg").output_shape
    (None, 512)
    """
    return build_resnet("basic", (2, 2, 2, 2), stem="cifar", **locals())


@register_model
def CifarResNet50(
    *,
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: keras.KerasTensor | None = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 10,
    classifier_activation: str | Callable[..., Any] | None = "softmax",
    conv: Callable[..., keras.layers.Layer] | None = None,
    attention: Callable[[int], keras.layers.Layer] | None = None,
    name: str = "cifar_resnet50",
) -> keras.Model:
    """The TAM paper's CIFAR ResNet-50: 23,520,842 trainable weights with 10 classes
    (23,705,252 with 100).

    The common "pytorch-cifar" layout: a 3×3 stem with 64 filters and no max-pooling, four
    stages of bottlenecks [3, 4, 6, 3] with 64, 128, 256 and 512 planes (outputs ×4; strides 1,
    2, 2, 2 on the middle 3×3 conv), projection shortcuts (1×1 conv + BN) wherever the shape
    changes, global average pooling and a dense classifier. `conv` builds the middle 3×3
    convolution of every bottleneck.

    Other arguments: as `build_resnet` (default `input_shape` (32, 32, 3)).

    Example:

    >>> CifarResNet50(classes=100).output_shape
    (None, 100)
    """
    return build_resnet("bottleneck", (3, 4, 6, 3), stem="cifar", **locals())
