"""Our BatchNormalization against Keras' (the definition it keeps) and against Ioffe & Szegedy's
formula in NumPy: outputs, gradients, moving statistics, the calls that must stay Keras' own,
mixed precision, a `.keras` round trip and checkpoints shared with Keras' layer."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_structconv.layers import BatchNormalization

ARGUMENTS = dict(momentum=0.9, epsilon=1e-5)


def _pair(**kwargs):
    """Our layer and Keras' layer, built alike, with random gamma and beta."""
    arguments = {**ARGUMENTS, **kwargs}
    layers = BatchNormalization(**arguments), keras.layers.BatchNormalization(**arguments)
    rng = np.random.default_rng(0)
    for layer in layers:
        layer.build((None, None, None, 6))
    values = [rng.standard_normal(w.shape).astype("float32") for w in layers[1].weights]
    for layer in layers:
        layer.set_weights(values)
    return layers


def _input(shape=(3, 5, 4, 6), seed=1):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * 3.0 + 2.0).astype("float32")


def _step(layer, x, upstream):
    """Output and the gradients of sum(output * upstream) w.r.t. the input and the weights."""
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(tf.cast(y, "float32") * upstream)
    return y, tape.gradient(loss, [x, *layer.trainable_weights])


def test_training_step_is_the_batch_norm_formula():
    layer = BatchNormalization(**ARGUMENTS, gamma_initializer="random_normal",
                                    beta_initializer="random_normal")
    x = _input()
    y = layer(x, training=True).numpy()
    mean, variance = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))  # biased, as in Algorithm 1
    gamma, beta = layer.gamma.numpy(), layer.beta.numpy()
    expected = gamma * (x - mean) / np.sqrt(variance + 1e-5) + beta
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.1 * mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.moving_variance.numpy(), 0.9 + 0.1 * variance, rtol=1e-5)


@pytest.mark.parametrize("kwargs", [{}, {"center": False}, {"scale": False},
                                    {"center": False, "scale": False}, {"axis": 3}])
def test_outputs_gradients_and_moving_statistics_equal_keras(kwargs):
    fused, reference = _pair(**kwargs)
    upstream = tf.constant(np.random.default_rng(2).standard_normal((3, 5, 4, 6)), "float32")
    for seed in (1, 2, 3):  # three steps: the moving statistics compound
        x = _input(seed=seed)
        y, grads = _step(fused, x, upstream)
        y_ref, grads_ref = _step(reference, x, upstream)
        np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
        for got, expected in zip(grads, grads_ref, strict=True):
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    for got, expected in zip(fused.weights, reference.weights, strict=True):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


def test_a_one_element_batch_has_zero_variance():
    # One value per channel: x - mean = 0 and the biased variance is 0, so y = beta and the
    # moving variance decays. (Keras' E[x^2] - E[x]^2 leaves float32 noise of ~1e-6 here.)
    fused, _ = _pair()
    moving_variance = fused.moving_variance.numpy()
    y = fused(_input((1, 1, 1, 6)), training=True)
    np.testing.assert_array_equal(y.numpy().ravel(), fused.beta.numpy())
    np.testing.assert_allclose(fused.moving_variance.numpy(), 0.9 * moving_variance, rtol=1e-6)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_matches_keras(policy):
    fused, reference = _pair(dtype=policy)
    x = tf.cast(_input(), fused.compute_dtype)
    y, y_ref = fused(x, training=True), reference(x, training=True)
    assert y.dtype == y_ref.dtype == fused.compute_dtype
    # Both normalise in float32 and round the result once to the compute dtype.
    tolerance = {"mixed_float16": 2.0**-10, "mixed_bfloat16": 2.0**-7}[policy]
    np.testing.assert_allclose(tf.cast(y, "float32"), tf.cast(y_ref, "float32"),
                               rtol=2 * tolerance, atol=2 * tolerance)
    assert fused.moving_variance.dtype == "float32"
    np.testing.assert_allclose(fused.moving_variance.numpy(), reference.moving_variance.numpy(),
                               rtol=1e-5)


def _ops_of_a_training_step(layer, shape):
    function = tf.function(lambda t: layer(t, training=True))
    graph = function.get_concrete_function(tf.TensorSpec(shape, "float32")).graph
    return {op.type for op in graph.get_operations()}


def test_training_steps_use_the_fused_kernel_and_everything_else_is_keras():
    fused, reference = _pair()
    assert "FusedBatchNormV3" in _ops_of_a_training_step(fused, (2, 3, 3, 6))
    assert "FusedBatchNormV3" not in _ops_of_a_training_step(reference, (2, 3, 3, 6))
    # Inference, other ranks, a frozen layer: Keras' own graph.
    x = _input()
    np.testing.assert_array_equal(fused(x, training=False), reference(x, training=False))
    for shape in [(4, 6), (2, 5, 6), (2, 3, 3, 2, 6)]:
        layer = BatchNormalization(**ARGUMENTS)
        layer.build(shape)
        assert "FusedBatchNormV3" not in _ops_of_a_training_step(layer, shape)
    fused.trainable = False
    assert "FusedBatchNormV3" not in _ops_of_a_training_step(fused, (2, 3, 3, 6))


def test_a_channels_first_axis_is_left_to_keras():
    fused = BatchNormalization(axis=1, **ARGUMENTS)
    fused.build((None, 6, 3, 3))
    assert "FusedBatchNormV3" not in _ops_of_a_training_step(fused, (2, 6, 3, 3))


# Config and file round trips: the BatchNorm kernels under both oneDNN settings are the other
# tests' subject.
@pytest.mark.onednn_neutral
def test_config_and_checkpoints_are_keras(tmp_path):
    fused, reference = _pair()
    assert fused.get_config() == {**reference.get_config(), "name": fused.name}
    unfused = BatchNormalization.from_config({**fused.get_config(), "fused": False})
    assert unfused.get_config()["fused"] is False
    unfused.build((None, None, None, 6))
    assert "FusedBatchNormV3" not in _ops_of_a_training_step(unfused, (2, 3, 3, 6))
    with pytest.raises(ValueError, match=r"`fused` must be True or False. Received: fused=1"):
        BatchNormalization(fused=1)
    inputs = keras.Input((4, 4, 6))
    model = keras.Model(inputs, BatchNormalization(**ARGUMENTS)(inputs))
    model.layers[1].set_weights(reference.get_weights())
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert type(loaded.layers[1]) is BatchNormalization
    x = _input((2, 4, 4, 6))
    np.testing.assert_array_equal(loaded(x, training=False), reference(x, training=False))
    # A process without this package loads the file into Keras' own layer (the default layer's
    # config is Keras' config).
    np.save(tmp_path / "x.npy", x)
    code = textwrap.dedent(
        f"""
        import sys, keras, numpy as np
        model = keras.saving.load_model({str(tmp_path / "model.keras")!r}, custom_objects={{
            "keras_structconv>BatchNormalization": keras.layers.BatchNormalization}})
        assert "keras_structconv" not in sys.modules
        assert type(model.layers[1]) is keras.layers.BatchNormalization
        x = np.load({str(tmp_path / "x.npy")!r})
        np.save({str(tmp_path / "y.npy")!r}, np.asarray(model(x, training=False)))
        """
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), reference(x, training=False))
    # Weights saved from a model of Keras' layer load into ours: the file keys a model's layers
    # by their class names (so the layer names differ here, and it still loads).
    keras_model = keras.Model(inputs, keras.layers.BatchNormalization(**ARGUMENTS)(inputs))
    keras_model.set_weights(reference.get_weights())
    keras_model.save_weights(tmp_path / "keras.weights.h5")
    model.load_weights(tmp_path / "keras.weights.h5")
    np.testing.assert_array_equal(model(x, training=False), reference(x, training=False))
