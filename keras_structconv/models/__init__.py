"""Model builders (Keras Applications signature where it applies), and their registry.

Every builder is registered under the name of the model it builds:
`keras_structconv.models.list_models()`, `create_model("ps_resnet20")`, `structconv models`.
"""

from keras_structconv.models._registry import (
    create_model,
    get_builder,
    list_models,
    register_model,
)
from keras_structconv.models.aognet import AOGNet, AOGNet12M, AOGNet40M, AOGNetCIFAR
from keras_structconv.models.cifar_resnet import (
    CifarResNet18,
    CifarResNet50,
    ResNet20,
    ResNet56,
)
from keras_structconv.models.ps_resnet import (
    PSResNet20,
    PSResNet50,
    PSResNet56,
    PSResNet101,
    PSResNeXt29_8x64d,
    PSResNeXt29_16x64d,
    PSResNeXt50_32x4d,
    PSResNeXt101_32x4d,
)
from keras_structconv.models.qgn import QGN
from keras_structconv.models.resnet import ResNet18, ResNet50, ResNet101
from keras_structconv.models.resnext import (
    ResNeXt29_8x64d,
    ResNeXt29_16x64d,
    ResNeXt50_32x4d,
    ResNeXt101_32x4d,
)
from keras_structconv.models.tam_resnet import (
    TAMCifarResNet18,
    TAMCifarResNet50,
    TAMEfficientNetB0,
    TAMMobileNetV2,
    TAMResNet20,
    TAMResNet50,
    TAMResNet56,
    add_tree_attention,
)
from keras_structconv.models.tree_resnet import (
    TreeCifarResNet18,
    TreeCifarResNet50,
    TreeResNet18,
    TreeResNet20,
    TreeResNet50,
    TreeResNet56,
    TreeResNet101,
    tree_resnet50_from_keras,
)

__all__ = [
    "QGN",
    "AOGNet",
    "AOGNet12M",
    "AOGNet40M",
    "AOGNetCIFAR",
    "CifarResNet18",
    "CifarResNet50",
    "PSResNeXt29_8x64d",
    "PSResNeXt29_16x64d",
    "PSResNeXt50_32x4d",
    "PSResNeXt101_32x4d",
    "PSResNet20",
    "PSResNet50",
    "PSResNet56",
    "PSResNet101",
    "ResNeXt29_8x64d",
    "ResNeXt29_16x64d",
    "ResNeXt50_32x4d",
    "ResNeXt101_32x4d",
    "ResNet18",
    "ResNet20",
    "ResNet50",
    "ResNet56",
    "ResNet101",
    "TAMCifarResNet18",
    "TAMCifarResNet50",
    "TAMEfficientNetB0",
    "TAMMobileNetV2",
    "TAMResNet20",
    "TAMResNet50",
    "TAMResNet56",
    "TreeCifarResNet18",
    "TreeCifarResNet50",
    "TreeResNet18",
    "TreeResNet20",
    "TreeResNet50",
    "TreeResNet56",
    "TreeResNet101",
    "add_tree_attention",
    "create_model",
    "get_builder",
    "list_models",
    "register_model",
    "tree_resnet50_from_keras",
]
