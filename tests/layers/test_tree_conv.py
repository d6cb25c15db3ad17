"""TreeConv2D: SPEC §2 parameter counts, independent references (plain TF for values and gradients,
NumPy loops for the pooling/upsampling/stride geometry), the parse's normalisation and orderliness,
explanation maps, shapes, precisions, bad arguments and the shared layer harness."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_structconv.layers import TreeConv2D, treeconv_factory
from keras_structconv.layers.tree_conv import leaf_widths
from tests.layer_harness import LayerCase, LayerHarness

# ------------------------------------------------------------------------------ references


def _weights(layer):
    return {w.name: w for w in layer.weights}


def _widths(filters, depth):
    """Near-equal split written as counting: leaf i gets ceil((filters - i) / (depth + 1))."""
    return [-(-(filters - i) // (depth + 1)) for i in range(depth + 1)]


def _sequential_leaves(x, gate_kernel, gate_bias, depth):
    """Eq. 1-2 literally: gate = sigmoid(conv1x1(S) + b), L = gate * S, S = S - L."""
    s, leaves = x, []
    for level in range(depth):
        kernel = tf.reshape(gate_kernel[:, level], (1, 1, -1, 1))
        gate = tf.sigmoid(tf.nn.conv2d(s, kernel, 1, "VALID") + gate_bias[level])
        leaves.append(gate * s)
        s = s - leaves[-1]
    return leaves + [s]


def _vanilla_kernel(layer):
    """The leaf kernels side by side: the `(K, K, C, filters)` kernel of a vanilla conv."""
    return np.concatenate([np.asarray(layer.leaf_kernels[i]) for i in range(layer.depth + 1)], -1)


def _cell_index(out_size, in_size, f, strides):
    """Output row i takes the TF-'SAME' pooling cell containing input row strides * i."""
    cells = -(-in_size // f)
    top = (cells * f - in_size) // 2
    return [(strides * i + top) // f for i in range(out_size)]


def _up(y, f, strides, in_h, in_w):
    out_h, out_w = -(-in_h // strides), -(-in_w // strides)
    y = tf.gather(y, _cell_index(out_h, in_h, f, strides), axis=1)
    return tf.gather(y, _cell_index(out_w, in_w, f, strides), axis=2)


def _symmetric_conv(x, kernel, strides):
    pad = (kernel.shape[0] - 1) // 2
    x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    return tf.nn.conv2d(x, kernel, strides, "VALID")


def reference_paper(layer, x):
    """SPEC §2 paper variant in plain TF: sequential parse, tf.nn.avg_pool2d, a gather for the
    upsampling (index formula above), explicit symmetric padding, concat, fusion, bias."""
    w = _weights(layer)
    d, s = layer.depth, layer.strides
    x = tf.convert_to_tensor(x)
    h, wd = x.shape[1], x.shape[2]
    leaves = _sequential_leaves(x, w["gate_kernel"], w["gate_bias"], d)
    vanilla = tf.concat([w[f"kernel_{level}"] for level in range(d + 1)], axis=-1)
    start, outputs = 0, []
    for level, width in enumerate(_widths(layer.filters, d)):
        kernel = vanilla[..., start : start + width]
        start += width
        f = 2 ** (d - level)
        if f == 1:
            outputs.append(_symmetric_conv(leaves[level], kernel, s))
        else:
            pooled = tf.nn.avg_pool2d(leaves[level], f, f, "SAME")
            outputs.append(_up(_symmetric_conv(pooled, kernel, 1), f, s, h, wd))
    y = tf.concat(outputs, axis=-1)
    if layer.fuse:
        y = tf.nn.conv2d(y, w["fusion_kernel"], 1, "VALID")
    if layer.use_bias:
        y = y + w["bias"]
    return y


def _bn_inference(norm, u):
    gamma, beta, mean, var = (tf.convert_to_tensor(v) for v in norm.weights)
    return (u - mean) / tf.sqrt(var + 1e-5) * gamma + beta


def reference_authors(layer, x):
    """SPEC §2 [code] variant: sigmoid(BN(U_l)) gates O = ReLU(BN(conv(x))), BNs in inference."""
    w = _weights(layer)
    d, s = layer.depth, layer.strides
    x = tf.convert_to_tensor(x)
    h, wd = x.shape[1], x.shape[2]
    leaves = _sequential_leaves(x, w["gate_kernel"], w["gate_bias"], d)
    branch = tf.nn.relu(_bn_inference(layer.branch_norm, _symmetric_conv(x, w["branch_kernel"], s)))
    outputs = []
    for level in range(d + 1):
        f = 2 ** (d - level)
        kernel = w[f"leaf_kernel_{level}"]
        if f == 1:
            u = _symmetric_conv(leaves[level], kernel, s)
        else:
            u = _symmetric_conv(tf.nn.avg_pool2d(leaves[level], f, f, "SAME"), kernel, 1)
        gate = tf.sigmoid(_bn_inference(layer.leaf_norms[level], u))
        if f > 1:
            gate = _up(gate, f, s, h, wd)
        outputs.append(gate * branch)
    y = tf.concat(outputs, axis=-1)
    if layer.fuse:
        y = tf.nn.conv2d(y, w["fusion_kernel"], 1, "VALID")
    if layer.use_bias:
        y = y + w["bias"]
    return y


def numpy_paper(layer, x):
    """Forward of the paper variant with NumPy loops over cells, taps and output pixels (no TF
    pooling/conv/resize semantics involved): the geometry of the module docstring."""
    w = {k: np.asarray(v, "float64") for k, v in _weights(layer).items()}
    x = np.asarray(x, "float64")
    d, s, k = layer.depth, layer.strides, layer.kernel_size
    n, h, wd, _ = x.shape
    rest, leaves = x, []
    for level in range(d):
        gate = 1 / (1 + np.exp(-(rest @ w["gate_kernel"][:, level] + w["gate_bias"][level])))
        leaves.append(gate[..., None] * rest)
        rest = rest - leaves[-1]
    leaves.append(rest)

    def pool(t, f):
        rows, cols = -(-h // f), -(-wd // f)
        top, left = (rows * f - h) // 2, (cols * f - wd) // 2
        out = np.zeros((n, rows, cols, t.shape[-1]))
        for i in range(rows):
            for j in range(cols):
                r0, r1 = max(i * f - top, 0), min((i + 1) * f - top, h)
                c0, c1 = max(j * f - left, 0), min((j + 1) * f - left, wd)
                out[:, i, j] = t[:, r0:r1, c0:c1].mean(axis=(1, 2))
        return out, top, left

    def conv(t, kernel, stride):
        p = (k - 1) // 2
        padded = np.pad(t, [(0, 0), (p, p), (p, p), (0, 0)])
        rows = (t.shape[1] - 1) // stride + 1
        cols = (t.shape[2] - 1) // stride + 1
        out = np.zeros((n, rows, cols, kernel.shape[-1]))
        for i in range(rows):
            for j in range(cols):
                patch = padded[:, i * stride : i * stride + k, j * stride : j * stride + k]
                out[:, i, j] = np.einsum("nabc,abco->no", patch, kernel)
        return out

    out_h, out_w = -(-h // s), -(-wd // s)
    vanilla = _vanilla_kernel(layer)
    start, outputs = 0, []
    for level, width in enumerate(leaf_widths(layer.filters, d)):
        kernel = vanilla[..., start : start + width]
        start += width
        f = 2 ** (d - level)
        if f == 1:
            outputs.append(conv(leaves[level], kernel, s))
            continue
        pooled, top, left = pool(leaves[level], f)
        y = conv(pooled, kernel, 1)
        up = np.zeros((n, out_h, out_w, width))
        for i in range(out_h):
            for j in range(out_w):
                # the cell holding the centre of output pixel (i, j): input pixel (s*i, s*j)
                up[:, i, j] = y[:, (s * i + top) // f, (s * j + left) // f]
        outputs.append(up)
    y = np.concatenate(outputs, axis=-1)
    if layer.fuse:
        y = y @ w["fusion_kernel"][0, 0]
    if layer.use_bias:
        y = y + w["bias"]
    return y


# ------------------------------------------------------------------------------ helpers


def _random_layer(input_shape, seed=0, **kwargs):
    """A built layer with non-trivial gates (random biases, larger gate weights)."""
    kwargs.setdefault("gate_kernel_initializer", keras.initializers.RandomNormal(0, 0.7, seed))
    kwargs.setdefault("gate_bias_initializer", keras.initializers.RandomNormal(0, 1.0, seed + 1))
    if kwargs.get("use_bias"):
        kwargs.setdefault("bias_initializer", keras.initializers.RandomNormal(0, 1.0, seed + 2))
    layer = TreeConv2D(**kwargs)
    layer.build(input_shape)
    return layer


def _value_and_grads(fn, layer, x, cotangent):
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
        loss = tf.reduce_sum(y * cotangent)
    return [y] + tape.gradient(loss, [x] + layer.trainable_variables)


def _assert_matches(layer, reference, x, atol=1e-5):
    y = layer(x, training=False)
    cotangent = np.random.default_rng(7).standard_normal(y.shape).astype("float32")
    ours = _value_and_grads(lambda t: layer(t, training=False), layer, x, cotangent)
    ref = _value_and_grads(lambda t: reference(layer, t), layer, x, cotangent)
    names = ["output", "d/dx"] + [f"d/d{w.name}" for w in layer.trainable_variables]
    for name, a, b in zip(names, ours, ref, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=atol, rtol=1e-5, err_msg=name)


def _sample(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


# ------------------------------------------------------------------------------ SPEC numbers


def test_parameter_counts_from_spec():
    paper = TreeConv2D(64, 3, depth=3)
    paper.build((None, 56, 56, 64))
    assert paper.count_params() == 37_059  # 36,864 + 3 * 65
    reference = TreeConv2D(64, 3, depth=3, variant="reference")
    reference.build((None, 56, 56, 64))
    trainable = sum(int(np.prod(w.shape)) for w in reference.trainable_weights)
    assert trainable == 46_435  # 195 + 36,864 + 9,216 + 160


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5])
def test_parameter_count_is_vanilla_plus_gates(depth):
    layer = TreeConv2D(24, 5, depth=depth, fuse=True, use_bias=True)
    layer.build((None, None, None, 16))
    assert layer.count_params() == 5 * 5 * 16 * 24 + depth * 17 + 24 * 24 + 24


def test_leaf_kernels_are_the_columns_of_one_vanilla_kernel():
    initializer = keras.initializers.GlorotUniform(seed=3)
    layer = TreeConv2D(10, 3, depth=3, kernel_initializer=initializer)
    layer.build((None, None, None, 6))
    assert [tuple(k.shape) for k in layer.leaf_kernels] == [(3, 3, 6, w) for w in (3, 3, 2, 2)]
    expected = keras.initializers.GlorotUniform(seed=3)((3, 3, 6, 10))
    np.testing.assert_array_equal(_vanilla_kernel(layer), expected)


def test_reference_variant_leaf_kernels_follow_pooled_size():
    layer = TreeConv2D(64, 3, variant="reference")
    layer.build((None, 7, 7, 64))  # pooled 1x1, 2x2, 4x4, 7x7
    assert layer.leaf_kernel_sizes == [1, 1, 3, 3]


@pytest.mark.parametrize("filters, depth", [(64, 2), (64, 3), (5, 4), (7, 5), (2, 1), (130, 3)])
def test_leaf_widths(filters, depth):
    widths = leaf_widths(filters, depth)
    assert widths == _widths(filters, depth)
    assert sum(widths) == filters and max(widths) - min(widths) <= 1
    assert leaf_widths(64, 2) == [22, 21, 21]


# ------------------------------------------------------------------------------ references


# Shapes and settings are shared between tests where possible: the layer's XLA kernels are
# compiled once per (depth, input shape, dtype) and process.
HARNESS_SHAPE = (2, 13, 10, 8)
HARNESS_KWARGS = dict(filters=8, depth=3, strides=2, use_bias=True)
REFERENCE_CASES = [
    # 13x10 at stride 2: pooling cells padded by 1 and 3 rows in front (odd, > 1)
    (HARNESS_SHAPE, HARNESS_KWARGS),
    ((2, 9, 9, 6), dict(filters=8, depth=3)),  # odd size, 3 padded rows in front at f = 8
    ((1, 10, 12, 4), dict(filters=9, depth=2, strides=2, fuse=True)),
    ((2, 3, 5, 4), dict(filters=6, depth=4)),  # smaller than the deepest pool (16)
    ((1, 7, 7, 3), dict(filters=6, depth=5, kernel_size=1)),
    ((2, 11, 11, 4), dict(filters=4, depth=1, kernel_size=5, strides=2)),
]


@pytest.mark.parametrize("shape, kwargs", REFERENCE_CASES)
def test_paper_variant_matches_plain_tf_reference(shape, kwargs):
    layer = _random_layer(shape, **kwargs)
    _assert_matches(layer, reference_paper, _sample(shape))


@pytest.mark.parametrize("shape, kwargs", REFERENCE_CASES[:3])
def test_paper_variant_matches_numpy_loops(shape, kwargs):
    layer = _random_layer(shape, **kwargs)
    x = _sample(shape, 3)
    np.testing.assert_allclose(layer(x).numpy(), numpy_paper(layer, x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "shape, kwargs",
    [
        ((2, 9, 9, 8), dict(filters=8, depth=3)),
        ((2, 14, 11, 6), dict(filters=6, depth=2, strides=2, use_bias=True)),
    ],
)
def test_reference_variant_matches_its_reference(shape, kwargs):
    layer = _random_layer(shape, variant="reference", **kwargs)
    rng = np.random.default_rng(5)
    for norm in [layer.branch_norm, *layer.leaf_norms]:  # non-trivial BN statistics
        norm.set_weights([rng.uniform(0.5, 1.5, v.shape) for v in norm.weights])
    _assert_matches(layer, reference_authors, _sample(shape))


def test_training_mode_uses_batch_statistics_in_reference_variant():
    layer = _random_layer((4, 8, 8, 4), variant="reference", filters=4, depth=1)
    x = _sample((4, 8, 8, 4))
    before = [np.array(v) for v in layer.branch_norm.non_trainable_weights]
    layer(x, training=True)
    after = [np.array(v) for v in layer.branch_norm.non_trainable_weights]
    assert not np.allclose(before[0], after[0])  # moving mean updated


# ------------------------------------------------------------------------------ the parse


def test_parse_normalisation_orderliness_and_explanation_maps():
    shape = (2, 12, 10, 6)
    layer = _random_layer(shape, filters=8, depth=4)
    x = _sample(shape) * 3
    leaves = layer.parse(x)
    expected = _sequential_leaves(
        tf.constant(x), layer.gate_kernel, layer.gate_bias, layer.depth
    )
    for ours, ref in zip(leaves, expected, strict=True):
        np.testing.assert_allclose(ours, ref, atol=1e-5)
    # normalisation: the leaves sum to the input
    np.testing.assert_allclose(tf.add_n(leaves), x, atol=1e-5)
    # orderliness: the right child S_R^l = sum of the leaves from l on shrinks with depth
    rights = [tf.add_n(leaves[level:]) for level in range(1, layer.depth + 1)]
    for outer, inner in zip([tf.constant(x)] + rights[:-1], rights, strict=True):
        assert np.all(np.abs(inner) <= np.abs(outer) + 1e-6)
    # explanation maps: rho_0, (1-rho_0) rho_1, ..., prod (1-rho_l); in (0, 1), summing to 1
    maps = layer.explain(x).numpy()
    assert maps.shape == (2, 12, 10, 5)
    assert np.all((maps > 0) & (maps < 1))
    np.testing.assert_allclose(maps.sum(-1), 1.0, atol=1e-6)
    remainder = np.ones(maps.shape[:-1])
    for level in range(layer.depth):
        rho = maps[..., level] / remainder
        remainder = remainder * (1 - rho)
    np.testing.assert_allclose(maps[..., -1], remainder, atol=1e-5)


def test_explain_is_the_ratio_of_each_leaf():
    shape = (1, 5, 5, 3)
    layer = _random_layer(shape, filters=4, depth=3)
    x = np.abs(_sample(shape)) + 0.5
    maps = layer.explain(x).numpy()
    leaves = [leaf.numpy() for leaf in layer.parse(x)]
    for level, leaf in enumerate(leaves):
        np.testing.assert_allclose(leaf / x, np.repeat(maps[..., level : level + 1], 3, -1),
                                   rtol=1e-5)


# ------------------------------------------------------------------------------ shapes, formats


def test_none_spatial_model_and_unknown_shape_function():
    layer = _random_layer((None, None, None, 4), filters=6, depth=3, strides=2)
    inputs = keras.Input((None, None, 4))
    model = keras.Model(inputs, layer(inputs))
    for shape in [(2, 9, 9, 4), (1, 5, 12, 4)]:
        x = _sample(shape)
        np.testing.assert_allclose(model(x), reference_paper(layer, x), atol=1e-5)
    fn = tf.function(layer, input_signature=[tf.TensorSpec((None, None, None, 4))])
    x = _sample((2, 7, 6, 4))
    np.testing.assert_allclose(fn(x), reference_paper(layer, x), atol=1e-5)


def test_channels_first_equals_channels_last():
    shape, kwargs = REFERENCE_CASES[2]
    x = _sample(shape)
    last = _random_layer(shape, **kwargs)
    first = TreeConv2D(**kwargs, data_format="channels_first")
    transposed = (shape[0], shape[3], shape[1], shape[2])
    first.build(transposed)
    first.set_weights(last.get_weights())
    y = first(np.transpose(x, (0, 3, 1, 2)))
    assert tuple(y.shape) == first.compute_output_shape(transposed) == (1, 9, 5, 6)
    np.testing.assert_allclose(np.transpose(y, (0, 2, 3, 1)), last(x), atol=1e-5)
    maps = first.explain(np.transpose(x, (0, 3, 1, 2)))
    np.testing.assert_allclose(np.transpose(maps, (0, 2, 3, 1)), last.explain(x), atol=1e-6)


@pytest.mark.parametrize("policy, atol", [("mixed_float16", 3e-2), ("mixed_bfloat16", 1e-1)])
def test_mixed_precision_close_to_float32(policy, atol):
    x = _sample(HARNESS_SHAPE)
    reference = _random_layer(HARNESS_SHAPE, **HARNESS_KWARGS)
    keras.mixed_precision.set_global_policy(policy)
    layer = TreeConv2D(**HARNESS_KWARGS)
    layer.build(HARNESS_SHAPE)
    layer.set_weights(reference.get_weights())
    with tf.GradientTape() as tape:
        y = layer(x)
        loss = tf.reduce_sum(tf.cast(y, "float32") ** 2)
    grads = tape.gradient(loss, layer.trainable_variables)
    assert y.dtype == policy.split("_")[1]
    assert all(g.dtype == "float32" and np.all(np.isfinite(g)) for g in grads)
    np.testing.assert_allclose(np.asarray(y, "float32"), reference(x), atol=atol, rtol=atol)


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(filters=8, depth=0), "`depth` must be an integer between 1 and 5"),
        (dict(filters=8, depth=6), "Received: depth=6"),
        (dict(filters=8, variant="gated"), "`variant` must be one of"),
        (dict(filters=8, kernel_size=2), "`kernel_size` must be odd"),
        (dict(filters=3, depth=3), "`filters` must be at least `depth \\+ 1`"),
        (dict(filters=8, strides=3), "`strides` must be 1 or 2"),
        (dict(filters=8, data_format="nhwc"), "`data_format` must be"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TreeConv2D(**kwargs)


def test_reference_variant_needs_static_size_and_filters_equal_channels():
    with pytest.raises(ValueError, match="needs static height and width"):
        TreeConv2D(8, variant="reference").build((None, None, None, 8))
    with pytest.raises(ValueError, match="Received: filters=16, input channels=8"):
        TreeConv2D(16, variant="reference").build((None, 8, 8, 8))


def test_from_conv_carries_the_configuration_and_refuses_what_it_cannot_stand_for():
    conv = keras.layers.Conv2D(
        12, 3, strides=2, padding="same", use_bias=True, name="c3", kernel_regularizer="l2"
    )
    tree = treeconv_factory(depth=2, fuse=True)(conv)
    assert (tree.name, tree.filters, tree.kernel_size, tree.strides) == ("c3", 12, 3, 2)
    assert tree.use_bias and tree.fuse and tree.depth == 2 and tree.kernel_regularizer
    valid = keras.layers.Conv2D(8, 5, strides=2, padding="valid")
    assert TreeConv2D.from_conv(valid, zero_padding=((2, 2), (2, 2))).strides == 2
    assert treeconv_factory().folds_zero_padding
    bad = [
        (keras.layers.Conv2D(8, 3, dilation_rate=2, padding="same"), {}, "no dilation_rate"),
        (keras.layers.Conv2D(8, 3, groups=2, padding="same"), {}, "no groups"),
        (keras.layers.Conv2D(8, 3, activation="relu", padding="same"), {}, "no activation"),
        (keras.layers.Conv2D(8, 3, padding="valid"), {}, "pads symmetrically"),
        (valid, {"zero_padding": ((1, 1), (1, 1))}, "pads symmetrically"),
        (keras.layers.DepthwiseConv2D(3), {}, "must be a keras.layers.Conv2D"),
    ]
    for layer, kwargs, match in bad:
        with pytest.raises(ValueError, match=match):
            TreeConv2D.from_conv(layer, **kwargs)


# ------------------------------------------------------------------------------ harness


class TestTreeConv2DHarness(LayerHarness):
    case = LayerCase(
        factory=lambda: TreeConv2D(
            **HARNESS_KWARGS, gate_bias_initializer=keras.initializers.RandomNormal(0, 1.0, 1)
        ),
        input_shape=HARNESS_SHAPE,
        reference=reference_paper,
        atol=1e-5,
        rtol=1e-5,
        other_spatial=(7, 9),
    )


class TestTreeConv2DReferenceVariantHarness(LayerHarness):
    case = LayerCase(
        factory=lambda: TreeConv2D(8, 3, depth=3, variant="reference"),
        input_shape=(2, 9, 9, 8),
        reference=reference_authors,
        none_spatial=False,
        atol=1e-5,
        rtol=1e-5,
        overfit=False,
    )
