"""gate_statistics: per-image spatial mean and variance of every TreeAttention gate, checked
against a direct NumPy computation of the gates from the modules' weights."""

import keras
import numpy as np
import pytest

from keras_structconv.analysis import gate_statistics
from keras_structconv.layers import TreeAttention
from tests.references import tree_attention_logit


def numpy_gate(layer, x):
    """SPEC §3's tree in NumPy, one group at a time, from the layer's weights: (N, H, W)."""
    weights = {w.name: np.asarray(w) for w in layer.weights}
    channels = [x[..., c].astype("float64") for c in range(x.shape[-1])]
    logit = tree_attention_logit(
        channels, weights, layer.group_size, lambda u, alpha: np.where(u > 0, u, alpha * u)
    )
    return 1.0 / (1.0 + np.exp(-logit))


def _random_tam(group_size, name, seed):
    init = keras.initializers.RandomNormal(stddev=0.7, seed=seed)
    return TreeAttention(group_size, bias_initializer=init, alpha_initializer=init, name=name)


@pytest.fixture(scope="module")
def nested_model():
    """image -> TAM -> conv -> [nested: conv -> TAM] -> TAM: three modules, one nested."""
    keras.utils.set_random_seed(0)
    inner_in = keras.Input((6, 5, 12))
    inner = keras.layers.Conv2D(20, 1, name="inner_conv")(inner_in)
    inner = _random_tam(2, "inner_tam", 1)(inner)
    inner_model = keras.Model(inner_in, inner, name="block")
    inputs = keras.Input((6, 5, 8))
    x = _random_tam(2, "first_tam", 2)(inputs)
    x = keras.layers.Conv2D(12, 3, padding="same", name="conv")(x)
    x = inner_model(x)
    outputs = _random_tam(4, "last_tam", 3)(x)
    return keras.Model(inputs, outputs)


def test_statistics_match_numpy(nested_model):
    images = np.random.default_rng(0).standard_normal((5, 6, 5, 8)).astype("float32")
    first = nested_model.get_layer("first_tam")
    conv = nested_model.get_layer("conv")
    block = nested_model.get_layer("block")
    # The module inputs, computed layer by layer with NumPy gates in between.
    gate_first = numpy_gate(first, images)
    conv_out = np.asarray(conv(images * gate_first[..., None].astype("float32")))
    inner_in = np.asarray(block.get_layer("inner_conv")(conv_out))
    gate_inner = numpy_gate(block.get_layer("inner_tam"), inner_in)
    last_in = inner_in * gate_inner[..., None]
    gate_last = numpy_gate(nested_model.get_layer("last_tam"), last_in)

    stats = gate_statistics(nested_model, images, batch_size=2)

    assert [s.name for s in stats] == ["first_tam", "block/inner_tam", "last_tam"]
    for s, gate in zip(stats, [gate_first, gate_inner, gate_last], strict=True):
        np.testing.assert_allclose(s.mean, gate.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(s.variance, gate.var(axis=(1, 2)), rtol=1e-4, atol=1e-8)
        assert s.batch_mean == pytest.approx(gate.mean(), rel=1e-5)
        assert s.max_variance == pytest.approx(gate.var(axis=(1, 2)).max(), rel=1e-4)
    # Random biases and slopes give gates that vary over space: the statistic can see it.
    assert all(s.max_variance > 1e-4 for s in stats)


def test_constant_gate_has_zero_variance():
    inputs = keras.Input((4, 4, 4))
    tam = TreeAttention(2, kernel_initializer="zeros", bias_initializer="ones")
    model = keras.Model(inputs, tam(inputs))
    images = np.random.default_rng(1).standard_normal((3, 4, 4, 4)).astype("float32")
    (stats,) = gate_statistics(model, images)
    # All kernels zero: the logit is the last bias (1) everywhere, the gate sigmoid(1).
    np.testing.assert_allclose(stats.mean, np.full(3, 1 / (1 + np.exp(-1.0))), rtol=1e-6)
    np.testing.assert_allclose(stats.variance, np.zeros(3), atol=1e-12)


def test_errors():
    inputs = keras.Input((4, 4, 3))
    plain = keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs))
    images = np.zeros((1, 4, 4, 3), "float32")
    with pytest.raises(ValueError, match="no TreeAttention.*Received"):
        gate_statistics(plain, images)
    a, b = keras.Input((4, 4, 2)), keras.Input((4, 4, 2))
    two = keras.Model([a, b], TreeAttention(2)(keras.layers.Add()([a, b])))
    with pytest.raises(ValueError, match="one input.*Received"):
        gate_statistics(two, [images[..., :2], images[..., :2]])
