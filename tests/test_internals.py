"""keras_structconv/_internals.py: every Keras/TensorFlow internal the package reads still exists
and means what the package assumes. When a Keras or TensorFlow upgrade moves one, this file fails
first, naming it."""

import os

import keras
import numpy as np
import tensorflow as tf

from keras_structconv import _internals


def _two_branch_model():
    inputs = keras.Input((4,), name="x")
    left = keras.layers.Dense(3, name="left")(inputs)
    right = keras.layers.Dense(3, name="right")(inputs)
    outputs = keras.layers.Add(name="add")([left, right])
    return keras.Model({"x": inputs}, [outputs], name="two_branch"), left


def test_keras_history_names_the_producing_layer():
    model, left = _two_branch_model()
    operation, node_index, tensor_index = _internals.keras_history(left)
    assert operation is model.get_layer("left")
    assert (node_index, tensor_index) == (0, 0)


def test_inbound_nodes_hold_the_call_inputs():
    model, _ = _two_branch_model()
    (node,) = _internals.inbound_nodes(model.get_layer("add"))
    producers = [_internals.keras_history(t)[0].name for t in node.input_tensors]
    assert producers == ["left", "right"]


def test_nodes_by_depth_cover_every_layer_once():
    model, _ = _two_branch_model()
    by_depth = _internals.nodes_by_depth(model)
    names = sorted(node.operation.name for nodes in by_depth.values() for node in nodes)
    assert names == ["add", "left", "right", "x"]
    assert [node.operation.name for node in by_depth[0]] == ["add"]


def test_input_and_output_structures_keep_their_nesting():
    model, _ = _two_branch_model()
    assert list(_internals.model_input_struct(model)) == ["x"]
    assert isinstance(_internals.model_output_struct(model), list)


def test_node_call_arguments_substitute_tensors():
    model, _ = _two_branch_model()
    (node,) = _internals.inbound_nodes(model.get_layer("add"))
    stand_ins = {id(t): f"new-{i}" for i, t in enumerate(node.input_tensors)}
    args, kwargs = _internals.node_call_arguments(node, stand_ins)
    assert args == (["new-0", "new-1"],) and kwargs == {}


def test_functional_classes():
    model, _ = _two_branch_model()
    assert isinstance(model, _internals.Functional)
    assert _internals.functional_like_constructor(type(model))
    x = keras.Input((2,))
    added = keras.ops.add(x, x)
    assert isinstance(_internals.keras_history(added)[0], _internals.AddOperation)


def test_sequential_graph_exists_once_built():
    model = keras.Sequential([keras.layers.Dense(2)])
    assert _internals.sequential_graph(model) is None
    model.build((None, 3))
    graph = _internals.sequential_graph(model)
    assert graph is not None and graph.inputs[0].shape == (None, 3)


def test_optimization_barrier_is_identity_under_xla():
    fn = tf.function(lambda t: _internals.optimization_barrier(t * 2)[0] + 1, jit_compile=True)
    np.testing.assert_array_equal(fn(tf.constant([1.0, 2.0])), [3.0, 5.0])


def test_in_xla_context_tells_compiled_from_plain_functions():
    seen = {}

    def probe(name):
        def fn(t):
            seen[name] = _internals.in_xla_context()
            return t

        return fn

    tf.function(probe("jit"), jit_compile=True)(tf.constant(1.0))
    tf.function(probe("plain"))(tf.constant(1.0))
    assert seen == {"jit": True, "plain": False}


def test_onednn_enabled_follows_the_environment():
    setting = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    enabled = _internals.onednn_enabled()
    assert isinstance(enabled, bool)
    if setting in ("0", "1"):
        assert enabled is (setting == "1")
