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

Conventions as in `keras_structconv.models.resnet`: no conv biases, BatchNorm `momentum=0.9,
epsilon=1e-5`, He-normal (fan_out) init, PyTorch padding. The `conv` factory builds every 3×3
convolution but the stem (basic blocks: both; bottlenecks: the middle one); `attention` goes on
the residual branch right before each add. PS/Tree variants of the basic-block CIFAR ResNets are
this library's extension for small experiments (the papers use other CIFAR models).

Example:

```python
model = keras_structconv.models.ResNet20()  # (32, 32, 3) inputs, 10 classes
```
"""

import keras

from keras_structconv.models import _blocks

__all__ = ["CifarResNet18", "CifarResNet50", "ResNet20", "ResNet56"]


def _cifar_resnet(
    name,
    stem_filters,
    stages,
    block,
    *,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=10,
    classifier_activation="softmax",
    conv=None,
    attention=None,
    **block_kwargs,
):
    """`stages`: (filters, blocks, strides) per stage, named conv2, conv3, ..."""
    _blocks.check_weights(weights)
    _blocks.check_head(include_top, pooling, classes)
    image, inputs = _blocks.model_input(input_tensor, input_shape, (32, 32, 3))
    x = _blocks.conv_bn(image, stem_filters, 3, 1, "conv1")
    for stage, (filters, blocks, strides) in enumerate(stages):
        x = _blocks.stack(
            x,
            block,
            filters,
            blocks,
            strides,
            name=f"conv{stage + 2}",
            conv_factory=conv,
            attention=attention,
            **block_kwargs,
        )
    x = _blocks.classifier_head(x, include_top, pooling, classes, classifier_activation)
    return keras.Model(inputs, x, name=name)


def _he_cifar(name, depth, **kwargs):
    blocks = (depth - 2) // 6
    stages = ((16, blocks, 1), (32, blocks, 2), (64, blocks, 2))
    return _cifar_resnet(name, 16, stages, _blocks.basic_block, shortcut="A", **kwargs)


_ARGS_DOC = """
    Args (keyword-only; the names and defaults of `keras.applications`):
        include_top: whether to end with global average pooling and a dense classifier.
        weights: must be None (no pretrained weights are shipped; nothing is downloaded).
        input_tensor: optional Keras tensor to build the model on.
        input_shape: `(height, width, channels)`, default (32, 32, 3).
        pooling: without the top, None (4-D feature map), "avg" or "max".
        classes: number of classes of the classifier (default 10).
        classifier_activation: activation of the classifier ("softmax", None for logits).
        conv: optional factory `conv(template_conv2d) -> Layer` for the 3×3 convolutions{which}.
        attention: optional factory `attention(channels) -> Layer` placed on the residual branch
            before each add.
        name: model name.

    Returns:
        A functional `keras.Model`.
"""


def ResNet20(*, name="resnet20", **kwargs):
    return _he_cifar(name, 20, **kwargs)


def ResNet56(*, name="resnet56", **kwargs):
    return _he_cifar(name, 56, **kwargs)


def _wide_stages(blocks_per_stage):
    """(filters, blocks, strides) of the TAM paper's CIFAR ResNets' four stages."""
    return tuple(zip((64, 128, 256, 512), blocks_per_stage, (1, 2, 2, 2), strict=True))


def CifarResNet18(*, name="cifar_resnet18", **kwargs):
    return _cifar_resnet(name, 64, _wide_stages((2, 2, 2, 2)), _blocks.basic_block, **kwargs)


def CifarResNet50(*, name="cifar_resnet50", **kwargs):
    return _cifar_resnet(
        name, 64, _wide_stages((3, 4, 6, 3)), _blocks.bottleneck_block, **kwargs
    )


_BASIC = " (both 3×3 convs of every basic block, not the stem)"
ResNet20.__doc__ = (
    "He et al.'s CIFAR ResNet-20 (3 stages × 3 basic blocks, option-A shortcuts).\n"
    + _ARGS_DOC.format(which=_BASIC)
)
ResNet56.__doc__ = (
    "He et al.'s CIFAR ResNet-56 (3 stages × 9 basic blocks, option-A shortcuts).\n"
    + _ARGS_DOC.format(which=_BASIC)
)
CifarResNet18.__doc__ = (
    "The TAM paper's CIFAR ResNet-18 (64-filter 3×3 stem, basic blocks [2, 2, 2, 2]).\n"
    + _ARGS_DOC.format(which=_BASIC)
)
CifarResNet50.__doc__ = (
    "The TAM paper's CIFAR ResNet-50 (64-filter 3×3 stem, bottlenecks [3, 4, 6, 3]).\n"
    + _ARGS_DOC.format(which=" (the middle 3×3 of every bottleneck, which carries the stride)")
)
