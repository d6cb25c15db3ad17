"""TreeAttention's export formulation: inside `portable_ops()` the layer traces only ops that
TFLite's builtin set and ONNX have, computes what the training formulation computes, and runs in
`tf.lite.Interpreter` (builtin ops only) and in onnxruntime (tf2onnx, opset 17)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_structconv.layers import TreeAttention
from keras_structconv.layers._portable import portable_ops

# Left out of `make test-onednn-other`: the portable (export) path, which converted models run in
# TFLite or ONNX Runtime, not on TensorFlow's CPU kernels.
pytestmark = pytest.mark.onednn_neutral

# The op types of the portable trace: elementwise arithmetic, reshapes and a sum, with the
# shape bookkeeping around them (every one a TFLite builtin and an ONNX operator).
PORTABLE_OPS = {
    "AddV2", "Cast", "ConcatV2", "Const", "Identity", "Maximum", "Minimum", "Mul", "NoOp",
    "Placeholder", "ReadVariableOp", "Reshape", "Shape", "Sigmoid", "StridedSlice", "Sum",
    "Transpose",
}  # fmt: skip
# (channels, group size): powers of the group size, a final 1x1 conv (80 -> ... -> 5 -> 1),
# group sizes 3 and 4, and the single-channel module (gate = sigmoid(x)).
LAYOUTS = [(64, 2), (80, 2), (27, 3), (48, 4), (1, 2)]


def _layer(channels, group_size, seed=0):
    """A built module with random biases and slopes (zeros would hide terms)."""
    init = keras.initializers.RandomNormal(stddev=0.5, seed=seed)
    layer = TreeAttention(group_size, bias_initializer=init, alpha_initializer=init)
    layer.build((None, None, None, channels))
    return layer


def _input(channels, shape=(2, 5, 6), seed=1):
    return np.random.default_rng(seed).standard_normal(shape + (channels,)).astype("float32")


def _portable_function(layer, shape):
    """The layer's call traced inside `portable_ops()` as a concrete function."""
    with portable_ops():
        return tf.function(lambda x: layer(x)).get_concrete_function(tf.TensorSpec(shape))


def _variables(layer):
    """A `tf.Module` tracking the layer's `tf.Variable`s: given the Keras layer itself, the
    converter keeps them as uninitialised resource variables (the model then outputs NaN)."""
    module = tf.Module()
    module.tracked = [w.value for w in layer.weights]
    return module


def _op_types(concrete):
    return {op.type for op in concrete.graph.get_operations()}


def _assert_relative(actual, expected, tolerance):
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(actual, expected, rtol=tolerance, atol=tolerance * scale)


@pytest.mark.parametrize("channels, group_size", LAYOUTS)
def test_portable_trace_uses_only_portable_ops(channels, group_size):
    concrete = _portable_function(_layer(channels, group_size), (None, None, None, channels))
    assert _op_types(concrete) <= PORTABLE_OPS, _op_types(concrete) - PORTABLE_OPS


def test_training_trace_is_not_portable():
    """The check above can fail: the training formulation traces compiled kernels."""
    layer = _layer(64, 2)
    concrete = tf.function(lambda x: layer(x)).get_concrete_function(
        tf.TensorSpec((None, None, None, 64))
    )
    assert {"Bitcast", "PartitionedCall"} <= _op_types(concrete)


@pytest.mark.parametrize("channels, group_size", LAYOUTS)
def test_portable_outputs_equal_the_training_outputs(channels, group_size):
    layer = _layer(channels, group_size)
    x = _input(channels)
    portable = _portable_function(layer, x.shape)(tf.constant(x))
    _assert_relative(portable.numpy(), layer(x).numpy(), 1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_portable_outputs_keep_the_input_dtype(seed):
    init = keras.initializers.RandomNormal(stddev=0.5, seed=seed)
    layer = TreeAttention(
        2, bias_initializer=init, alpha_initializer=init, dtype="mixed_bfloat16"
    )
    x = tf.constant(_input(32, seed=seed), "bfloat16")
    expected = layer(x).numpy().astype("float32")
    with portable_ops():
        out = tf.function(lambda t: layer(t))(x)
    assert out.dtype == tf.bfloat16
    # The two formulations round in a different order, so in bfloat16 (8 significant bits) an
    # element may land one or two units in the last place away (CI saw 2 of 1,920 one unit off).
    bfloat16_epsilon = 2.0**-7
    np.testing.assert_allclose(
        out.numpy().astype("float32"), expected, rtol=2 * bfloat16_epsilon, atol=1e-3
    )


# tf.lite.Interpreter warns that it moves to ai_edge_litert (not a TensorFlow dependency).
@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")
@pytest.mark.parametrize("channels, group_size", [(64, 2), (80, 2), (27, 3)])
def test_tflite_builtin_ops_match(channels, group_size):
    layer = _layer(channels, group_size)
    x = _input(channels)
    concrete = _portable_function(layer, x.shape)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], _variables(layer))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = tf.lite.Interpreter(model_content=converter.convert())
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    result = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    _assert_relative(result, layer(x).numpy(), 1e-4)


@pytest.mark.parametrize("channels, group_size", [(64, 2), (80, 2), (27, 3)])
def test_onnx_matches_in_onnxruntime(channels, group_size):
    tf2onnx = pytest.importorskip("tf2onnx", reason="tf2onnx is not installed (dev extra)")
    onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    layer = _layer(channels, group_size)
    x = _input(channels)
    signature = [tf.TensorSpec((None, None, None, channels), tf.float32, name="x")]
    with portable_ops():
        proto, _ = tf2onnx.convert.from_function(
            tf.function(lambda t: layer(t)), input_signature=signature, opset=17
        )
    session = onnxruntime.InferenceSession(
        proto.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    (result,) = session.run(None, {session.get_inputs()[0].name: x})
    _assert_relative(result, layer(x).numpy(), 1e-4)
