"""Export of PSConv2D: inside `portable_ops()` every formulation traces without `tf.roll` and
with the training outputs, and the layer converts to TFLite builtin ops and to ONNX (tf2onnx,
opset 17), matching the Keras outputs in `tf.lite.Interpreter` and onnxruntime."""

import numpy as np
import pytest
import tensorflow as tf

from keras_structconv.layers.ps_conv import FORMULATIONS
from tests.layers.ps_conv.ps_conv_references import ps_layer
from tests.references import (
    assert_relative_close,
    needs_onnx,
    onnx_outputs,
    portable_trace,
    tflite_outputs,
)

# Left out of `make test-onednn-other`: the portable (export) formulations, which converted models
# run in TFLite or ONNX Runtime, not on TensorFlow's CPU kernels.
pytestmark = pytest.mark.onednn_neutral

EXPORT_CASES = [
    # (channels, strides, groups): 4 input channels per block take the masked formulation,
    # 8 the grouped convs per slot (oneDNN) or the convs per input block (no oneDNN).
    (16, 1, 1),
    (16, 2, 1),
    (32, 1, 1),
    (32, 2, 1),
    (64, 2, 2),
]


def exported_layer(channels, strides, groups, formulation=None):
    layer = ps_layer(channels, 3, strides=strides, groups=groups, use_bias=True,
                     formulation=formulation)
    layer.build((None, 9, 9, channels))
    rng = np.random.default_rng(channels + strides)
    layer.set_weights([rng.standard_normal(w.shape).astype("float32") for w in layer.weights])
    return layer


def export_input(channels):
    return np.random.default_rng(7).standard_normal((2, 9, 9, channels)).astype("float32")


@pytest.mark.parametrize("formulation", FORMULATIONS)
@pytest.mark.parametrize("channels, strides, groups", EXPORT_CASES)
def test_portable_trace_equals_training_and_has_no_roll(formulation, channels, strides, groups):
    layer = exported_layer(channels, strides, groups, formulation)
    x = export_input(channels)
    concrete = portable_trace(layer, x.shape)
    assert "Roll" not in {op.type for op in concrete.graph.get_operations()}
    assert_relative_close(concrete(tf.constant(x)), layer(x), 1e-5)


@pytest.mark.parametrize("channels, strides, groups", EXPORT_CASES)
def test_converts_to_tflite_builtin_ops_and_matches(channels, strides, groups):
    layer = exported_layer(channels, strides, groups)
    x = export_input(channels)
    assert_relative_close(tflite_outputs(layer, x), layer(x), 1e-4)


@needs_onnx
@pytest.mark.parametrize("channels, strides, groups", EXPORT_CASES)
def test_converts_to_onnx_and_matches(channels, strides, groups):
    layer = exported_layer(channels, strides, groups)
    x = export_input(channels)
    assert_relative_close(onnx_outputs(layer, x), layer(x), 1e-4)
