"""Quadtree loss (keras_structconv/quadtree/losses.py) against NumPy."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_structconv.quadtree import (
    QuadtreeLossWeights,
    fixed_level_weights,
    level_cross_entropy,
    quadtree_level_losses,
    tpyramid_labels,
)
from tests.quadtree.quadtree_reference import random_label_maps, reference_level_loss

NUM_CLASSES = 3


def random_logits(rng, shape):
    return rng.normal(size=(*shape, NUM_CLASSES + 1)).astype(np.float32) * 3


def reference_beta(level_losses_per_step, num_levels, momentum=0.99):
    """Adaptive beta after each step, written from SPEC: start at 1, then
    beta_l = momentum * beta_l + (1 - momentum) * L_l / L_0, beta_0 = 1, skip when L_0 = 0."""
    beta = [1.0] * num_levels
    for losses in level_losses_per_step:
        if losses[0] == 0:
            continue
        for level in range(1, num_levels):
            beta[level] = momentum * beta[level] + (1 - momentum) * losses[level] / losses[0]
    return np.array(beta)


# --------------------------------------------------------------------------------------------
# Level losses
# --------------------------------------------------------------------------------------------


def test_level_cross_entropy_dense_and_sparse():
    rng = np.random.default_rng(0)
    labels = rng.integers(-1, NUM_CLASSES + 1, (2, 4, 6))
    logits = random_logits(rng, labels.shape)
    expected = reference_level_loss(labels, logits)
    assert float(level_cross_entropy(labels, logits)) == pytest.approx(expected, rel=1e-5)
    # Sparse sites: labels (N,), logits (N, K+1).
    flat = level_cross_entropy(labels.reshape(-1), logits.reshape(-1, NUM_CLASSES + 1))
    assert float(flat) == pytest.approx(expected, rel=1e-5)


def test_probabilities_give_the_same_loss():
    rng = np.random.default_rng(1)
    labels = rng.integers(-1, NUM_CLASSES + 1, (3, 5))
    logits = random_logits(rng, labels.shape)
    probabilities = tf.nn.softmax(logits)
    expected = reference_level_loss(labels, logits)
    loss = level_cross_entropy(labels, probabilities, from_logits=False)
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_all_ignore_level_is_zero_with_zero_gradient():
    logits = tf.Variable(random_logits(np.random.default_rng(2), (2, 2, 2)))
    with tf.GradientTape() as tape:
        loss = level_cross_entropy(np.full((2, 2, 2), -1), logits)
    gradient = tape.gradient(loss, logits)
    assert float(loss) == 0.0
    np.testing.assert_array_equal(gradient.numpy(), np.zeros(logits.shape))


def test_float16_logits_give_float32_loss():
    rng = np.random.default_rng(3)
    labels = rng.integers(-1, NUM_CLASSES + 1, (4, 4))
    logits = random_logits(rng, labels.shape).astype(np.float16)
    loss = level_cross_entropy(labels, logits)
    assert loss.dtype == tf.float32
    expected = reference_level_loss(labels, logits.astype(np.float64))
    assert float(loss) == pytest.approx(expected, rel=1e-4)


def test_quadtree_level_losses_on_tpyramid_labels():
    rng = np.random.default_rng(4)
    maps = random_label_maps(rng, 2, 16, 16, NUM_CLASSES)
    maps[1] = 1  # a uniform map: every level below its root cells is unsupervised
    levels = tpyramid_labels(maps, num_levels=4, num_classes=NUM_CLASSES)
    logits = [random_logits(rng, level.shape) for level in levels]
    losses = quadtree_level_losses(levels, logits).numpy()
    expected = [
        reference_level_loss(level.numpy(), lg) for level, lg in zip(levels, logits, strict=True)
    ]
    np.testing.assert_allclose(losses, expected, rtol=1e-5)
    # Second map alone: only the top level is supervised.
    single = quadtree_level_losses([lv[1:] for lv in levels], [lg[1:] for lg in logits]).numpy()
    assert np.all(single[:3] == 0.0) and single[3] > 0


def test_level_loss_errors():
    with pytest.raises(ValueError, match="one entry per level"):
        quadtree_level_losses([np.zeros((1, 2, 2))], [])
    with pytest.raises(ValueError, match=r"Received: labels.shape=\(1, 2, 2\), logits.shape"):
        level_cross_entropy(np.zeros((1, 2, 2), int), np.zeros((1, 2, 2), np.float32))


# --------------------------------------------------------------------------------------------
# Level weights
# --------------------------------------------------------------------------------------------


def test_fixed_weights_total_and_no_update():
    weights = QuadtreeLossWeights(num_levels=4, weighting="fixed", gamma=1.5)
    np.testing.assert_allclose(weights.beta.numpy(), [1.0, 1.5, 2.25, 3.375])
    np.testing.assert_allclose(fixed_level_weights(3, 0.5), [1.0, 0.5, 0.25])
    losses = np.array([0.7, 0.2, 1.3, 0.4], np.float32)
    expected = 0.7 + 1.5 * 0.2 + 2.25 * 1.3 + 3.375 * 0.4
    assert float(weights(losses)) == pytest.approx(expected, rel=1e-6)
    weights.update(losses)
    np.testing.assert_allclose(weights.beta.numpy(), [1.0, 1.5, 2.25, 3.375])
    assert not weights.trainable_weights and len(weights.non_trainable_weights) == 1


def test_adaptive_weights_follow_the_running_average():
    weights = QuadtreeLossWeights(num_levels=3, weighting="adaptive", momentum=0.9)
    steps = [[2.0, 1.0, 4.0], [0.0, 3.0, 5.0], [1.0, 0.0, 2.5], [0.5, 2.0, 0.0]]
    for losses in steps:
        weights.update(np.array(losses, np.float32))
    expected = reference_beta(steps, 3, momentum=0.9)
    np.testing.assert_allclose(weights.beta.numpy(), expected, rtol=1e-6)
    assert weights.beta.numpy()[0] == 1.0
    total = float(weights(np.array([0.3, 0.6, 0.9], np.float32)))
    assert total == pytest.approx(0.3 + expected[1] * 0.6 + expected[2] * 0.9, rel=1e-6)


def test_total_loss_gradient_does_not_flow_into_beta():
    weights = QuadtreeLossWeights(num_levels=2, weighting="fixed", gamma=2.0)
    losses = tf.Variable([1.0, 1.0])
    with tf.GradientTape() as tape:
        total = weights(losses)
    np.testing.assert_allclose(tape.gradient(total, losses).numpy(), [1.0, 2.0])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_levels": 0}, "Received: num_levels=0"),
        ({"weighting": "learned"}, "Received: weighting='learned'"),
        ({"gamma": 0.0}, "Received: gamma=0.0"),
        ({"momentum": 1.0}, "Received: momentum=1.0"),
    ],
)
def test_weights_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        QuadtreeLossWeights(**{"num_levels": 3, **kwargs})


def test_wrong_number_of_level_losses():
    weights = QuadtreeLossWeights(num_levels=3)
    with pytest.raises(ValueError, match=r"Received: level_losses.shape=\(2,\)"):
        weights(np.ones(2, np.float32))


def test_config_round_trip():
    weights = QuadtreeLossWeights(num_levels=5, weighting="fixed", gamma=1.5, momentum=0.95)
    clone = QuadtreeLossWeights.from_config(weights.get_config())
    assert (clone.num_levels, clone.weighting, clone.gamma, clone.momentum) == (
        5,
        "fixed",
        1.5,
        0.95,
    )
    np.testing.assert_allclose(clone.beta.numpy(), weights.beta.numpy())


# --------------------------------------------------------------------------------------------
# Inside a model: updated by fit, saved by .keras
# --------------------------------------------------------------------------------------------

LEVELS = 3


@keras.saving.register_keras_serializable(package="tests_quadtree")
class TinyQuadtreeModel(keras.Model):
    """Predicts K+1 logits at 3 levels of an 8x8 image; owns the loss weights like the QGN."""

    def __init__(self, weighting="adaptive", **kwargs):
        super().__init__(**kwargs)
        self.weighting = weighting
        self.heads = [keras.layers.Conv2D(NUM_CLASSES + 1, 1) for _ in range(LEVELS)]
        self.pools = [keras.layers.AveragePooling2D(2**level) for level in range(1, LEVELS)]
        self.quadtree_loss_weights = QuadtreeLossWeights(LEVELS, weighting=weighting)

    def call(self, images):
        pooled = [images] + [pool(images) for pool in self.pools]
        return [head(x) for head, x in zip(self.heads, pooled, strict=True)]

    def train_step(self, data):
        images, level_labels = data
        with tf.GradientTape() as tape:
            level_losses = quadtree_level_losses(level_labels, self(images, training=True))
            loss = self.quadtree_loss_weights(level_losses)
        gradients = tape.gradient(self.optimizer.scale_loss(loss), self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights, strict=True))
        self.quadtree_loss_weights.update(level_losses)
        return {f"level_{level}": level_losses[level] for level in range(LEVELS)}

    def get_config(self):
        return {**super().get_config(), "weighting": self.weighting}


class RecordLevelLosses(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.steps = []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append([float(logs[f"level_{level}"]) for level in range(LEVELS)])


def test_adaptive_beta_is_updated_by_fit_and_saved_in_keras_file(tmp_path):
    rng = np.random.default_rng(5)
    maps = random_label_maps(rng, 8, 8, 8, NUM_CLASSES)
    level_labels = tpyramid_labels(maps, LEVELS, NUM_CLASSES)
    images = rng.normal(size=(8, 8, 8, 2)).astype(np.float32)
    model = TinyQuadtreeModel()
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    record = RecordLevelLosses()
    model.fit(images, level_labels, batch_size=4, epochs=2, verbose=0, callbacks=[record])
    assert len(record.steps) == 4
    beta = model.quadtree_loss_weights.beta.numpy()
    np.testing.assert_allclose(beta, reference_beta(record.steps, LEVELS), rtol=1e-5)
    assert not np.allclose(beta, 1.0)

    path = tmp_path / "tiny_qgn.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(reloaded.quadtree_loss_weights.beta.numpy(), beta)
    assert reloaded.quadtree_loss_weights.weighting == "adaptive"
    for original, restored in zip(model(images[:2]), reloaded(images[:2]), strict=True):
        np.testing.assert_allclose(restored.numpy(), original.numpy(), rtol=1e-6)
