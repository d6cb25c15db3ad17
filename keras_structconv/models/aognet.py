"""AOGNets: networks of AND-OR grammar building blocks (ImageNet 12M / 40M and a CIFAR model).

Reference: Li, Song, Wu, "AOGNets: Compositional Grammatical Architectures for Deep Learning",
CVPR 2019 (arXiv:1711.05847), Section 4 and Table 1; architecture details read off the authors'
released code.

Architecture. A stem, then stages of `AOGBlock`s (`keras_structconv.layers.AOGBlock`):

- ImageNet stem: conv3x3 stride 2 (3 -> f0/2), conv3x3 (f0/2 -> f0/2), conv3x3 (f0/2 -> f0), each
  BN-ReLU, then 2x2 max-pool stride 2 (224 -> 56). CIFAR stem: one conv3x3 (3 -> f0) BN-ReLU.
- Stage s maps `filters[s]` -> `filters[s+1]` channels with `blocks[s]` blocks of
  `num_primitives[s]` primitives and pruning mode `prune_modes[s]`. Stages after the first start
  with a transition conv1x1 (in -> in) BN-ReLU + 2x2 average pool stride 2; blocks never stride.
- Within a stage, `step = (out - in) // blocks` rounded to the nearer multiple of N (the lower
  one on a tie); block j outputs `in + (j + 1) * step` channels, the last block exactly `out`.
- Head: global average pooling + Dense(classes), initialised as PyTorch's `nn.Linear` (the
  release's classifier).

All BatchNorms use `momentum=0.9, epsilon=1e-5`; convolutions have no bias (the classifier has)
and are initialised He-normal with fan_out like the release.
Trainable parameters with 1000 classes: AOGNet-12M 12,259,099 and AOGNet-40M 40,153,004, as the
authors' released networks.

`AOGNet4M` (the mobile-setting row of the paper) is not provided: no released code or
configuration defines it, so its exact structure cannot be reproduced. Build a small network with
`AOGNet(...)` directly if needed.

No pretrained weights exist for these Keras models (and this library never downloads), so
`weights` must be None.

Example:

```python
model = keras_structconv.models.AOGNetCIFAR(classes=100)
```
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras

from keras_structconv.layers._defaults import he_normal_fan_out
from keras_structconv.layers.aog_block import AOGBlock
from keras_structconv.models import _blocks
from keras_structconv.models._registry import register_model

__all__ = ["AOGNet", "AOGNet12M", "AOGNet40M", "AOGNetCIFAR"]


def stage_widths(
    in_channels: int, out_channels: int, num_blocks: int, num_primitives: int
) -> list[int]:
    """Output channels of each block of a stage (the released code's schedule, see above)."""
    step = (out_channels - in_channels) // num_blocks
    quotient, remainder = divmod(step, num_primitives)
    step = (quotient + (2 * remainder > num_primitives)) * num_primitives
    widths = [in_channels + (j + 1) * step for j in range(num_blocks)]
    widths[-1] = out_channels
    return widths


def _check_lengths(num_stages, **lists):
    for name, values in lists.items():
        if len(values) != num_stages:
            raise ValueError(
                f"`{name}` needs one entry per stage ({num_stages} = len(filters) - 1). "
                f"Received: {name}={list(values)}"
            )


def AOGNet(
    *,
    filters: Sequence[int],
    num_primitives: Sequence[int],
    blocks: Sequence[int],
    prune_modes: Sequence[int | None],
    drop_rates: Sequence[float] | None = None,
    lateral: bool = True,
    stem: str = "imagenet",
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: keras.KerasTensor | None = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: str | Callable[..., Any] | None = "softmax",
    kernel_regularizer: keras.regularizers.Regularizer | str | None = None,
    name: str = "aognet",
) -> keras.Model:
    """An AOGNet of any configuration (Li et al. 2019, §4): a stem, then stages of `AOGBlock`s.

    Stage s maps `filters[s]` to `filters[s + 1]` channels with `blocks[s]` blocks of
    `num_primitives[s]` primitives; stages after the first start with a 1×1 transition conv and
    2×2 average pooling. `AOGNet12M`, `AOGNet40M` and `AOGNetCIFAR` are the released
    configurations; the module docstring describes the layout.

    Args:
        filters: channels after the stem, then after each stage (`len(filters) - 1` stages).
        num_primitives: N of the blocks of each stage.
        blocks: number of blocks of each stage.
        prune_modes: pruning mode of each stage (None/0, 1 or 2; see `keras_structconv.aog`).
        drop_rates: SpatialDropout rate inside the blocks of each stage (default all 0).
        lateral: lateral connections in every block.
        stem: `"imagenet"` (three 3×3 convs, the first strided, + 2×2 max-pool) or `"cifar"`
            (one 3×3 conv).
        include_top: whether to end with global average pooling and a dense classifier.
        weights: must be None (no pretrained AOGNet weights exist for Keras; nothing is
            downloaded).
        input_tensor: optional Keras tensor to build the model on.
        input_shape: `(height, width, 3)`; default 224×224 (ImageNet stem) or 32×32 (CIFAR
            stem) with the top, `(None, None, 3)` without.
        pooling: without the top, None (4D feature map), "avg" or "max".
        classes: number of classes of the classifier.
        classifier_activation: activation of the classifier ("softmax", None for logits).
        kernel_regularizer: regularizer of every convolution kernel (e.g. L2 weight decay).
        name: model name.

    Returns:
        A functional `keras.Model`.

    Example:

    >>> model = AOGNet(
    ...     filters=[8, 16, 24], num_primitives=[2, 2], blocks=[1, 1], prune_modes=[1, 2],
    ...     stem="cifar", classes=10,
    ... )
    >>> model.output_shape
    (None, 10)
    """
    _blocks.check_weights(weights)
    if stem not in ("imagenet", "cifar"):
        raise ValueError(f"`stem` must be 'imagenet' or 'cifar'. Received: stem={stem!r}")
    _blocks.check_head(include_top, pooling, classes)
    num_stages = len(filters) - 1
    drop_rates = [0.0] * num_stages if drop_rates is None else list(drop_rates)
    _check_lengths(
        num_stages,
        num_primitives=num_primitives,
        blocks=blocks,
        prune_modes=prune_modes,
        drop_rates=drop_rates,
    )
    size = 224 if stem == "imagenet" else 32
    default_shape = (size, size, 3) if include_top else (None, None, 3)
    inputs, model_inputs = _blocks.model_input(input_tensor, input_shape, default_shape)
    regularized = {"kernel_regularizer": kernel_regularizer}

    if stem == "imagenet":
        x = _blocks.conv_bn(inputs, filters[0] // 2, 3, 2, "stem1", **regularized)
        x = _blocks.conv_bn(x, filters[0] // 2, 3, 1, "stem2", **regularized)
        x = _blocks.conv_bn(x, filters[0], 3, 1, "stem3", **regularized)
        x = keras.layers.MaxPooling2D(2, name="stem_pool")(x)
    else:
        x = _blocks.conv_bn(inputs, filters[0], 3, 1, "stem", **regularized)

    for stage in range(num_stages):
        if stage > 0:
            prefix = f"stage{stage}_transition"
            x = _blocks.conv_bn(x, filters[stage], 1, 1, prefix, **regularized)
            x = keras.layers.AveragePooling2D(2, name=f"{prefix}_pool")(x)
        widths = stage_widths(
            filters[stage], filters[stage + 1], blocks[stage], num_primitives[stage]
        )
        for index, width in enumerate(widths):
            x = AOGBlock(
                width,
                num_primitives[stage],
                prune=prune_modes[stage],
                lateral=lateral,
                drop_rate=drop_rates[stage],
                kernel_initializer=he_normal_fan_out(),
                kernel_regularizer=kernel_regularizer,
                name=f"stage{stage}_block{index}",
            )(x)

    x = _blocks.classifier_head(x, include_top, pooling, classes, classifier_activation)
    return keras.Model(model_inputs, x, name=name)


# The released configurations; the rest of `AOGNet`'s arguments are free.
AOGNET_12M = {
    "filters": [32, 128, 256, 512, 824],
    "num_primitives": [2, 2, 4, 4],
    "blocks": [2, 2, 2, 1],
    "prune_modes": [1, 2, 1, 2],
    "drop_rates": [0.0, 0.0, 0.1, 0.1],
    "stem": "imagenet",
}
AOGNET_40M = {**AOGNET_12M, "filters": [56, 224, 448, 896, 1400], "blocks": [2, 2, 3, 1]}
AOGNET_CIFAR = {
    "filters": [32, 64, 128, 248],
    "num_primitives": [4, 4, 4],
    "blocks": [1, 1, 1],
    "prune_modes": [1, 2, 1],
    "stem": "cifar",
}


@register_model
def AOGNet12M(
    *,
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: keras.KerasTensor | None = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: str | Callable[..., Any] | None = "softmax",
    lateral: bool = True,
    kernel_regularizer: keras.regularizers.Regularizer | str | None = None,
    name: str = "aognet12m",
) -> keras.Model:
    """AOGNet-12M for ImageNet (Li et al. 2019, Table 1): 12,259,099 trainable weights with 1000
    classes, as the authors' released network.

    The ImageNet stem, then four stages: filters `[32, 128, 256, 512, 824]`, N `[2, 2, 4, 4]`,
    blocks `[2, 2, 2, 1]`, pruning modes `[1, 2, 1, 2]`, dropout 0.1 in the last two stages.

    Other arguments: as `AOGNet`.

    Example:

    >>> AOGNet12M(input_shape=(64, 64, 3)).output_shape
    (None, 1000)
    """
    return AOGNet(**AOGNET_12M, **locals())


@register_model
def AOGNet40M(
    *,
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: keras.KerasTensor | None = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: str | Callable[..., Any] | None = "softmax",
    lateral: bool = True,
    kernel_regularizer: keras.regularizers.Regularizer | str | None = None,
    name: str = "aognet40m",
) -> keras.Model:
    """AOGNet-40M for ImageNet (Li et al. 2019, Table 1): 40,153,004 trainable weights with 1000
    classes, as the authors' released network.

    The ImageNet stem, then four stages: filters `[56, 224, 448, 896, 1400]`, N `[2, 2, 4, 4]`,
    blocks `[2, 2, 3, 1]`, pruning modes `[1, 2, 1, 2]`, dropout 0.1 in the last two stages.

    Other arguments: as `AOGNet`.

    Example:

    >>> AOGNet40M(include_top=False, pooling="avg", input_shape=(64, 64, 3)).output_shape
    (None, 1400)
    """
    return AOGNet(**AOGNET_40M, **locals())


@register_model
def AOGNetCIFAR(
    *,
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: keras.KerasTensor | None = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 10,
    classifier_activation: str | Callable[..., Any] | None = "softmax",
    drop_rate: float = 0.0,
    lateral: bool = True,
    kernel_regularizer: keras.regularizers.Regularizer | str | None = None,
    name: str = "aognet_cifar",
) -> keras.Model:
    """A small AOGNet for CIFAR: 812,695 trainable weights with 100 classes.

    One 3×3 stem conv, then three stages: filters `[32, 64, 128, 248]`, N = 4, blocks
    `[1, 1, 1]`, pruning modes `[1, 2, 1]`; the two transitions pool 32×32 inputs to 8×8.

    Args:
        drop_rate: SpatialDropout rate inside every block (`drop_rates` of every stage).

    Other arguments: as `AOGNet`.

    Example:

    >>> AOGNetCIFAR(classes=100).output_shape
    (None, 100)
    """
    arguments = dict(locals())  # `AOGNet`'s arguments, and `drop_rate`
    drop_rates = [arguments.pop("drop_rate")] * len(AOGNET_CIFAR["blocks"])
    return AOGNet(**AOGNET_CIFAR, drop_rates=drop_rates, **arguments)
