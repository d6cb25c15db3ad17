"""TreeAttention (TAM): the paper's parameter counts and test vector, an independent loop
reference in values and gradients, bad arguments, and the shared layer harness.

Initialisation: test_tree_attention_init.py; export (portable ops, TFLite, ONNX):
test_tree_attention_export.py."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_structconv.layers import TAM, TreeAttention
from tests.layer_harness import LayerCase, LayerHarness, forward_and_gradients
from tests.references import tree_attention_logit


def _weights_by_name(layer):
    return {w.name: w for w in layer.weights}


def reference_tam(layer, x, dtype="float32"):
    """The definition written with plain loops over groups, one channel at a time (independent
    of the layer's reshapes and fused kernels), reading the layer's variables by name. With
    `dtype="float64"` the reference accumulates in float64 (gradients still reach the float32
    variables through the casts)."""
    weights = {name: tf.cast(w, dtype) for name, w in _weights_by_name(layer).items()}
    x = tf.cast(x, dtype)
    channels = [x[..., c] for c in range(x.shape[-1])]
    # Keras' PReLU: relu(u) - alpha * relu(-u)
    logit = tree_attention_logit(
        channels, weights, layer.group_size,
        lambda u, alpha: tf.nn.relu(u) - alpha * tf.nn.relu(-u),
    )
    return x * tf.sigmoid(logit)[..., None]


def _random_layer(channels, group_size, seed=0):
    """A built layer with random biases and PReLU slopes (zeros would hide their gradients)."""
    init = keras.initializers.RandomNormal(stddev=0.5, seed=seed)
    layer = TreeAttention(group_size, bias_initializer=init, alpha_initializer=init)
    layer.build((None, None, None, channels))
    return layer


def _value_and_grads(fn, layer, x, cotangent):
    """`[output, d/dx, d/d weight...]` of `<fn(x), cotangent>`."""
    y, grads = forward_and_gradients(fn, x, layer.trainable_variables, cotangent)
    return [y] + grads


def _assert_matches_reference(channels, group_size, shape, seed):
    layer = _random_layer(channels, group_size, seed)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape + (channels,)).astype("float32")
    cotangent = rng.standard_normal(x.shape).astype("float32")
    ours = _value_and_grads(layer, layer, x, cotangent)
    # float64 reference: what is left is the layer's own float32 rounding.
    ref = _value_and_grads(lambda t: reference_tam(layer, t, "float64"), layer, x, cotangent)
    names = ["output", "d/dx"] + [f"d/d{w.name}" for w in layer.trainable_variables]
    for name, a, b in zip(names, ours, ref, strict=True):
        _assert_close(a, b, name)


def _assert_close(actual, expected, name):
    """Equal to 1e-5, relative to the array's scale: a weight gradient is a float32 sum over
    pixels whose terms can be much larger than the result."""
    expected = np.asarray(expected)
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(
        np.asarray(actual), expected, atol=1e-5 * scale, rtol=1e-5, err_msg=name
    )


# ------------------------------------------------------------------------------ exact numbers


@pytest.mark.parametrize(
    "channels, group_size, expected",
    [(64, 2, 251), (256, 2, 1019), (2048, 2, 8187), (64, 4, 125), (48, 4, 94)],
)
def test_parameter_counts(channels, group_size, expected):
    layer = TreeAttention(group_size)
    layer.build((None, 7, 7, channels))
    assert sum(int(np.prod(w.shape)) for w in layer.trainable_weights) == expected


@pytest.mark.parametrize(
    "channels, group_size, levels",
    [
        (80, 2, (80, 40, 20, 10, 5, 1)),  # the release crashes here; the paper's integer rule
        (64, 2, (64, 32, 16, 8, 4, 2, 1)),
        (48, 4, (48, 12, 3, 1)),
        (7, 2, (7, 1)),
        (1, 2, (1,)),
    ],
)
def test_levels_follow_the_integer_rule(channels, group_size, levels):
    layer = TreeAttention(group_size)
    layer.build((None, 3, 3, channels))
    assert (layer.levels, layer.num_levels) == (levels, len(levels) - 1)


@pytest.mark.parametrize(
    "channels, group_size, prelu_levels",
    [(80, 2, ["alpha_0", "alpha_1", "alpha_2", "alpha_3"]), (48, 4, ["alpha_0", "alpha_1"])],
)
def test_every_level_but_the_last_has_a_prelu(channels, group_size, prelu_levels):
    layer = TreeAttention(group_size)
    layer.build((None, 3, 3, channels))
    assert sorted(w.name for w in layer.weights if w.name.startswith("alpha_")) == prelu_levels


def _vector_layer():
    """The paper-rule test vector's module: kernels 1, biases 0, slopes 0."""
    return TreeAttention(2, kernel_initializer="ones", alpha_initializer=0.0)


_VECTOR_PIXEL = np.array([0.1, 0.2, -0.3, 0.4], "float32").reshape(1, 1, 1, 4)


def test_forward_test_vector():
    expected = [0.0598688, 0.1197375, -0.1796063, 0.2394751]
    np.testing.assert_allclose(_vector_layer()(_VECTOR_PIXEL).numpy().ravel(), expected, atol=1e-6)


def test_gate_test_vector():
    gate = _vector_layer().gate(_VECTOR_PIXEL).numpy().ravel()
    np.testing.assert_allclose(gate, [1 / (1 + np.exp(-0.4))], 1e-6)


def test_tam_is_an_alias():
    assert TAM is TreeAttention


# ------------------------------------------------------------------------------ reference


@pytest.mark.parametrize(
    "channels, group_size, shape",
    [
        (80, 2, (2, 5, 6)),
        (64, 4, (1, 7, 7)),
        (48, 4, (2, 3, 4)),
        (27, 3, (2, 4, 3)),
        (12, 5, (1, 3, 3)),
        (1, 2, (2, 3, 3)),
    ],
)
def test_matches_loop_reference(channels, group_size, shape):
    _assert_matches_reference(channels, group_size, shape, seed=channels)


@settings(max_examples=6, deadline=None)
@given(
    channels=st.integers(2, 40),
    group_size=st.integers(2, 5),
    height=st.integers(1, 6),
    seed=st.integers(0, 1000),
)
def test_matches_loop_reference_random(channels, group_size, height, seed):
    _assert_matches_reference(channels, group_size, (2, height, 3), seed)


@pytest.mark.parametrize("channels", [64, 80])
def test_xla_compiled_caller_matches_eager(channels):
    """Inside a jit-compiled function the layer runs its generic kernels (no complex pairs),
    equal to the eager path (pairs for group size 2) in values and gradients."""
    layer = _random_layer(channels, 2, seed=5)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 5, 3, channels)).astype("float32")
    cotangent = rng.standard_normal(x.shape).astype("float32")
    eager = _value_and_grads(layer, layer, x, cotangent)
    compiled = tf.function(lambda t: _value_and_grads(layer, layer, t, cotangent), jit_compile=True)
    for index, (a, b) in enumerate(zip(compiled(x), eager, strict=True)):
        _assert_close(a, b, f"output/gradient {index}")


def test_gate_is_the_reference_gate():
    layer = _random_layer(20, 2, seed=3)
    x = np.random.default_rng(0).standard_normal((2, 4, 5, 20)).astype("float32")
    gate = layer.gate(x).numpy()
    assert gate.shape == (2, 4, 5, 1)
    np.testing.assert_allclose(gate * x, reference_tam(layer, x).numpy(), atol=1e-6)


def test_mixed_precision_is_computed_in_float32_inside():
    x = np.random.default_rng(1).standard_normal((2, 6, 6, 32)).astype("float32")
    layer = _random_layer(32, 2, seed=1)
    expected = reference_tam(layer, x).numpy()
    half = TreeAttention(2, dtype="mixed_bfloat16")
    half.build(x.shape)
    half.set_weights(layer.get_weights())
    out = half(tf.cast(x, "bfloat16"))
    assert out.dtype == "bfloat16"
    # bfloat16 keeps 8 bits: only the input and output roundings show (no float16 tree).
    np.testing.assert_allclose(out.numpy().astype("float32"), expected, atol=0.05, rtol=0.02)


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("group_size", [1, 0, -2, 2.0, True, "2", None])
def test_bad_group_size(group_size):
    with pytest.raises(ValueError, match=r"`group_size`.*Received: group_size="):
        TreeAttention(group_size)


@pytest.mark.parametrize("shape", [(None, 8, 16), (None, 2, 4, 4, 16), (None, 16)])
def test_input_must_be_4d(shape):
    with pytest.raises(ValueError, match=r"4-D input.*Received: input_shape="):
        TreeAttention(2).build(shape)


def test_channels_must_be_known():
    with pytest.raises(ValueError, match=r"channel dimension.*Received: input_shape="):
        TreeAttention(2).build((None, 4, 4, None))


# ------------------------------------------------------------------------------ harness


class TestTreeAttentionHarness(LayerHarness):
    # The default initialisation (zero biases, slopes 0.25); the kernels seeded so that the
    # "every weight moves" check sees the same module on every run.
    case = LayerCase(
        factory=lambda: TreeAttention(2, kernel_initializer=keras.initializers.HeNormal(seed=3)),
        input_shape=(2, 6, 5, 24),
        reference=reference_tam,
        overfit_steps=60,
    )
