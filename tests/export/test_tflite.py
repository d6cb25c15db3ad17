"""keras_structconv.export.tflite: each layer converts with TFLite builtin ops only (batch 1
and dynamic) and LiteRT / tf.lite give the Keras outputs to 1e-4 relative; files are written
atomically; fixed input shapes and batches are checked; an unsupported op is named with its
layer."""

import keras
import numpy as np
import pytest

import keras_structconv as ksc
from keras_structconv import export
from tests.export.export_testing import (
    HAS_LITERT,
    LAYER_CASES,
    assert_matches,
    images_for,
    layer_model,
    searchsorted_model,
)


@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_layer_converts_to_tflite_builtin_ops_and_matches(name):
    model = layer_model(name)
    x = images_for(model)
    flatbuffer = export.to_tflite(model)  # builtin ops only (the default)
    assert_matches(export.tflite_predict(flatbuffer, x), model.predict(x, verbose=0), name)


@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_layer_converts_to_tflite_with_dynamic_batch(name):
    """`batch_size=None`, as Keras' own exports trace: no static batch for a converter to fold
    shape-dependent ops with."""
    model = layer_model(name)
    x = images_for(model, batch=3)
    flatbuffer = export.to_tflite(model, batch_size=None)
    assert_matches(export.tflite_predict(flatbuffer, x), model.predict(x, verbose=0), name)


@pytest.mark.parametrize("interpreter", ["tensorflow", "litert"])
def test_tflite_predict_runs_in_both_interpreters(interpreter, tmp_path):
    if interpreter == "litert" and not HAS_LITERT:
        pytest.skip("ai-edge-litert not installed")
    model = layer_model("TreeAttention")
    x = images_for(model, batch=4)
    path = tmp_path / "nested" / "folder" / "model.tflite"
    flatbuffer = export.to_tflite(model, path)
    assert path.read_bytes() == flatbuffer
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.tflite"]  # no temp file left
    predicted = export.tflite_predict(path, x, interpreter=interpreter)
    assert_matches(predicted, model.predict(x, verbose=0), interpreter)


def test_unknown_spatial_size_needs_input_shape():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((None, None, 16)), ksc.TreeConv2D(16, 3)])
    with pytest.raises(ValueError, match=r"input_shape.*Received: input_shape=None"):
        export.to_tflite(model)
    x = np.random.default_rng(0).normal(size=(2, 12, 10, 16)).astype("float32")
    flatbuffer = export.to_tflite(model, input_shape=(12, 10, 16))
    assert_matches(export.tflite_predict(flatbuffer, x), model.predict(x, verbose=0), "12x10")
    with pytest.raises(ValueError, match=r"batch_size.*Received: batch_size=0"):
        export.to_tflite(model, input_shape=(12, 10, 16), batch_size=0)


def test_fixed_batch_needs_a_multiple_of_it():
    model = layer_model("GroupedConv2D")
    flatbuffer = export.to_tflite(model, batch_size=2)
    x = images_for(model, batch=4)
    assert_matches(export.tflite_predict(flatbuffer, x), model.predict(x, verbose=0), "batch 2")
    with pytest.raises(ValueError, match="fixed batch size of 2"):
        export.tflite_predict(flatbuffer, x[:3])


def test_tflite_error_names_the_unsupported_op_and_its_layer():
    with pytest.raises(export.UnsupportedOpsError) as caught:
        export.to_tflite(searchsorted_model())
    assert caught.value.ops == ("LowerBound",)
    assert "sorting_layer" in str(caught.value)
    assert "builtin_only=False" in str(caught.value)
