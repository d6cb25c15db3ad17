"""Export of the tree convolutions: inside `portable_ops()` TreeConv2D traces plain ops (no
nested XLA function, no custom gradient) with the training formulation's outputs, and both
variants convert to TFLite with builtin ops only and to ONNX (tf2onnx, opset 17), matching the
Keras outputs in `tf.lite.Interpreter` and onnxruntime."""

import importlib.util

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_structconv.layers import ReferenceTreeConv2D
from keras_structconv.layers._portable import portable_ops
from tests.layers.tree_conv_references import REFERENCE_CASES, random_layer, sample
from tests.references import assert_relative_close

# Left out of `make test-onednn-other`: the portable (export) path, which converted models run in
# TFLite or ONNX Runtime, not on TensorFlow's CPU kernels.
pytestmark = pytest.mark.onednn_neutral

# Ops that TFLite's builtin set or onnxruntime cannot run once converted.
UNPORTABLE_OPS = {
    "PartitionedCall", "StatefulPartitionedCall", "IdentityN", "XlaOptimizationBarrier"
}
MODEL_SHAPE = (2, 13, 11, 8)


def traced(layer, shape):
    """The concrete function of `layer` (inference) for `shape`, traced inside portable_ops()."""
    fn = tf.function(lambda x: layer(x, training=False))
    with portable_ops():
        return fn.get_concrete_function(tf.TensorSpec(shape, tf.float32))


def paper_model():
    inputs = keras.Input(MODEL_SHAPE[1:], batch_size=MODEL_SHAPE[0])
    layer = random_layer(MODEL_SHAPE, filters=12, depth=3, strides=2, fuse=True, use_bias=True)
    return keras.Model(inputs, layer(inputs))


def reference_model():
    inputs = keras.Input(MODEL_SHAPE[1:], batch_size=MODEL_SHAPE[0])
    layer = random_layer(MODEL_SHAPE, layer_class=ReferenceTreeConv2D, filters=8, depth=3,
                         strides=2)
    rng = np.random.default_rng(5)
    for norm in [layer.branch_norm, *layer.leaf_norms]:
        norm.set_weights([rng.uniform(0.5, 1.5, v.shape) for v in norm.weights])
    return keras.Model(inputs, layer(inputs))


MODELS = {"paper": paper_model, "reference": reference_model}


# ------------------------------------------------------------------------------ portable path


@pytest.mark.parametrize("shape, kwargs", REFERENCE_CASES)
def test_portable_path_equals_the_training_path(shape, kwargs):
    layer = random_layer(shape, **kwargs)
    x = sample(shape, 4)
    assert_relative_close(traced(layer, shape)(tf.constant(x)), layer(x), 1e-5)


def test_portable_path_is_plain_ops():
    layer = random_layer(MODEL_SHAPE, filters=8, depth=3, strides=2)
    ops = {op.type for op in traced(layer, MODEL_SHAPE).graph.get_operations()}
    assert not ops & UNPORTABLE_OPS
    assert "AvgPool" in ops and "GatherV2" in ops


def test_training_path_uses_the_fused_kernels():
    layer = random_layer(MODEL_SHAPE, filters=8, depth=3, strides=2)
    fn = tf.function(lambda x: layer(x, training=False))
    graph = fn.get_concrete_function(tf.TensorSpec(MODEL_SHAPE, tf.float32)).graph
    assert "IdentityN" in {op.type for op in graph.get_operations()}  # custom gradients


def test_reference_variant_is_plain_ops():
    layer = random_layer(MODEL_SHAPE, layer_class=ReferenceTreeConv2D, filters=8, depth=3)
    ops = {op.type for op in traced(layer, MODEL_SHAPE).graph.get_operations()}
    assert not ops & UNPORTABLE_OPS


# ------------------------------------------------------------------------------ TFLite


@pytest.mark.parametrize("variant", MODELS)
def test_tflite_builtin_ops_match_keras(variant):
    model = MODELS[variant]()
    concrete = traced(model, MODEL_SHAPE)
    # An empty trackable: the variables are frozen to constants. (With the Keras 3 model as
    # trackable they stay resource variables that the interpreter never initialises.)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], tf.Module())
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = tf.lite.Interpreter(model_content=converter.convert())
    interpreter.allocate_tensors()
    x = sample(MODEL_SHAPE, 6)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    y = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    assert_relative_close(y, model(x, training=False), 1e-4)


# ------------------------------------------------------------------------------ ONNX

ONNX_MISSING = [name for name in ("tf2onnx", "onnxruntime") if importlib.util.find_spec(name)
                is None]


@pytest.mark.skipif(bool(ONNX_MISSING),
                    reason=f"ONNX export check needs {' and '.join(ONNX_MISSING)} (dev extra)")
@pytest.mark.parametrize("variant", MODELS)
def test_onnx_opset_17_matches_keras(variant):
    import onnxruntime
    import tf2onnx

    model = MODELS[variant]()
    concrete = traced(model, MODEL_SHAPE)
    proto, _ = tf2onnx.convert.from_function(
        tf.function(concrete), input_signature=[tf.TensorSpec(MODEL_SHAPE, tf.float32, "x")],
        opset=17,
    )
    session = onnxruntime.InferenceSession(proto.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    x = sample(MODEL_SHAPE, 6)
    (y,) = session.run(None, {session.get_inputs()[0].name: x})
    assert_relative_close(y, model(x, training=False), 1e-4)
