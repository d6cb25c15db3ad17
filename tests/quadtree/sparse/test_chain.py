"""Every sparse op together: empty active sets, config round trips, `.keras` save/load, and a
chain of all the ops inside `model.fit` against a masked dense model (equal weights after one
SGD step means equal gradients), with no active site and under mixed precision."""

import keras
import numpy as np
import tensorflow as tf

from keras_structconv.quadtree.sparse import (
    SparseBatchNormalization,
    SparseDenseAdd,
    SparseUpsampling2D,
    SubmanifoldConv2D,
    densify,
    neighbour_table,
    sparsify,
)
from tests.quadtree.sparse.sparse_reference import (
    assert_close,
    bn_reference,
    conv_reference,
    masked,
    random_map,
)


def test_empty_active_set_through_every_op():
    features, indices = tf.zeros([0, 4]), tf.zeros([0, 3], tf.int32)
    table = neighbour_table(indices, (4, 4), 3)
    conv, norm, head = SubmanifoldConv2D(5, 3), SparseBatchNormalization(), SubmanifoldConv2D(
        3, 1, use_bias=True
    )
    with tf.GradientTape() as tape:
        tape.watch(features)
        x = tf.nn.relu(norm(conv(features, table), training=True))
        x, child_indices = SparseUpsampling2D()(x, indices)
        x = SparseDenseAdd()(x, child_indices, tf.ones([1, 8, 8, 5]))
        out = head(x)
        loss = tf.reduce_sum(out)
    grads = tape.gradient(loss, [features, *conv.trainable_weights, *head.trainable_weights])
    assert out.shape == (0, 3) and child_indices.shape == (0, 3)
    for grad in grads:
        assert np.all(np.asarray(grad) == 0.0)

def test_config_round_trips():
    layers = [
        SubmanifoldConv2D(5, 3, use_bias=True, kernel_regularizer="l2", name="c"),
        SparseBatchNormalization(momentum=0.8, epsilon=1e-3, center=False, name="n"),
        SparseUpsampling2D(name="u"),
        SparseDenseAdd(name="a"),
    ]
    for layer in layers:
        config = layer.get_config()
        clone = type(layer).from_config(config)
        assert clone.get_config() == config
        registered = keras.saving.get_registered_name(type(layer))
        assert registered.startswith("keras_structconv>")
        revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
        assert type(revived) is type(layer)

def test_keras_save_and_load_of_a_model_with_every_op(tmp_path):
    features_in = keras.Input((4,), name="features")
    table_in = keras.Input((9,), dtype="int32", name="neighbours")
    indices_in = keras.Input((3,), dtype="int32", name="indices")
    skip_in = keras.Input((14, 12, 6), name="skip")
    x = SubmanifoldConv2D(6, 3, use_bias=True, bias_initializer="random_normal")(
        features_in, table_in
    )
    norm = SparseBatchNormalization(gamma_initializer="random_normal")
    x = norm(x)
    x = keras.layers.ReLU()(x)
    x, child_indices = SparseUpsampling2D()(x, indices_in)
    x = SparseDenseAdd()(x, child_indices, skip_in)
    out = SubmanifoldConv2D(3, 1, use_bias=True)(x)
    model = keras.Model([features_in, table_in, indices_in, skip_in], [out, child_indices])

    _, _, features, indices = random_map(8)
    table = neighbour_table(indices, (7, 6), 3)
    skip = tf.constant(np.random.default_rng(1).standard_normal((2, 14, 12, 6)), "float32")
    norm.moving_mean.assign(np.linspace(-1, 1, 6))  # non-default state to restore
    inputs = [features, table, indices, skip]
    expected = model(inputs, training=False)
    path = tmp_path / "sparse_ops.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    actual = loaded(inputs, training=False)
    assert_close(actual[0], expected[0], atol=0, rtol=0, what="reloaded outputs")
    np.testing.assert_array_equal(actual[1].numpy(), expected[1].numpy())

class SparseChain(keras.Model):
    """Dense input + mask -> sparsify -> conv3 -> BN -> ReLU -> upsample -> + 1x1(skip) -> head
    -> densified logits. The ops under test, inside `fit`."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = SubmanifoldConv2D(6, 3, name="conv")
        self.norm = SparseBatchNormalization(name="norm")
        self.skip = SubmanifoldConv2D(6, 1, name="skip")
        self.up = SparseUpsampling2D()
        self.add = SparseDenseAdd()
        self.head = SubmanifoldConv2D(3, 1, use_bias=True, name="head")

    def call(self, inputs, training=None):
        x, mask, skip = inputs
        features, indices = sparsify(x, mask)
        table = neighbour_table(indices, (7, 6), 3)
        h = tf.nn.relu(self.norm(self.conv(features, table), training=training))
        h, child_indices = self.up(h, indices)
        projected = tf.reshape(self.skip(tf.reshape(skip, [-1, 5])), [-1, 14, 12, 6])
        h = self.add(h, child_indices, projected)
        return densify(self.head(h), child_indices, tf.shape(x)[0], (14, 12))

class MaskedDenseChain(keras.Model):
    """The same computation with dense maps and masks (plain TF)."""

    def __init__(self, sparse_model, **kwargs):
        super().__init__(**kwargs)
        self.copies = [
            self.add_weight(shape=w.shape, initializer="zeros", trainable=w.trainable,
                            name=w.name)
            for w in sparse_model.weights
        ]
        self.paths = [w.path for w in sparse_model.weights]
        for copy, w in zip(self.copies, sparse_model.weights, strict=True):
            copy.assign(w)

    def w(self, suffix):
        return next(c for c, p in zip(self.copies, self.paths, strict=True) if p.endswith(suffix))

    def call(self, inputs, training=None):
        x, mask, skip = inputs
        mask = tf.cast(mask, tf.bool)
        h = conv_reference(x, mask, self.w("conv/kernel"))
        normalised, mean, variance = bn_reference(
            h, mask, self.w("norm/gamma"), self.w("norm/beta")
        )
        if training:
            for moving, value in (("norm/moving_mean", mean), ("norm/moving_variance", variance)):
                self.w(moving).assign(0.9 * self.w(moving) + 0.1 * value)
        else:
            normalised = masked(
                (h - self.w("norm/moving_mean")) / tf.sqrt(self.w("norm/moving_variance") + 1e-5)
                * self.w("norm/gamma") + self.w("norm/beta"),
                mask,
            )
        h = tf.nn.relu(normalised)
        up_mask = tf.repeat(tf.repeat(mask, 2, axis=1), 2, axis=2)
        h = tf.repeat(tf.repeat(h, 2, axis=1), 2, axis=2)
        h = h + tf.einsum("bhwc,cd->bhwd", skip, self.w("skip/kernel")[0, 0])
        out = tf.einsum("bhwc,cd->bhwd", h, self.w("head/kernel")[0, 0]) + self.w("head/bias")
        return masked(out, up_mask)

def chain_data(seed, density=0.5):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 7, 6, 4)).astype("float32")
    mask = (rng.random((2, 7, 6)) < density).astype("float32")
    skip = rng.standard_normal((2, 14, 12, 5)).astype("float32")
    target = rng.standard_normal((2, 14, 12, 3)).astype("float32")
    return (x, mask, skip), target

def test_every_op_inside_fit_matches_masked_dense_model():
    inputs, target = chain_data(10)
    sparse_model = SparseChain()
    sparse_model(inputs)
    dense_model = MaskedDenseChain(sparse_model)
    assert_close(sparse_model(inputs), dense_model(inputs), what="forward, inference")
    histories = []
    for model in (sparse_model, dense_model):
        model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
        histories.append(model.fit(inputs, target, batch_size=2, epochs=1, verbose=0).history)
    assert_close(histories[0]["loss"], histories[1]["loss"], what="fit loss")
    for w, copy in zip(sparse_model.weights, dense_model.copies, strict=True):
        # SGD with learning rate 1: equal weights after the step <=> equal gradients.
        assert_close(w.numpy(), copy.numpy(), what=f"{w.path} after one fit step")
    assert not np.allclose(sparse_model.head.kernel.numpy(), 0)

def test_fit_with_no_active_site_keeps_moving_statistics():
    inputs, target = chain_data(11, density=0.0)
    model = SparseChain()
    model(inputs)
    before = [w.numpy().tobytes() for w in model.non_trainable_weights]
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    history = model.fit(inputs, target, batch_size=2, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])
    assert [w.numpy().tobytes() for w in model.non_trainable_weights] == before

def test_fit_under_mixed_float16():
    keras.mixed_precision.set_global_policy("mixed_float16")
    inputs, target = chain_data(12)
    model = SparseChain()
    out = model(inputs)
    assert out.dtype == "float16" and model.conv.compute_dtype == "float16"
    start = [w.numpy() for w in model.trainable_weights]
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    # Three steps: the dynamic loss scale may skip a first overflowing step.
    history = model.fit(inputs, target, batch_size=2, epochs=3, verbose=0).history
    assert np.isfinite(history["loss"][-1])
    for w, w0 in zip(model.trainable_weights, start, strict=True):
        assert w.dtype == "float32"
        assert not np.array_equal(w.numpy(), w0), f"{w.path} did not move"
