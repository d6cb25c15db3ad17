"""The operators, one per module (or small package); each starts with its paper reference and
definition.

- `PSConv2D` (`ps_conv/`), `TreeConv2D` and `ReferenceTreeConv2D` (`tree_conv/`),
  `TreeAttention` / `TAM` (`tree_attention/`), `AOGBlock` (`aog_block`), `GroupedConv2D`.
- `BatchNormalization`: Keras' BatchNormalization, trained with TensorFlow's fused kernel (the
  builders' BatchNorm: same results, faster training steps; checkpoints interchangeable).
- `ConvFactory`, `psconv_factory`, `treeconv_factory`: how builders and `convert` make them.
- `portable_ops()`: trace the layers' export formulation (TFLite builtins, ONNX).
"""

from keras_structconv.layers._portable import portable_ops
from keras_structconv.layers.aog_block import AOGBlock
from keras_structconv.layers.batch_normalization import BatchNormalization
from keras_structconv.layers.conv_factory import ConvFactory
from keras_structconv.layers.grouped_conv import GroupedConv2D
from keras_structconv.layers.ps_conv import PSConv2D, psconv_factory
from keras_structconv.layers.tree_attention import TAM, TreeAttention
from keras_structconv.layers.tree_conv import (
    ReferenceTreeConv2D,
    TreeConv2D,
    treeconv_factory,
)

__all__ = [
    "TAM",
    "AOGBlock",
    "BatchNormalization",
    "ConvFactory",
    "GroupedConv2D",
    "PSConv2D",
    "ReferenceTreeConv2D",
    "TreeAttention",
    "TreeConv2D",
    "portable_ops",
    "psconv_factory",
    "treeconv_factory",
]
