"""Model builders (Keras Applications signature where it applies)."""

__all__ = []

from keras_structconv.models.aognet import AOGNet, AOGNet12M, AOGNet40M, AOGNetCIFAR  # noqa: E402

__all__ += ["AOGNet", "AOGNet12M", "AOGNet40M", "AOGNetCIFAR"]
from keras_structconv.models.cifar_resnet import (  # noqa: E402
    CifarResNet18,
    CifarResNet50,
    ResNet20,
    ResNet56,
)
from keras_structconv.models.resnet import ResNet18, ResNet50, ResNet101  # noqa: E402

__all__ += ["CifarResNet18", "CifarResNet50", "ResNet18", "ResNet20", "ResNet50", "ResNet56",
            "ResNet101"]
from keras_structconv.models.tree_resnet import (  # noqa: E402
    TreeCifarResNet18,
    TreeCifarResNet50,
    TreeResNet18,
    TreeResNet20,
    TreeResNet50,
    TreeResNet56,
    TreeResNet101,
    tree_resnet50_from_keras,
)

__all__ += ["TreeCifarResNet18", "TreeCifarResNet50", "TreeResNet18", "TreeResNet20"]
__all__ += ["TreeResNet50", "TreeResNet56", "TreeResNet101", "tree_resnet50_from_keras"]
from keras_structconv.models.resnext import (  # noqa: E402
    ResNeXt29_8x64d,
    ResNeXt29_16x64d,
    ResNeXt50_32x4d,
    ResNeXt101_32x4d,
)

__all__ += ["ResNeXt29_8x64d", "ResNeXt29_16x64d", "ResNeXt50_32x4d", "ResNeXt101_32x4d"]
from keras_structconv.models.ps_resnet import (  # noqa: E402
    PSResNet20,
    PSResNet50,
    PSResNet56,
    PSResNet101,
    PSResNeXt29_8x64d,
    PSResNeXt29_16x64d,
    PSResNeXt50_32x4d,
    PSResNeXt101_32x4d,
)

__all__ += ["PSResNet20", "PSResNet50", "PSResNet56", "PSResNet101", "PSResNeXt29_8x64d"]
__all__ += ["PSResNeXt29_16x64d", "PSResNeXt50_32x4d", "PSResNeXt101_32x4d"]
from keras_structconv.models.tam_resnet import (  # noqa: E402
    TAMCifarResNet18,
    TAMCifarResNet50,
    TAMEfficientNetB0,
    TAMMobileNetV2,
    TAMResNet50,
    add_tree_attention,
)

__all__ += ["TAMCifarResNet18", "TAMCifarResNet50", "TAMEfficientNetB0", "TAMMobileNetV2"]
__all__ += ["TAMResNet50", "add_tree_attention"]
from keras_structconv.models.qgn import QGN  # noqa: E402

__all__ += ["QGN"]
