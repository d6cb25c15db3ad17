"""keras_structconv: structured convolution operators for Keras 3 (TensorFlow backend).

Public API (re-exports only): the layers, `convert` (model surgery), the model builders and their
registry, `load_model`, and the `hub`, `export`, `tuning` (optional extra) and `runtime` modules.

    import keras, keras_structconv as ksc
    layer = ksc.PSConv2D(64, 3, cyclic_interval=4)
    model = ksc.convert(
        keras.applications.ResNet50(weights=None),
        attention=lambda channels: ksc.TreeAttention(2),
    )
    model = ksc.load_model("model.keras")  # a .keras file holding our layers
"""

from keras_structconv._backend import require_tensorflow_backend

require_tensorflow_backend()

from keras_structconv import aog, datasets, export, hub, layers, models, quadtree, runtime  # noqa: E402, I001
from keras_structconv._version import __version__  # noqa: E402
from keras_structconv.layers import (  # noqa: E402
    TAM,
    AOGBlock,
    ConvFactory,
    GroupedConv2D,
    PSConv2D,
    ReferenceTreeConv2D,
    TreeAttention,
    TreeConv2D,
)
from keras_structconv.export import load_model  # noqa: E402
from keras_structconv.surgery import convert  # noqa: E402

__all__ = [
    "TAM",
    "AOGBlock",
    "ConvFactory",
    "GroupedConv2D",
    "PSConv2D",
    "ReferenceTreeConv2D",
    "TreeAttention",
    "TreeConv2D",
    "__version__",
    "aog",
    "convert",
    "datasets",
    "export",
    "hub",
    "layers",
    "load_model",
    "models",
    "quadtree",
    "runtime",
]
