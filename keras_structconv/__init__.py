"""keras_structconv: structured convolution operators for Keras 3 (TensorFlow backend).

Public API (re-exports only): the layers, `convert` (model surgery) and the model builders.
"""

from keras_structconv._backend import require_tensorflow_backend

require_tensorflow_backend()

from keras_structconv import datasets, layers, models  # noqa: E402
from keras_structconv.surgery import convert  # noqa: E402

__version__ = "0.1.0"

__all__ = ["convert", "datasets", "layers", "models", "__version__"]
