"""PS-ResNet and PS-ResNeXt: our builders with every 3×3 bottleneck conv replaced by PSConv2D.

Li, Yao, Chen, "PSConv: Squeezing Feature Pyramid into One Compact Poly-Scale Convolutional
Layer", ECCV 2020 (https://arxiv.org/abs/2007.06191), §4.1: "We replace all the 3×3 standard
convolutional layers in the middle of bottleneck blocks with our PSConv layers", in all four
stages of a torchvision-style ResNet (v1.5: the stride sits on the 3×3 conv), not the stem and
not the 1×1 convs; default cyclic interval 4 with the pattern (1, 2, 1, 4). The replacement keeps
`filters`, stride, padding, groups and `use_bias` of the vanilla conv, so every model here has
exactly the parameters of its vanilla counterpart (e.g. 25,557,032 for PS-ResNet-50).

- `PSResNet50`, `PSResNet101`: on `keras_structconv.models.ResNet50/101` (the paper's Table 1).
- `PSResNeXt50_32x4d`, `PSResNeXt101_32x4d`: grouped 3×3 convs with the pattern inside each group
  (Table 1); `PSResNeXt29_8x64d`, `PSResNeXt29_16x64d`: the paper's CIFAR models (Table 6).
- `PSResNet20`, `PSResNet56`: every 3×3 conv but the stem of He et al.'s CIFAR ResNets (basic
  blocks). This is this library's extension for small experiments, not a model of the paper.

Each builder takes the arguments of its vanilla builder plus `cyclic_interval` and
`dilation_pattern` (see `PSConv2D`). To convert any other functional model (e.g.
`keras.applications.ResNet50`), use `keras_structconv.convert(model, conv=psconv_factory())`.

Example:

```python
model = keras_structconv.models.PSResNet50(input_shape=(224, 224, 3), classes=1000)
```
"""

from keras_structconv.layers.ps_conv import psconv_factory
from keras_structconv.models import _blocks, cifar_resnet, resnet, resnext

__all__ = [
    "PSResNeXt29_16x64d",
    "PSResNeXt29_8x64d",
    "PSResNeXt50_32x4d",
    "PSResNeXt101_32x4d",
    "PSResNet20",
    "PSResNet50",
    "PSResNet56",
    "PSResNet101",
]


def _ps_variant(vanilla, name, what):
    """The builder `vanilla` with `conv=psconv_factory(cyclic_interval, dilation_pattern)`."""
    builder = _blocks.conv_variant(
        vanilla,
        name,
        psconv_factory,
        {"cyclic_interval": 4, "dilation_pattern": None},
        doc=(
            f"{what}: `{vanilla.__name__}` with PSConv2D 3×3 convolutions.\n\n"
            "    Args (keyword-only): those of `keras_structconv.models."
            f"{vanilla.__name__}` (except `conv`), plus\n"
            "        cyclic_interval: t, the length of the dilation cycle (default 4).\n"
            "        dilation_pattern: t dilation rates; default (1, 2, 1, 4) for t = 4, "
            "otherwise\n"
            "            slot 1 dilated by 2 and the others by 1 (the paper's Table 3).\n\n"
            "    Returns:\n"
            "        A functional `keras.Model` with the vanilla model's parameter count.\n"
        ),
    )
    builder.__name__ = builder.__qualname__ = "PS" + vanilla.__name__
    return builder


PSResNet50 = _ps_variant(resnet.ResNet50, "ps_resnet50", "PS-ResNet-50 (paper Table 1)")
PSResNet101 = _ps_variant(resnet.ResNet101, "ps_resnet101", "PS-ResNet-101 (paper Table 1)")
PSResNeXt50_32x4d = _ps_variant(
    resnext.ResNeXt50_32x4d, "ps_resnext50_32x4d", "PS-ResNeXt-50 32×4d (paper Table 1)"
)
PSResNeXt101_32x4d = _ps_variant(
    resnext.ResNeXt101_32x4d, "ps_resnext101_32x4d", "PS-ResNeXt-101 32×4d (paper Table 1)"
)
PSResNeXt29_8x64d = _ps_variant(
    resnext.ResNeXt29_8x64d, "ps_resnext29_8x64d", "CIFAR PS-ResNeXt-29 8×64d (paper Table 6)"
)
PSResNeXt29_16x64d = _ps_variant(
    resnext.ResNeXt29_16x64d, "ps_resnext29_16x64d",
    "CIFAR PS-ResNeXt-29 16×64d (paper Table 6)",
)
PSResNet20 = _ps_variant(
    cifar_resnet.ResNet20, "ps_resnet20",
    "PS-ResNet-20 (this library's extension, not in the paper; every 3×3 conv but the stem)",
)
PSResNet56 = _ps_variant(
    cifar_resnet.ResNet56, "ps_resnet56",
    "PS-ResNet-56 (this library's extension, not in the paper; every 3×3 conv but the stem)",
)
