"""keras_structconv: structured convolution operators for Keras 3 (TensorFlow backend).

Public API (re-exports only): the layers, `convert` (model surgery) and the model builders.

    import keras_structconv as ksc
    layer = ksc.PSConv2D(64, 3, cyclic_interval=4)
    model = ksc.convert(keras.applications.ResNet50(weights=None), attention=ksc.TreeAttention)
"""

from keras_structconv._backend import require_tensorflow_backend

require_tensorflow_backend()

from keras_structconv import aog, datasets, layers, models, quadtree  # noqa: E402
from keras_structconv.layers import (  # noqa: E402
    TAM,
    AOGBlock,
    GroupedConv2D,
    PSConv2D,
    TreeAttention,
    TreeConv2D,
)
from keras_structconv.surgery import convert  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "TAM",
    "AOGBlock",
    "GroupedConv2D",
    "PSConv2D",
    "TreeAttention",
    "TreeConv2D",
    "__version__",
    "aog",
    "convert",
    "datasets",
    "layers",
    "models",
    "quadtree",
]
