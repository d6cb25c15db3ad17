"""TreeConv2D against Conv2D, Tree-ResNets against ResNets (same process, same input).

Targets: geometric-mean layer ratio (TreeConv2D, depth 3, over the four ResNet-50 stage shapes,
forward+backward, batch 8) <= 0.6 without oneDNN and <= 0.5 with it; Tree-ResNet-20 train step
<= 1.2x ResNet-20's. The leaf convolutions hold 0.33x of the vanilla FLOPs; the rest is memory
traffic (gates, pooling, upsampling, concat), which the layer's fused kernels minimise. Which
formulation runs depends on oneDNN (`TF_ENABLE_ONEDNN_OPTS`): run the cases under both settings.

Cases:
- `tree_conv_layers`: TreeConv2D(C, 3, depth=3) vs Conv2D(C, 3, 'same', no bias) at the ResNet-50
  stage shapes 56x56x64, 28x28x128, 14x14x256, 7x7x512, batch 8, forward and forward+backward;
- `tree_conv_layers_b32`: the same at batch 32;
- `tree_resnet`: one SGD train step of Tree-ResNet-50 vs ResNet-50 (our v1.5 builders, 224x224,
  batch 8) and of Tree-ResNet-20 vs ResNet-20 (32x32, batch 128).

`--quick` swaps in batch 2 and small images (the models keep their architecture).
"""

from benchmarks.cases._stages import compare_with_conv3x3
from benchmarks.runner import register
from keras_structconv.layers import TreeConv2D
from keras_structconv.models import ResNet20, ResNet50, TreeResNet20, TreeResNet50


def _layers(bench, batch):
    yield from compare_with_conv3x3(
        bench, "TreeConv2D d=3 vs Conv2D", lambda channels: TreeConv2D(channels, 3, depth=3), batch
    )


@register("tree_conv_layers", description="TreeConv2D vs Conv2D, ResNet-50 stage shapes, batch 8")
def tree_conv_layers(bench):
    yield from _layers(bench, 8)


@register("tree_conv_layers_b32", description="TreeConv2D vs Conv2D, stage shapes, batch 32")
def tree_conv_layers_b32(bench):
    yield from _layers(bench, 32)


@register("tree_resnet", description="Tree-ResNet-50/20 vs ResNet-50/20 train steps")
def tree_resnet(bench):
    size, batch = (64, 2) if bench.quick else (224, 8)
    yield bench.compare_train_steps(
        "Tree-ResNet-50 vs ResNet-50",
        TreeResNet50(input_shape=(size, size, 3)),
        ResNet50(input_shape=(size, size, 3)),
        (batch, size, size, 3),
    )
    batch = 4 if bench.quick else 128
    yield bench.compare_train_steps(
        "Tree-ResNet-20 vs ResNet-20",
        TreeResNet20(input_shape=(32, 32, 3)),
        ResNet20(input_shape=(32, 32, 3)),
        (batch, 32, 32, 3),
    )
