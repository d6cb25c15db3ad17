"""SparseBatchNormalization against batch normalisation over the active sites of a masked dense
map: values, gradients, moving statistics, frozen layers and empty active sets."""

import numpy as np
import tensorflow as tf

from keras_structconv.quadtree.sparse import SparseBatchNormalization, densify
from tests.quadtree.sparse.sparse_reference import (
    ATOL,
    assert_close,
    at_sites,
    bn_reference,
    gradients,
    random_map,
)


def test_batch_norm_training_values_gradients_and_moving_statistics():
    dense, mask, features, indices = random_map(4)
    dense, features = dense * 3 + 1, features * 3 + 1  # non-trivial statistics
    layer = SparseBatchNormalization(momentum=0.9, epsilon=1e-5,
                                     gamma_initializer="random_normal",
                                     beta_initializer="random_normal")
    layer.build((None, 4))
    gamma, beta = tf.convert_to_tensor(layer.gamma), tf.convert_to_tensor(layer.beta)
    with tf.GradientTape() as tape:
        tape.watch(features)
        out = layer(features, training=True)
        r = tf.constant(np.random.default_rng(7).standard_normal(out.shape), "float32")
        ours_grads = tape.gradient(tf.reduce_sum(out * r), [features, layer.gamma, layer.beta])

    def reference(x, g, b):
        return at_sites(bn_reference(densify(x, indices, 2, (7, 6)), mask, g, b)[0], indices)

    ref, ref_grads = gradients(reference, [features, gamma, beta])
    assert_close(out, ref, what="forward")
    for name, a, b in zip(["features", "gamma", "beta"], ours_grads, ref_grads, strict=True):
        assert_close(a, b, what=f"d/d {name}")
    active = features.numpy().astype("float64")
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.1 * active.mean(0), atol=ATOL)
    np.testing.assert_allclose(
        layer.moving_variance.numpy(), 0.9 + 0.1 * active.var(0), atol=ATOL
    )
    # Inference uses the moving statistics.
    inference = layer(features, training=False).numpy()
    expected = (active - layer.moving_mean.numpy()) / np.sqrt(
        layer.moving_variance.numpy() + 1e-5
    ) * gamma.numpy() + beta.numpy()
    assert_close(inference, expected, what="inference")
    # A frozen layer (fine-tuning) normalises with, and keeps, its moving statistics.
    layer.trainable = False
    frozen = layer(features, training=True).numpy()
    assert_close(frozen, expected, what="frozen layer, training=True")
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.1 * active.mean(0), atol=ATOL)

def test_batch_norm_without_active_site_keeps_moving_statistics_bit_identical():
    layer = SparseBatchNormalization()
    layer.build((None, 3))
    layer.moving_mean.assign([0.1, -0.2, 1.0 / 3.0])
    layer.moving_variance.assign([1.5, 0.7, 2.0 / 3.0])
    before = [w.numpy().tobytes() for w in layer.non_trainable_weights]
    empty = tf.zeros([0, 3])
    with tf.GradientTape() as tape:
        tape.watch(empty)
        out = layer(empty, training=True)
        loss = tf.reduce_sum(out) + 0.0
    grads = tape.gradient(loss, [empty, *layer.trainable_weights])
    assert out.shape == (0, 3)
    assert [w.numpy().tobytes() for w in layer.non_trainable_weights] == before
    for grad in grads[1:]:
        np.testing.assert_array_equal(grad.numpy(), 0.0)
