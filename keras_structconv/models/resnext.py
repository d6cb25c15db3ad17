"""ResNeXt: ImageNet ResNeXt-50/101 (32×4d) and the CIFAR ResNeXt-29 (8×64d, 16×64d).

Xie, Girshick, Dollár, Tu, He, "Aggregated Residual Transformations for Deep Neural Networks",
CVPR 2017 (https://arxiv.org/abs/1611.05431). The bottleneck's 3×3 convolution is grouped
(`cardinality` groups); it is a `GroupedConv2D` (TensorFlow's native grouped kernel), not
`keras.layers.Conv2D(groups=...)`, which runs through XLA on CPU and trains ~50x slower.

- ImageNet (`ResNeXt50_32x4d`, `ResNeXt101_32x4d`): torchvision's layout, i.e. the ResNet v1.5
  skeleton of `keras_structconv.models.resnet` (7×7 stem + max-pool, stages of 64, 128, 256, 512
  planes with strides 1, 2, 2, 2, stride on the 3×3 conv) with bottleneck width
  `planes * base_width / 64 * cardinality` (128, 256, 512, 1024 for 32×4d) and output
  `4 * planes`. 25,028,904 trainable parameters for ResNeXt-50 32×4d with 1000 classes
  (torchvision's `resnext50_32x4d`).
- CIFAR (`ResNeXt29_8x64d`, `ResNeXt29_16x64d`): the paper's §5.3 model (as in its Torch code
  and the common PyTorch port): 3×3 stem (64), three stages of three bottlenecks with outputs
  256, 512, 1024 (strides 1, 2, 2, stride on the 3×3 conv), width
  `cardinality * base_width * out / 256` (512, 1024, 2048 for 8×64d), a projection shortcut
  (1×1 conv + BN) where the shape changes, global average pooling and a dense classifier;
  34.4 M parameters for 8×64d (the paper's figure).

All four are `keras_structconv.models.build_resnet` with bottlenecks of `groups` = cardinality
and `width_per_group` = base width (torchvision's formulation; its conventions, its `conv` and
`attention` factories): the `conv` factory builds every grouped 3×3 convolution from a
`GroupedConv2D` template. `keras_structconv.models.PSResNeXt50_32x4d` etc. use it for PSConv2D.

Example:

```python
model = keras_structconv.models.ResNeXt29_8x64d(classes=100)  # (32, 32, 3) inputs
```
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras

from keras_structconv.models._registry import register_model
from keras_structconv.models.resnet import build_resnet

__all__ = ["ResNeXt29_16x64d", "ResNeXt29_8x64d", "ResNeXt50_32x4d", "ResNeXt101_32x4d"]


@register_model
def ResNeXt50_32x4d(
    *,
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: keras.KerasTensor | None = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: str | Callable[..., Any] | None = "softmax",
    conv: Callable[..., keras.layers.Layer] | None = None,
    attention: Callable[[int], keras.layers.Layer] | None = None,
    name: str = "resnext50_32x4d",
) -> keras.Model:
    """ResNeXt-50 32×4d (Xie et al. 2017, torchvision layout): 25,028,904 trainable weights with
    1000 classes.

    The ResNet-50 v1.5 skeleton (7×7/2 stem with 3×3/2 max-pooling, bottlenecks [3, 4, 6, 3],
    strides 1, 2, 2, 2 on the 3×3 conv) whose 3×3 convolutions have 32 groups of width 4:
    bottleneck widths 128, 256, 512, 1024 and outputs 256, 512, 1024, 2048.

    Other arguments: as `build_resnet`.

    Example:

    >>> ResNeXt50_32x4d(include_top=False, pooling="avg", input_shape=(64, 64, 3)).output_shape
    (None, 2048)
    """
    return build_resnet("bottleneck", (3, 4, 6, 3), groups=32, width_per_group=4, **locals())


@register_model
def ResNeXt101_32x4d(
    *,
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: keras.KerasTensor | None = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: str | Callable[..., Any] | None = "softmax",
    conv: Callable[..., keras.layers.Layer] | None = None,
    attention: Callable[[int], keras.layers.Layer] | None = None,
    name: str = "resnext101_32x4d",
) -> keras.Model:
    """ResNeXt-101 32×4d (Xie et al. 2017, torchvision layout): 44,177,704 trainable weights
    with 1000 classes.

    As `ResNeXt50_32x4d` with bottlenecks [3, 4, 23, 3]: the ResNet-101 v1.5 skeleton whose 3×3
    convolutions have 32 groups of width 4 (bottleneck widths 128, 256, 512, 1024).

    Other arguments: as `build_resnet`.

    Example:

    >>> ResNeXt101_32x4d(input_shape=(64, 64, 3), classes=10).output_shape
    (None, 10)
    """
    return build_resnet("bottleneck", (3, 4, 23, 3), groups=32, width_per_group=4, **locals())


@register_model
def ResNeXt29_8x64d(
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
    name: str = "resnext29_8x64d",
) -> keras.Model:
    """CIFAR ResNeXt-29 8×64d (Xie et al. 2017, §5.3): 34,426,698 trainable weights with 10
    classes.

    A 3×3 stem with 64 filters, three stages of three bottlenecks with outputs 256, 512, 1024
    (strides 1, 2, 2 on the 3×3 conv) whose 3×3 convolutions have 8 groups of width 64
    (bottleneck widths 512, 1024, 2048), projection shortcuts where the shape changes, global
    average pooling and a dense classifier.

    Other arguments: as `build_resnet` (default `input_shape` (32, 32, 3)).

    Example:

    >>> ResNeXt29_8x64d(classes=100).output_shape  # (32, 32, 3) inputs
    (None, 100)
    """
    return build_resnet(
        "bottleneck", (3, 3, 3), stage_filters=(64, 128, 256), stem="cifar", groups=8,
        width_per_group=64, **locals()
    )


@register_model
def ResNeXt29_16x64d(
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
    name: str = "resnext29_16x64d",
) -> keras.Model:
    """CIFAR ResNeXt-29 16×64d (Xie et al. 2017, §5.3): 68,155,210 trainable weights with 10
    classes.

    As `ResNeXt29_8x64d` with 16 groups of width 64 (bottleneck widths 1024, 2048, 4096).

    Other arguments: as `build_resnet` (default `input_shape` (32, 32, 3)).

    Example:

    >>> ResNeXt29_16x64d(include_top=False).output_shape
    (None, 8, 8, 1024)
    """
    return build_resnet(
        "bottleneck", (3, 3, 3), stage_filters=(64, 128, 256), stem="cifar", groups=16,
        width_per_group=64, **locals()
    )
