"""keras_structconv.export.onnx: each layer converts with tf2onnx (opset 17) and onnxruntime
gives the Keras outputs to 1e-4 relative; the graph's only inputs are the model's; an
unsupported op is named with its layer and nothing is written; a missing tf2onnx names the
`export` extra."""

import sys

import keras
import numpy as np
import pytest

import keras_structconv as ksc
from keras_structconv import export
from tests.export.export_testing import (
    LAYER_CASES,
    NARROW,
    assert_matches,
    images_for,
    layer_model,
    needs_onnx,
    searchsorted_model,
)


@needs_onnx
@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_layer_converts_to_onnx_and_matches(name, tmp_path):
    model = layer_model(name)
    x = images_for(model, batch=3)
    path = tmp_path / "model.onnx"
    export.to_onnx(model, path, batch_size=None)
    assert_matches(export.onnx_predict(path, x), model.predict(x, verbose=0), name)


@needs_onnx
def test_onnx_graph_has_only_the_model_inputs(tmp_path):
    """`Normalization` with given statistics keeps them as captured constants, which tf2onnx
    alone turns into graph inputs (as in `keras.applications.EfficientNetB0`)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Normalization(mean=[1.0, 2.0, 3.0], variance=[4.0, 5.0, 6.0]),
        keras.layers.Conv2D(NARROW, 1),
        ksc.PSConv2D(NARROW, 3),
    ])
    x = np.random.default_rng(0).normal(2.0, 2.0, size=(2, 8, 8, 3)).astype("float32")
    proto = export.to_onnx(model, tmp_path / "model.onnx")
    assert len(proto.graph.input) == 1, [graph_input.name for graph_input in proto.graph.input]
    assert_matches(export.onnx_predict(tmp_path / "model.onnx", x), model.predict(x, verbose=0),
                   "ONNX")


@needs_onnx
def test_onnx_error_names_the_unsupported_op_and_writes_nothing(tmp_path):
    path = tmp_path / "model.onnx"
    with pytest.raises(export.UnsupportedOpsError) as caught:
        export.to_onnx(searchsorted_model(), path)
    assert caught.value.ops == ("LowerBound",)
    assert "sorting_layer" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_missing_tf2onnx_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # `import tf2onnx` now raises
    with pytest.raises(ImportError, match=r"keras_structconv\[export\]"):
        export.to_onnx(layer_model("GroupedConv2D"), tmp_path / "model.onnx")
