"""TreeAttention (TAM) against the stage's 3x3 Conv2D, TAM-ResNets against ResNets.

Targets at batch 8: layer ratio <= 0.3x at 56x56x64 and <= 0.15x at 28x28x128, 14x14x256 and
7x7x512 (forward+backward); model train-step ratio <= 1.05. The module is memory-bound (a few
operations per input element); its kernels and what they read and write are described in
`docs/design/tree_attention.md`. The surrounding step is not compiled with XLA (the module
compiles its own kernels).

Cases:
- `tree_attention_layers`: TreeAttention(group_size=2) vs Conv2D(C, 3, 'same', no bias) on the same
  input at the ResNet-50 stage shapes 56x56x64, 28x28x128, 14x14x256, 7x7x512, batch 8, forward
  and forward+backward;
- `tree_attention_layers_b32`: the same at batch 32;
- `tam_resnet`: one SGD train step of TAM-ResNet-50 (keras.applications.ResNet50 + `convert`)
  vs ResNet-50 at 224x224, batch 8, and of TAM CIFAR ResNet-50 vs CIFAR ResNet-50 at 32x32,
  batch 128.

`--quick` swaps in batch 2 and small images (the models keep their architecture).
"""

import keras

from benchmarks.cases._stages import compare_with_conv3x3
from benchmarks.runner import register
from keras_structconv.layers import TreeAttention
from keras_structconv.models import CifarResNet50, TAMCifarResNet50, TAMResNet50


def _layers(bench, batch):
    yield from compare_with_conv3x3(
        bench, "TreeAttention g=2 vs Conv2D 3x3", lambda channels: TreeAttention(2), batch
    )


@register("tree_attention_layers", description="TreeAttention vs 3x3 Conv2D, stage shapes, batch 8")
def tree_attention_layers(bench):
    yield from _layers(bench, 8)


@register("tree_attention_layers_b32", description="TreeAttention vs 3x3 Conv2D, batch 32")
def tree_attention_layers_b32(bench):
    yield from _layers(bench, 32)


@register("tam_resnet", description="TAM-ResNet-50 vs ResNet-50 (224, b8; CIFAR 32, b128) steps")
def tam_resnet(bench):
    size, batch = (32, 2) if bench.quick else (224, 8)
    yield bench.compare_train_steps(
        "TAM-ResNet-50 vs ResNet-50 (keras.applications)",
        TAMResNet50(input_shape=(size, size, 3), classes=1000),
        keras.applications.ResNet50(weights=None, input_shape=(size, size, 3), classes=1000),
        (batch, size, size, 3),
    )
    batch = 4 if bench.quick else 128
    yield bench.compare_train_steps(
        "TAM CIFAR ResNet-50 vs CIFAR ResNet-50",
        TAMCifarResNet50(classes=100),
        CifarResNet50(classes=100),
        (batch, 32, 32, 3),
    )
