"""ImageNet-style ResNets as torchvision builds them (ResNet v1.5), with conv/attention factories.

He et al., "Deep Residual Learning for Image Recognition", CVPR 2016
(https://arxiv.org/abs/1512.03385); "v1.5" is torchvision's variant that puts the stride of a
bottleneck on its 3×3 convolution instead of the first 1×1 (as PS-ResNet and TAM-ResNet do).

Layout: stem 7×7/2 conv (64) - BN - ReLU - 3×3/2 max-pool; four stages of 64, 128, 256, 512
filters (strides 1, 2, 2, 2), basic blocks (ResNet-18) or bottlenecks ×4 (ResNet-50/101), a
projection shortcut (1×1 conv + BN) wherever the shape changes; global average pool and a dense
classifier. No conv biases, BatchNorm `momentum=0.9, epsilon=1e-5`, He-normal (fan_out) init,
symmetric PyTorch padding (see `_blocks`). Trainable parameters with 1000 classes equal
torchvision's: ResNet-18 11,689,512; ResNet-50 25,557,032; ResNet-101 44,549,160.

The factories are those of `keras_structconv.convert`: `conv(template) -> Layer` builds every
3×3 convolution but the stem (ResNet-50/101: the bottleneck 3×3, which carries the stride;
ResNet-18: both 3×3 convolutions of every basic block), `attention(channels) -> Layer` goes on
the residual branch right before each add.

Example:

```python
model = keras_structconv.models.ResNet50(input_shape=(224, 224, 3), classes=1000)
```
"""

import keras

from keras_structconv.models import _blocks

__all__ = ["ResNet18", "ResNet50", "ResNet101"]

_STAGE_FILTERS = (64, 128, 256, 512)
_STAGE_STRIDES = (1, 2, 2, 2)


def _resnet(
    name,
    block,
    blocks_per_stage,
    *,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    conv=None,
    attention=None,
):
    _blocks.check_weights(weights)
    _blocks.check_head(include_top, pooling, classes)
    default_shape = (224, 224, 3) if include_top else (None, None, 3)
    image, inputs = _blocks.model_input(input_tensor, input_shape, default_shape)

    x = _blocks.imagenet_stem(image)

    for stage, (filters, strides, blocks) in enumerate(
        zip(_STAGE_FILTERS, _STAGE_STRIDES, blocks_per_stage, strict=True)
    ):
        x = _blocks.stack(
            x,
            block,
            filters,
            blocks,
            strides,
            name=f"conv{stage + 2}",
            conv_factory=conv,
            attention=attention,
        )
    x = _blocks.classifier_head(x, include_top, pooling, classes, classifier_activation)
    return keras.Model(inputs, x, name=name)


_ARGS_DOC = """
    Args (keyword-only; the names and defaults of `keras.applications`):
        include_top: whether to end with global average pooling and a dense classifier.
        weights: must be None (no pretrained weights are shipped; nothing is downloaded).
        input_tensor: optional Keras tensor to build the model on.
        input_shape: `(height, width, channels)`; default (224, 224, 3), or (None, None, 3)
            without the top.
        pooling: without the top, None (4-D feature map), "avg" or "max".
        classes: number of classes of the classifier.
        classifier_activation: activation of the classifier ("softmax", None for logits).
        conv: optional factory `conv(template_conv2d) -> Layer` for the 3×3 convolutions{which}.
        attention: optional factory `attention(channels) -> Layer` placed on the residual branch
            before each add.
        name: model name.

    Returns:
        A functional `keras.Model`.
"""


def ResNet18(*, name="resnet18", **kwargs):
    return _resnet(name, _blocks.basic_block, (2, 2, 2, 2), **kwargs)


def ResNet50(*, name="resnet50", **kwargs):
    return _resnet(name, _blocks.bottleneck_block, (3, 4, 6, 3), **kwargs)


def ResNet101(*, name="resnet101", **kwargs):
    return _resnet(name, _blocks.bottleneck_block, (3, 4, 23, 3), **kwargs)


ResNet18.__doc__ = (
    "ResNet-18 (torchvision: 7×7 stem + max-pool, basic blocks [2, 2, 2, 2]).\n"
    + _ARGS_DOC.format(which=" (both 3×3 convs of every basic block, not the stem)")
)
ResNet50.__doc__ = (
    "ResNet-50 v1.5 (torchvision: bottlenecks [3, 4, 6, 3], stride on the 3×3 conv).\n"
    + _ARGS_DOC.format(which=" (the bottleneck 3×3 of every block, which carries the stride)")
)
ResNet101.__doc__ = (
    "ResNet-101 v1.5 (torchvision: bottlenecks [3, 4, 23, 3], stride on the 3×3 conv).\n"
    + _ARGS_DOC.format(which=" (the bottleneck 3×3 of every block, which carries the stride)")
)
