"""ResNets as torchvision builds them (ResNet v1.5), with conv/attention factories.

He et al., "Deep Residual Learning for Image Recognition", CVPR 2016
(https://arxiv.org/abs/1512.03385); "v1.5" is torchvision's variant that puts the stride of a
bottleneck on its 3×3 convolution instead of the first 1×1 (as PS-ResNet and TAM-ResNet do).

`build_resnet` is the family: a stem, stages of basic blocks or bottlenecks (grouped for ResNeXt,
as torchvision's `groups` / `width_per_group`), a global average pool and a dense classifier.
It builds every ResNet of this package: `ResNet18`, `ResNet50`, `ResNet101` here (7×7/2 stem
with max-pooling, stages of 64, 128, 256, 512 filters), the CIFAR ResNets of `cifar_resnet`
and the ResNeXts of `resnext`. Each of these builders fixes the depth and widths and passes its
other arguments on unchanged (`**locals()`: its arguments are its only local names).

Conventions: no conv biases, BatchNorm `momentum=0.9, epsilon=1e-5`, He-normal (fan_out) init,
symmetric PyTorch padding (see `_blocks`). Trainable parameters with 1000 classes equal
torchvision's: ResNet-18 11,689,512; ResNet-50 25,557,032; ResNet-101 44,549,160.

The factories are those of `keras_structconv.convert`: `conv(template) -> Layer` builds every
3×3 convolution but the stem's, `attention(channels) -> Layer` goes on the residual branch right
before each add.

Example:

```python
model = keras_structconv.models.ResNet50(input_shape=(224, 224, 3), classes=1000)
```
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras

from keras_structconv import _validation
from keras_structconv.models import _blocks
from keras_structconv.models._registry import register_model

__all__ = ["ResNet18", "ResNet50", "ResNet101", "build_resnet"]

_BLOCKS = {"basic": _blocks.basic_block, "bottleneck": _blocks.bottleneck_block}


def _block_arguments(
    block: str, shortcut: str, groups: int, width_per_group: int
) -> dict[str, Any]:
    """The block function's own arguments; each is refused by the other block type."""
    if block == "basic":
        if (groups, width_per_group) != (1, 64):
            raise ValueError(
                "Basic blocks take neither `groups` nor `width_per_group` (bottlenecks do). "
                f"Received: groups={groups}, width_per_group={width_per_group}"
            )
        return {"shortcut": _validation.one_of(shortcut, "shortcut", ("A", "B"))}
    if shortcut != "B":
        raise ValueError(
            "Bottlenecks have projection shortcuts (`shortcut='B'`). "
            f"Received: shortcut={shortcut!r}"
        )
    return {
        "groups": _validation.positive_int(groups, "groups"),
        "width_per_group": _validation.positive_int(width_per_group, "width_per_group"),
    }


def build_resnet(
    block: str,
    blocks_per_stage: Sequence[int],
    *,
    stage_filters: Sequence[int] = (64, 128, 256, 512),
    stem: str = "imagenet",
    shortcut: str = "B",
    groups: int = 1,
    width_per_group: int = 64,
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: keras.KerasTensor | None = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: str | Callable[..., Any] | None = "softmax",
    conv: Callable[..., keras.layers.Layer] | None = None,
    attention: Callable[[int], keras.layers.Layer] | None = None,
    name: str = "resnet",
) -> keras.Model:
    """A ResNet (He et al. 2016, torchvision's v1.5 layout) of any depth and width.

    A stem with `stage_filters[0]` filters, then one stage per entry of `blocks_per_stage`:
    stage s has `blocks_per_stage[s]` blocks with `stage_filters[s]` filters (bottlenecks
    output 4 times as many), the first block of every stage but the first strides by 2 (on its
    first 3×3 conv: the bottleneck's middle one). Blocks are named `conv<s + 2>_block<i>`. A
    global average pool and a dense classifier end the network.

    Args:
        block: `"basic"` (two 3×3 convs) or `"bottleneck"` (1×1 - 3×3 - 1×1, ×4 outputs).
        blocks_per_stage: number of blocks of each stage.
        stage_filters: filters (bottlenecks: planes) of each stage, one per stage.
        stem: `"imagenet"` (7×7/2 conv and 3×3/2 max-pooling: stride 4) or `"cifar"` (one 3×3
            conv, no pooling).
        shortcut: where the shape changes, `"B"` (a projection: 1×1 conv + BN) or, for basic
            blocks, `"A"` (He et al.'s parameter-free subsampling with zero channels).
        groups: groups of every bottleneck 3×3 conv (ResNeXt's cardinality).
        width_per_group: channels per group of the bottleneck 3×3 conv at 64 planes; the 3×3
            width is `planes * width_per_group / 64 * groups` (`planes` for a ResNet).
        include_top: whether to end with global average pooling and a dense classifier.
        weights: must be None (no pretrained weights are shipped; nothing is downloaded).
        input_tensor: optional Keras tensor to build the model on.
        input_shape: `(height, width, channels)`; default (224, 224, 3) with the ImageNet stem
            ((None, None, 3) without the top), (32, 32, 3) with the CIFAR stem.
        pooling: without the top, None (4D feature map), "avg" or "max".
        classes: number of classes of the classifier.
        classifier_activation: activation of the classifier ("softmax", None for logits).
        conv: optional factory `conv(template) -> Layer` building every 3×3 convolution but the
            stem's (both of a basic block, the middle one of a bottleneck, which carries the
            stride) from its unbuilt template: a `Conv2D`, or with `groups > 1` a
            `GroupedConv2D` (a `keras.layers.Conv2D` subclass).
        attention: optional factory `attention(channels) -> Layer` placed on the residual
            branch before each add.
        name: model name.

    Returns:
        A functional `keras.Model`.

    Example:

    >>> build_resnet("basic", (1, 1), stage_filters=(8, 16), stem="cifar").count_params()
    22240
    """
    _blocks.check_weights(weights)
    _blocks.check_head(include_top, pooling, classes)
    block_function = _BLOCKS[_validation.one_of(block, "block", _BLOCKS)]
    block_arguments = _block_arguments(block, shortcut, groups, width_per_group)
    if len(stage_filters) != len(blocks_per_stage):
        raise ValueError(
            "`stage_filters` needs one entry per stage (one per `blocks_per_stage` entry). "
            f"Received: stage_filters={tuple(stage_filters)}"
        )
    if _validation.one_of(stem, "stem", ("imagenet", "cifar")) == "imagenet":
        default_shape = (224, 224, 3) if include_top else (None, None, 3)
        image, inputs = _blocks.model_input(input_tensor, input_shape, default_shape)
        x = _blocks.imagenet_stem(image, stage_filters[0])
    else:
        image, inputs = _blocks.model_input(input_tensor, input_shape, (32, 32, 3))
        x = _blocks.conv_bn(image, stage_filters[0], 3, 1, "conv1")
    for stage, (filters, blocks) in enumerate(zip(stage_filters, blocks_per_stage, strict=True)):
        x = _blocks.stack(
            x,
            block_function,
            filters,
            blocks,
            1 if stage == 0 else 2,
            name=f"conv{stage + 2}",
            conv_factory=conv,
            attention=attention,
            **block_arguments,
        )
    x = _blocks.classifier_head(x, include_top, pooling, classes, classifier_activation)
    return keras.Model(inputs, x, name=name)


@register_model
def ResNet18(
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
    name: str = "resnet18",
) -> keras.Model:
    """ResNet-18 (He et al. 2016, torchvision layout): 11,689,512 trainable weights with 1000
    classes.

    A 7×7/2 stem with 3×3/2 max-pooling, then four stages of basic blocks [2, 2, 2, 2] with 64,
    128, 256 and 512 filters (strides 1, 2, 2, 2), a projection shortcut wherever the shape
    changes, global average pooling and a dense classifier. `conv` builds both 3×3 convolutions
    of every basic block.

    Other arguments: as `build_resnet`.

    Example:

    >>> ResNet18(input_shape=(64, 64, 3), classes=10).output_shape
    (None, 10)
    """
    return build_resnet("basic", (2, 2, 2, 2), **locals())


@register_model
def ResNet50(
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
    name: str = "resnet50",
) -> keras.Model:
    """ResNet-50 v1.5 (He et al. 2016, torchvision layout): 25,557,032 trainable weights with
    1000 classes.

    A 7×7/2 stem with 3×3/2 max-pooling, then four stages of bottlenecks [3, 4, 6, 3] with 64,
    128, 256 and 512 planes (outputs ×4; strides 1, 2, 2, 2 on the 3×3 conv), a projection
    shortcut wherever the shape changes, global average pooling and a dense classifier. `conv`
    builds the 3×3 convolution of every bottleneck.

    Other arguments: as `build_resnet`.

    Example:

    >>> ResNet50(include_top=False, pooling="avg", input_shape=(64, 64, 3)).output_shape
    (None, 2048)
    """
    return build_resnet("bottleneck", (3, 4, 6, 3), **locals())


@register_model
def ResNet101(
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
    name: str = "resnet101",
) -> keras.Model:
    """ResNet-101 v1.5 (He et al. 2016, torchvision layout): 44,549,160 trainable weights with
    1000 classes.

    As `ResNet50` with bottlenecks [3, 4, 23, 3]: a 7×7/2 stem with 3×3/2 max-pooling, four
    stages of 64, 128, 256 and 512 planes (outputs ×4; strides 1, 2, 2, 2 on the 3×3 conv),
    global average pooling and a dense classifier.

    Other arguments: as `build_resnet`.

    Example:

    >>> ResNet101(input_shape=(64, 64, 3), classifier_activation=None).output_shape
    (None, 1000)
    """
    return build_resnet("bottleneck", (3, 4, 23, 3), **locals())
