"""Deploying models: TFLite, ONNX and SavedModel exports, and loading `.keras` files.

Some layers of this package train fastest with ops that deployment runtimes lack (XLA-compiled
functions with custom gradients, `tf.roll`, bitcasts, complex numbers). Every export here traces
the model inside `keras_structconv.layers.portable_ops()`, where each layer builds an
inference formulation made only of ops that TFLite's builtin op set and ONNX (opset 17) have;
its outputs equal the training formulation's. The exported graph has a fixed input shape
(`batch_size` x the model's input shape) unless stated otherwise.

- `to_tflite(model, path)` -> the `.tflite` flatbuffer (builtin ops only by default);
  `tflite_predict(tflite, x)` runs it (LiteRT's `ai_edge_litert` when installed, else
  `tf.lite.Interpreter`). Module `keras_structconv.export.tflite`.
- `to_onnx(model, path)` -> an ONNX model written by `tf2onnx` (the `export` extra:
  `pip install keras_structconv[export]`); `onnx_predict(path, x)` runs it in `onnxruntime`.
  Module `keras_structconv.export.onnx`.
- `export_saved_model(model, path)` -> a SavedModel for TF-Serving and `keras.layers.TFSMLayer`,
  traced on the portable path too (no XLA-compiled functions inside). Module
  `keras_structconv.export.saved_model`.
- `load_model(path)` -> `keras.saving.load_model` with this package's classes registered, and an
  error that says what to do when a class named in the file is unknown. Module
  `keras_structconv.export.loading`.
- A model with an op a runtime lacks raises `UnsupportedOpsError` (module
  `keras_structconv.export.errors`), naming the ops and the layers using them.

Example:

```python
import keras_structconv as ksc
from keras_structconv import export

model = ksc.models.TreeResNet20()
export.to_tflite(model, "tree_resnet20.tflite")              # builtin ops, batch 1
probabilities = export.tflite_predict("tree_resnet20.tflite", images)
export.to_onnx(model, "tree_resnet20.onnx")                  # opset 17
probabilities = export.onnx_predict("tree_resnet20.onnx", images)
export.export_saved_model(model, "tree_resnet20_savedmodel")
serving = keras.layers.TFSMLayer("tree_resnet20_savedmodel", call_endpoint="serve",
                                 dtype="float32")
model.save("tree_resnet20.keras")
reloaded = ksc.load_model("tree_resnet20.keras")
```
"""

from keras_structconv.export._tracing import serving_function
from keras_structconv.export.errors import UnsupportedOpsError
from keras_structconv.export.loading import (
    load_model,
    missing_package_hint,
    registered_names_in_file,
)
from keras_structconv.export.onnx import onnx_predict, to_onnx
from keras_structconv.export.saved_model import export_saved_model
from keras_structconv.export.tflite import tflite_predict, to_tflite

__all__ = [
    "UnsupportedOpsError",
    "export_saved_model",
    "load_model",
    "missing_package_hint",
    "onnx_predict",
    "registered_names_in_file",
    "serving_function",
    "tflite_predict",
    "to_onnx",
    "to_tflite",
]
