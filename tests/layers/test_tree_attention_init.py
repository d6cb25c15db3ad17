"""TreeAttention's initialisation: every weight its own draw, PReLU slopes starting at He et al.'s
0.25 (a number or an initializer), and modules that start alive: no constant gate on random
input nor on real CIFAR-10 feature maps, and every weight moves in a first training step.

A module is "dead" when its gate is constant over the batch and the pixels: max - min below
1e-6. A dead module with zero biases computes the same float32 value at every pixel (spread
exactly 0); with the default slopes the smallest live spread over 100 seeds is 6e-3
(`benchmarks/tam_dead_modules.py`), so any bound between the two gives the same counts."""

import itertools

import keras
import numpy as np
import pytest

from keras_structconv.datasets import CIFAR10_MEAN, CIFAR10_STD
from keras_structconv.layers import TreeAttention
from keras_structconv.models import ResNet20
from keras_structconv.models.tam_resnet import tree_attention_factory
from tests.layer_harness import one_cifar_batch

CONSTANT = 1e-6
SEEDS = range(20)
CHANNELS = (16, 32, 64)


def _built(channels=64, group_size=2, **kwargs):
    layer = TreeAttention(group_size, **kwargs)
    layer.build((None, None, None, channels))
    return layer


def _weights(layer, kind):
    return [np.asarray(w) for w in layer.weights if w.name.startswith(f"{kind}_")]


def _gate_spread(layer, x):
    gate = np.asarray(layer.gate(x))
    return float(gate.max() - gate.min())


# ------------------------------------------------------------------------------ slopes


def test_default_slopes_are_he_et_al_s_025():
    assert all(np.all(alpha == 0.25) for alpha in _weights(_built(), "alpha"))


@pytest.mark.parametrize("slope", [0, 0.0, np.float32(0.1)])
def test_a_number_is_a_constant_initial_slope(slope):
    alphas = _weights(_built(alpha_initializer=slope), "alpha")
    assert all(np.all(alpha == np.float32(slope)) for alpha in alphas)


def test_an_initializer_gives_the_slopes():
    layer = _built(alpha_initializer=keras.initializers.RandomUniform(0.1, 0.2, seed=4))
    alphas = np.concatenate(_weights(layer, "alpha"))
    assert alphas.min() >= 0.1 and alphas.max() <= 0.2 and len(np.unique(alphas)) > 1


def test_the_initial_slope_survives_the_config():
    layer = TreeAttention.from_config(TreeAttention(2, alpha_initializer=0.1).get_config())
    layer.build((None, None, None, 8))
    assert all(np.all(alpha == np.float32(0.1)) for alpha in _weights(layer, "alpha"))


@pytest.mark.parametrize("slope", [float("nan"), float("inf")])
def test_a_non_finite_slope_is_an_error(slope):
    with pytest.raises(ValueError, match=r"`alpha_initializer`.*Received: alpha_initializer="):
        TreeAttention(2, alpha_initializer=slope)


# ------------------------------------------------------------------------------ distinct draws


def _overlap_equal(a, b):
    """Whether the leading values of two flattened arrays coincide (one RNG stream reused)."""
    n = min(a.size, b.size)
    return np.array_equal(a.ravel()[:n], b.ravel()[:n])


@pytest.mark.parametrize(
    "initializer", ["he_normal", keras.initializers.HeNormal(seed=3), "glorot_uniform"]
)
def test_no_two_kernels_start_with_the_same_values(initializer):
    kernels = _weights(_built(64, 2, kernel_initializer=initializer), "kernel")
    pairs = [(a, b) for a, b in itertools.combinations(kernels, 2) if _overlap_equal(a, b)]
    assert not pairs, f"{len(pairs)} pairs of kernels start equal"


def test_no_two_random_biases_start_with_the_same_values():
    init = keras.initializers.RandomNormal(stddev=0.5)
    biases = _weights(_built(64, 2, bias_initializer=init), "bias")
    assert not any(_overlap_equal(a, b) for a, b in itertools.combinations(biases, 2))


def test_modules_sharing_an_unseeded_initializer_start_different():
    """`tree_attention_factory(kernel_initializer=...)` hands one instance to every module."""
    init = keras.initializers.HeNormal()
    first, second = (_built(32, 2, kernel_initializer=init) for _ in range(2))
    assert not np.array_equal(_weights(first, "kernel")[0], _weights(second, "kernel")[0])


# ------------------------------------------------------------------------------ dead modules


def _dead_on_random_input(**kwargs):
    """Constant-gate modules over seeds 0..19 x C = 16, 32, 64 (g = 2) on N(0, 1) input."""
    dead = 0
    for seed, channels in itertools.product(SEEDS, CHANNELS):
        keras.utils.set_random_seed(seed)
        layer = _built(channels, 2, **kwargs)
        x = np.random.default_rng(seed).standard_normal((4, 8, 8, channels)).astype("float32")
        dead += _gate_spread(layer, x) < CONSTANT
    return dead


def test_no_module_starts_dead_on_random_input():
    # 0 of 60: a true dead rate of 5 % would show no dead module with probability 0.046.
    assert _dead_on_random_input() == 0


def test_slopes_at_zero_leave_modules_dead_on_random_input():
    """The check above can fail: with the release's slopes of 0, about a fifth start dead."""
    assert _dead_on_random_input(alpha_initializer=0.0) >= 5


def _cifar_batch(count=32):
    """Real CIFAR-10 images (the embedded sample), standardised as for training."""
    x, y = one_cifar_batch(count)
    return ((x / 255.0 - CIFAR10_MEAN) / CIFAR10_STD).astype("float32"), y


def _tam_resnet20(seed, slope):
    keras.utils.set_random_seed(seed)
    return ResNet20(attention=tree_attention_factory(2, alpha_initializer=slope))


def _modules(model):
    return [layer for layer in model.layers if isinstance(layer, TreeAttention)]


def _cifar_spreads(model, images):
    """Gate spread of every module of `model` on its inputs for real images (BatchNorm in
    training mode, as in the first training step)."""
    probe = keras.Model(model.inputs, [layer.input for layer in _modules(model)])
    inputs = probe([images], training=True)
    return [_gate_spread(layer, x) for layer, x in zip(_modules(model), inputs, strict=True)]


@pytest.fixture(scope="module")
def cifar_spreads():
    """Spreads of the 18 modules of two TAM ResNet-20s (seeds 0, 1) per initial slope."""
    images, _ = _cifar_batch()
    spreads = {}
    for slope in (0.25, 0.0):
        models = [_tam_resnet20(seed, slope) for seed in (0, 1)]
        spreads[slope] = [s for model in models for s in _cifar_spreads(model, images)]
    return spreads


def test_no_module_starts_dead_on_cifar_features(cifar_spreads):
    assert min(cifar_spreads[0.25]) >= CONSTANT


def test_slopes_at_zero_leave_modules_dead_on_cifar_features(cifar_spreads):
    assert sum(s < CONSTANT for s in cifar_spreads[0.0]) >= 1


def _stuck_tam_weights(slope):
    """Paths of the TreeAttention weights of a TAM ResNet-20 that one SGD step on real images
    leaves as they were."""
    model = _tam_resnet20(0, slope)
    x, y = _cifar_batch()
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy", jit_compile=False)
    weights = [w for layer in _modules(model) for w in layer.weights]
    start = [np.asarray(w) for w in weights]
    model.fit(x, y, batch_size=len(x), epochs=1, verbose=0)
    moved = [not np.array_equal(np.asarray(w), w0) for w, w0 in zip(weights, start, strict=True)]
    return [w.path for w, m in zip(weights, moved, strict=True) if not m]


def test_every_tam_weight_moves_in_a_first_training_step():
    assert _stuck_tam_weights(0.25) == []


def test_slopes_at_zero_leave_tam_weights_stuck():
    """The check above can fail: a dead module's weights get zero gradients."""
    assert _stuck_tam_weights(0.0)
