"""Sparse feature maps and submanifold ops against masked dense references (plain TF/NumPy).

Every op is checked for values and gradients to 1e-5 eagerly, and inside `model.fit` (a chain
of all the ops against a masked dense model: equal weights after one SGD step means equal
gradients), plus config round trips, `.keras` save/load, mixed precision, empty active sets and
the memory property of the submanifold convolution's backward pass.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_structconv.quadtree.sparse import (
    SparseBatchNormalization,
    SparseDenseAdd,
    SparseUpsampling2D,
    SubmanifoldConv2D,
    check_sparse_map,
    densify,
    gather_dense,
    kernel_offsets,
    neighbour_table,
    sparsify,
    upsample_indices,
)
from keras_structconv.runtime import AllocatorPeak

ATOL = 1e-5


def random_map(seed, shape=(2, 7, 6, 4), density=0.5, shuffle=True):
    """A dense map, its mask and the sparse map (sites in a shuffled order)."""
    rng = np.random.default_rng(seed)
    dense = rng.standard_normal(shape).astype("float32")
    mask = rng.random(shape[:3]) < density
    indices = np.argwhere(mask).astype("int32")
    if shuffle:
        indices = indices[rng.permutation(len(indices))]
    features = dense[tuple(indices.T)]
    return dense * mask[..., None], mask, tf.constant(features), tf.constant(indices)


def masked(dense, mask):
    return dense * tf.cast(mask, dense.dtype)[..., None]


def at_sites(dense, indices):
    return tf.gather_nd(dense, indices)


def assert_close(actual, expected, atol=ATOL, rtol=ATOL, what=""):
    np.testing.assert_allclose(
        np.asarray(actual, "float64"), np.asarray(expected, "float64"), atol=atol, rtol=rtol,
        err_msg=what,
    )


def gradients(fn, inputs, cotangent_seed=7):
    """fn(*inputs) and the gradients of <fn(*inputs), r> w.r.t. every input."""
    inputs = [tf.convert_to_tensor(x) for x in inputs]
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        out = fn(*inputs)
        r = tf.constant(np.random.default_rng(cotangent_seed).standard_normal(out.shape), out.dtype)
        loss = tf.reduce_sum(out * r)
    return out, tape.gradient(loss, inputs)


# ------------------------------------------------------------------------------- conversions


def test_sparsify_densify_round_trip():
    dense, mask, _, _ = random_map(0, shuffle=False)
    features, indices = sparsify(dense, mask)
    np.testing.assert_array_equal(indices.numpy(), np.argwhere(mask))
    np.testing.assert_array_equal(features.numpy(), dense[mask])
    np.testing.assert_array_equal(densify(features, indices, 2, (7, 6)).numpy(), dense)
    # Any site order densifies to the same map.
    _, _, shuffled_features, shuffled_indices = random_map(0)
    np.testing.assert_array_equal(
        densify(shuffled_features, shuffled_indices, 2, (7, 6)).numpy(), dense
    )


def test_upsample_indices_children():
    children = upsample_indices(tf.constant([[1, 2, 3]], tf.int32)).numpy()
    np.testing.assert_array_equal(children, [[1, 4, 6], [1, 4, 7], [1, 5, 6], [1, 5, 7]])


def test_errors_out_of_range_and_length_mismatch():
    features = tf.zeros([2, 3])
    with pytest.raises(ValueError, match="indices.*grid"):
        densify(features, tf.constant([[0, 0, 0], [0, 7, 0]]), 1, (7, 6))
    with pytest.raises(ValueError, match="indices.*grid"):
        densify(features, tf.constant([[0, 0, 0], [1, 0, 0]]), 1, (7, 6))  # batch 1 >= 1
    with pytest.raises(ValueError, match="indices.*grid"):
        neighbour_table(tf.constant([[0, 0, -1]]), (7, 6))
    with pytest.raises(ValueError, match="same number of rows"):
        densify(features, tf.constant([[0, 0, 0]]), 1, (7, 6))
    with pytest.raises(ValueError, match="same number of rows"):
        SparseUpsampling2D()(features, tf.constant([[0, 0, 0]]))
    with pytest.raises(ValueError, match="same number of rows"):
        SubmanifoldConv2D(2, 3)(features, tf.zeros([3, 9], tf.int32))
    with pytest.raises(ValueError, match="indices.*grid"):
        gather_dense(tf.zeros([1, 4, 4, 3]), tf.constant([[0, 4, 0]]))
    with pytest.raises(ValueError, match="same channels"):
        SparseDenseAdd()(features, tf.constant([[0, 0, 0], [0, 1, 1]]), tf.zeros([1, 4, 4, 5]))
    with pytest.raises(ValueError, match="neighbour table"):
        SubmanifoldConv2D(2, 3)(features)
    with pytest.raises(ValueError, match="odd"):
        SubmanifoldConv2D(2, 2)
    with pytest.raises(ValueError, match="shape \\(N, 3\\)"):
        check_sparse_map(None, tf.zeros([2, 2], tf.int32), (4, 4))


def test_graph_mode_range_check_raises_at_run_time():
    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.int32)])
    def to_dense(indices):
        return densify(tf.ones([tf.shape(indices)[0], 1]), indices, 1, (4, 4))

    assert float(tf.reduce_sum(to_dense(tf.constant([[0, 3, 3]])))) == 1.0
    with pytest.raises(tf.errors.InvalidArgumentError, match="grid"):
        to_dense(tf.constant([[0, 4, 0]]))


# ------------------------------------------------------------------------------- neighbours


@pytest.mark.parametrize("kernel_size", [3, 5])
def test_neighbour_table_matches_brute_force(kernel_size):
    _, _, _, indices = random_map(1, shape=(3, 6, 5, 1), density=0.6)
    table = neighbour_table(indices, (6, 5), kernel_size).numpy()
    sites = {tuple(site): row for row, site in enumerate(indices.numpy().tolist())}
    expected = np.full((len(sites), kernel_size**2), len(sites))
    for row, (b, r, c) in enumerate(indices.numpy().tolist()):
        for tap, (dr, dc) in enumerate(kernel_offsets(kernel_size)):
            expected[row, tap] = sites.get((b, r + dr, c + dc), len(sites))
    np.testing.assert_array_equal(table, expected)


def test_neighbour_table_of_no_site():
    table = neighbour_table(tf.zeros([0, 3], tf.int32), (4, 4), 3)
    assert table.shape == (0, 9)


# ------------------------------------------------------------------------------- operators


def conv_reference(dense, mask, kernel, bias=None):
    """Masked dense 'same' convolution read at the active sites (zero elsewhere)."""
    out = tf.nn.conv2d(masked(dense, mask), kernel, 1, "SAME")
    if bias is not None:
        out = out + bias
    return masked(out, mask)


@pytest.mark.parametrize("kernel_size,use_bias", [(3, False), (5, True), (1, True)])
def test_submanifold_conv_values_and_gradients(kernel_size, use_bias):
    dense, mask, features, indices = random_map(2)
    table = neighbour_table(indices, (7, 6), kernel_size)
    layer = SubmanifoldConv2D(5, kernel_size, use_bias=use_bias, bias_initializer="random_normal")
    layer(features, table)
    weights = [layer.kernel] + ([layer.bias] if use_bias else [])

    def sparse(x, *w):
        del w  # the layer reads its own variables; listed for the tape
        return layer(x, table)

    def reference(x, *w):
        grid = densify(x, indices, 2, (7, 6))
        return at_sites(conv_reference(grid, mask, *w), indices)

    ours, ours_grads = gradients(sparse, [features])
    with tf.GradientTape() as tape:
        out = layer(features, table)
        r = tf.constant(np.random.default_rng(7).standard_normal(out.shape), "float32")
        weight_grads = tape.gradient(tf.reduce_sum(out * r), weights)
    ref, ref_grads = gradients(reference, [features, *[tf.convert_to_tensor(w) for w in weights]])
    assert_close(ours, ref, what="forward")
    assert_close(ours_grads[0], ref_grads[0], what="d/d features")
    for ours_w, ref_w in zip(weight_grads, ref_grads[1:], strict=True):
        assert_close(ours_w, ref_w, what="d/d weights")


def test_submanifold_conv_backward_does_not_keep_gathered_taps():
    """Peak memory of forward+backward stays well below the [N, K*K, C] gathered block."""
    n, channels = 40_000, 32
    rng = np.random.default_rng(3)
    rows = rng.choice(400 * 400, n, replace=False)
    indices = tf.constant(np.stack([np.zeros(n), rows // 400, rows % 400], 1).astype("int32"))
    table = neighbour_table(indices, (400, 400), 3)
    features = tf.constant(rng.standard_normal((n, channels)).astype("float32"))
    kernel = tf.constant(rng.standard_normal((3, 3, channels, channels)).astype("float32"))
    layer = SubmanifoldConv2D(channels, 3)
    layer.build((None, channels))
    layer.kernel.assign(kernel)

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.square(layer(x, table)))
        return tape.gradient(loss, [x, layer.kernel])

    step(features)
    with AllocatorPeak() as memory:
        grads = step(features)
        grads[0].numpy()
    peak = memory.peak_bytes
    one_map = n * channels * 4
    # Keeping the gathered [N, 9, C] block alone is 9 maps of [N, C]. Ours peaks at ~7 (output,
    # gradients and per-tap temporaries); gathering all taps at once peaks at ~27.
    assert peak < 9 * one_map, f"peak {peak / one_map:.1f} x [N, C]"


def bn_reference(x, mask, gamma, beta, epsilon=1e-5):
    """Batch norm with the statistics of the active sites only; zero at inactive sites."""
    m = tf.cast(mask, x.dtype)[..., None]
    count = tf.reduce_sum(m)
    mean = tf.reduce_sum(x * m, axis=[0, 1, 2]) / count
    variance = tf.reduce_sum(tf.square(x - mean) * m, axis=[0, 1, 2]) / count
    return masked(gamma * (x - mean) / tf.sqrt(variance + epsilon) + beta, mask), mean, variance


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


def test_upsampling_equals_dense_nearest_upsampling():
    dense, mask, features, indices = random_map(5)
    layer = SparseUpsampling2D()

    def sparse(x):
        out, child_indices = layer(x, indices)
        return densify(out, child_indices, 2, (14, 12))

    def reference(x):
        grid = densify(x, indices, 2, (7, 6))
        up = keras.layers.UpSampling2D(2, interpolation="nearest")(grid)
        up_mask = np.repeat(np.repeat(mask, 2, axis=1), 2, axis=2)
        return masked(up, up_mask)

    ours, ours_grads = gradients(sparse, [features])
    ref, ref_grads = gradients(reference, [features])
    assert_close(ours, ref, what="forward")
    assert_close(ours_grads[0], ref_grads[0], what="d/d features")
    _, child_indices = layer(features, indices)
    up_mask = np.repeat(np.repeat(mask, 2, axis=1), 2, axis=2)
    assert sorted(map(tuple, child_indices.numpy().tolist())) == sorted(
        map(tuple, np.argwhere(up_mask).tolist())
    )


def test_sparse_dense_add_values_and_gradients():
    dense, mask, features, indices = random_map(6)
    skip = tf.constant(np.random.default_rng(9).standard_normal((2, 7, 6, 4)), "float32")
    layer = SparseDenseAdd()
    ours, ours_grads = gradients(lambda x, s: layer(x, indices, s), [features, skip])
    ref, ref_grads = gradients(
        lambda x, s: at_sites(masked(densify(x, indices, 2, (7, 6)) + s, mask), indices),
        [features, skip],
    )
    assert_close(ours, ref, what="forward")
    assert_close(ours_grads[0], ref_grads[0], what="d/d features")
    assert_close(ours_grads[1], ref_grads[1], what="d/d dense (zero at inactive sites)")


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


# ------------------------------------------------------------------------------- config, saving


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


# ------------------------------------------------------------------------------- inside fit


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
