"""keras_structconv.export, both runtimes: several inputs are fed in the model's order and
dict outputs come back by name (the serving signature and the shared prediction loop)."""

import keras
import numpy as np

import keras_structconv as ksc
from keras_structconv import export
from tests.export.export_testing import HAS_ONNX, NARROW, WIDE, assert_matches


def test_multi_input_model_keeps_the_input_order(tmp_path):
    """Two inputs concatenated: swapping them would change the output."""
    keras.utils.set_random_seed(0)
    first, second = keras.Input((8, 8, 8), name="zeta"), keras.Input((8, 8, 24), name="alpha")
    mixed = keras.layers.Concatenate()([first, second])
    model = keras.Model([first, second], ksc.PSConv2D(WIDE, 3)(mixed))
    rng = np.random.default_rng(0)
    x = [rng.normal(size=(2, 8, 8, 8)).astype("float32"),
         rng.normal(size=(2, 8, 8, 24)).astype("float32")]
    expected = model.predict(x, verbose=0)
    assert_matches(export.tflite_predict(export.to_tflite(model), x), expected, "TFLite")
    if HAS_ONNX:
        export.to_onnx(model, tmp_path / "model.onnx")
        assert_matches(export.onnx_predict(tmp_path / "model.onnx", x), expected, "ONNX")


def test_dict_outputs_come_back_by_name(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, NARROW))
    features = ksc.PSConv2D(NARROW, 3)(inputs)
    outputs = {"zeta": features, "alpha": keras.layers.GlobalAveragePooling2D()(features)}
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, NARROW)).astype("float32")
    expected = model.predict(x, verbose=0)
    converted = {"TFLite": export.tflite_predict(export.to_tflite(model), x)}
    if HAS_ONNX:
        export.to_onnx(model, tmp_path / "model.onnx")
        converted["ONNX"] = export.onnx_predict(tmp_path / "model.onnx", x)
    for runtime, outputs in converted.items():
        assert sorted(outputs) == ["alpha", "zeta"], runtime
        for key in outputs:
            assert_matches(outputs[key], expected[key], f"{runtime} {key}")
