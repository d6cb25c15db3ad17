"""TreeConv2D (the paper's variant): exact parameter counts, independent references (plain TF
for values and gradients, NumPy loops for the geometry), the parse's normalisation and
orderliness, explanation maps, shapes, precisions, initialisation, bad arguments, the factory
and the shared layer harness."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_structconv.layers import ReferenceTreeConv2D, TreeConv2D, _conv_ops, treeconv_factory
from keras_structconv.layers.tree_conv import kernels, leaf_widths
from tests.layer_harness import LayerCase, LayerHarness
from tests.layers.tree_conv_references import (
    HARNESS_KWARGS,
    HARNESS_SHAPE,
    REFERENCE_CASES,
    assert_matches,
    numpy_paper,
    random_layer,
    reference_paper,
    sample,
    sequential_leaves,
    vanilla_kernel,
    widths,
)

# ------------------------------------------------------------------------------ counts


def test_parameter_count_64_channels_depth_3():
    layer = TreeConv2D(64, 3, depth=3)
    layer.build((None, 56, 56, 64))
    assert layer.count_params() == 37_059  # 36,864 + 3 * 65


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5])
def test_parameter_count_is_vanilla_plus_gates(depth):
    layer = TreeConv2D(24, 5, depth=depth, fuse=True, use_bias=True)
    layer.build((None, None, None, 16))
    assert layer.count_params() == 5 * 5 * 16 * 24 + depth * 17 + 24 * 24 + 24


def test_leaf_kernels_are_the_columns_of_one_vanilla_kernel():
    layer = TreeConv2D(10, 3, depth=3, kernel_initializer=keras.initializers.GlorotUniform(3))
    layer.build((None, None, None, 6))
    assert [tuple(k.shape) for k in layer.leaf_kernels] == [(3, 3, 6, w) for w in (3, 3, 2, 2)]
    expected = keras.initializers.GlorotUniform(seed=3)((3, 3, 6, 10))
    np.testing.assert_array_equal(vanilla_kernel(layer), expected)


@pytest.mark.parametrize("filters, depth", [(64, 2), (64, 3), (5, 4), (7, 5), (2, 1), (130, 3)])
def test_leaf_widths_split_filters_near_equally(filters, depth):
    assert leaf_widths(filters, depth) == widths(filters, depth)


def test_leaf_widths_example():
    assert leaf_widths(64, 2) == [22, 21, 21]


# ------------------------------------------------------------------------------ initialisation


def same_shaped_pairs(layer):
    kernels = [w for w in layer.weights if "kernel" in w.name]
    return [(a, b) for a, b in itertools.combinations(kernels, 2) if a.shape == b.shape]


@pytest.mark.parametrize("initializer", ["glorot_uniform", "he_normal",
                                         keras.initializers.HeNormal(seed=5)])
def test_no_two_same_shaped_kernels_start_equal(initializer):
    # 12 filters, depth 3: four leaf kernels of shape (3, 3, 12, 3); fusion (1, 1, 12, 12).
    layer = TreeConv2D(12, 3, depth=3, fuse=True, kernel_initializer=initializer)
    layer.build((None, None, None, 12))
    pairs = same_shaped_pairs(layer)
    assert len(pairs) == 6
    for a, b in pairs:
        assert not np.array_equal(a, b), f"{a.name} == {b.name}"


def test_two_layers_from_one_unseeded_initializer_start_different():
    initializer = keras.initializers.GlorotUniform()
    first, second = (TreeConv2D(8, 3, kernel_initializer=initializer) for _ in range(2))
    for layer in (first, second):
        layer.build((None, None, None, 8))
    assert not np.array_equal(vanilla_kernel(first), vanilla_kernel(second))


def test_seeded_initializer_is_reproducible():
    kernels = []
    for _ in range(2):
        layer = TreeConv2D(8, 3, fuse=True, kernel_initializer=keras.initializers.HeNormal(4),
                           gate_kernel_initializer=keras.initializers.HeNormal(9))
        layer.build((None, None, None, 8))
        kernels.append([np.array(w) for w in layer.weights])
    for a, b in zip(*kernels, strict=True):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------------ references




@pytest.mark.parametrize("shape, kwargs", REFERENCE_CASES)
def test_matches_plain_tf_reference(shape, kwargs):
    assert_matches(random_layer(shape, **kwargs), reference_paper, shape)


@pytest.mark.parametrize("shape, kwargs", REFERENCE_CASES[:3])
def test_matches_numpy_loops(shape, kwargs):
    layer = random_layer(shape, **kwargs)
    x = sample(shape, 3)
    np.testing.assert_allclose(layer(x).numpy(), numpy_paper(layer, x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("strides, padding", [(1, "same"), (1, 1), (2, 0), (2, 1)])
def test_xla_convolution_equals_conv_ops(strides, padding):
    # The convolutions' formulation without oneDNN, checked in either setting.
    x, kernel = tf.constant(sample((2, 9, 8, 5))), tf.constant(sample((3, 3, 5, 4), 1))
    cotangent = None
    results = []
    for conv in (kernels.xla_conv2d, _conv_ops.conv2d):
        with tf.GradientTape() as tape:
            tape.watch([x, kernel])
            y = conv(x, kernel, strides, padding=padding)
            if cotangent is None:
                cotangent = tf.constant(sample(y.shape, 2))
            loss = tf.reduce_sum(y * cotangent)
        results.append([y, *tape.gradient(loss, [x, kernel])])
    for ours, expected in zip(*results, strict=True):
        np.testing.assert_allclose(ours, expected, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------------ the parse

PARSE_SHAPE = (2, 12, 10, 6)


@pytest.fixture
def parsed():
    layer = random_layer(PARSE_SHAPE, filters=8, depth=4)
    x = sample(PARSE_SHAPE) * 3
    return layer, x, layer.parse(x)


def test_parse_follows_equations_1_and_2(parsed):
    layer, x, leaves = parsed
    expected = sequential_leaves(tf.constant(x), layer.gate_kernel, layer.gate_bias, layer.depth)
    for ours, ref in zip(leaves, expected, strict=True):
        np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_leaves_sum_to_the_input(parsed):
    _, x, leaves = parsed
    np.testing.assert_allclose(tf.add_n(leaves), x, atol=1e-5)


def test_right_child_shrinks_with_depth(parsed):
    layer, x, leaves = parsed
    rights = [tf.constant(x)] + [tf.add_n(leaves[level:]) for level in range(1, layer.depth + 1)]
    for outer, inner in itertools.pairwise(rights):
        assert np.all(np.abs(inner) <= np.abs(outer) + 1e-6)


def test_explanation_maps_are_leaf_ratios_summing_to_one(parsed):
    layer, x, _ = parsed
    maps = layer.explain(x).numpy()
    assert maps.shape == (2, 12, 10, 5)
    assert np.all((maps > 0) & (maps < 1))
    np.testing.assert_allclose(maps.sum(-1), 1.0, atol=1e-6)


def test_last_explanation_map_is_the_product_of_right_turns(parsed):
    layer, x, _ = parsed
    maps = layer.explain(x).numpy()
    remainder = np.ones(maps.shape[:-1])
    for level in range(layer.depth):
        remainder = remainder * (1 - maps[..., level] / remainder)
    np.testing.assert_allclose(maps[..., -1], remainder, atol=1e-5)


def test_explain_is_the_ratio_of_each_leaf():
    shape = (1, 5, 5, 3)
    layer = random_layer(shape, filters=4, depth=3)
    x = np.abs(sample(shape)) + 0.5
    maps = layer.explain(x).numpy()
    for level, leaf in enumerate(layer.parse(x)):
        np.testing.assert_allclose(leaf / x, np.repeat(maps[..., level : level + 1], 3, -1),
                                   rtol=1e-5)


# ------------------------------------------------------------------------------ shapes, formats


def test_model_with_none_spatial_dims():
    layer = random_layer((None, None, None, 4), filters=6, depth=3, strides=2)
    inputs = keras.Input((None, None, 4))
    model = keras.Model(inputs, layer(inputs))
    for shape in [(2, 9, 9, 4), (1, 5, 12, 4)]:
        x = sample(shape)
        np.testing.assert_allclose(model(x), reference_paper(layer, x), atol=1e-5)


def test_function_traced_with_unknown_shape():
    layer = random_layer((None, None, None, 4), filters=6, depth=3, strides=2)
    fn = tf.function(layer, input_signature=[tf.TensorSpec((None, None, None, 4))])
    x = sample((2, 7, 6, 4))
    np.testing.assert_allclose(fn(x), reference_paper(layer, x), atol=1e-5)


def test_channels_first_equals_channels_last():
    shape, kwargs = REFERENCE_CASES[2]
    x = sample(shape)
    last = random_layer(shape, **kwargs)
    first = TreeConv2D(**kwargs, data_format="channels_first")
    transposed = (shape[0], shape[3], shape[1], shape[2])
    first.build(transposed)
    first.set_weights(last.get_weights())
    y = first(np.transpose(x, (0, 3, 1, 2)))
    assert tuple(y.shape) == first.compute_output_shape(transposed) == (1, 9, 5, 6)
    np.testing.assert_allclose(np.transpose(y, (0, 2, 3, 1)), last(x), atol=1e-5)


def test_channels_first_explanation_maps():
    shape, kwargs = REFERENCE_CASES[2]
    x = sample(shape)
    last = random_layer(shape, **kwargs)
    first = TreeConv2D(**kwargs, data_format="channels_first")
    first.build((shape[0], shape[3], shape[1], shape[2]))
    first.set_weights(last.get_weights())
    maps = first.explain(np.transpose(x, (0, 3, 1, 2)))
    np.testing.assert_allclose(np.transpose(maps, (0, 2, 3, 1)), last.explain(x), atol=1e-6)


@pytest.mark.parametrize("policy, atol", [("mixed_float16", 3e-2), ("mixed_bfloat16", 1e-1)])
def test_mixed_precision_close_to_float32(policy, atol):
    x = sample(HARNESS_SHAPE)
    reference = random_layer(HARNESS_SHAPE, **HARNESS_KWARGS)
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
        (dict(filters=8, variant="gated"), "`variant` must be one of 'paper'"),
        (dict(filters=8, kernel_size=2), "`kernel_size` must be odd"),
        (dict(filters=8, kernel_size=(3, 5)), "pair of equal integers"),
        (dict(filters=3, depth=3), "`filters` must be at least `depth \\+ 1`"),
        (dict(filters=8, strides=3), "`strides` must be an integer between 1 and 2"),
        (dict(filters=8, strides=True), "Received: strides=True"),
        (dict(filters=8, data_format="nhwc"), "`data_format` must be one of"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TreeConv2D(**kwargs)


def test_reference_variant_points_at_its_class():
    with pytest.raises(ValueError, match="ReferenceTreeConv2D.*Received: variant='reference'"):
        TreeConv2D(8, variant="reference")


def test_unknown_channels_is_an_error():
    with pytest.raises(ValueError, match="channel dimension .* must be known"):
        TreeConv2D(8).build((None, 8, 8, None))


# ------------------------------------------------------------------------------ factory


def test_factory_carries_the_template_configuration():
    conv = keras.layers.Conv2D(
        12, 3, strides=2, padding="same", use_bias=True, name="c3", kernel_regularizer="l2"
    )
    tree = treeconv_factory(depth=2, fuse=True)(conv)
    assert type(tree) is TreeConv2D
    assert (tree.name, tree.filters, tree.kernel_size, tree.strides) == ("c3", 12, 3, 2)
    assert tree.use_bias and tree.fuse and tree.depth == 2 and tree.kernel_regularizer


def test_factory_makes_the_reference_class():
    tree = treeconv_factory(variant="reference")(keras.layers.Conv2D(8, 3, padding="same"))
    assert type(tree) is ReferenceTreeConv2D and tree.variant == "reference"


def test_factory_folds_symmetric_zero_padding():
    valid = keras.layers.Conv2D(8, 5, strides=2, padding="valid")
    assert treeconv_factory().folds_zero_padding is True
    assert treeconv_factory()(valid, zero_padding=((2, 2), (2, 2))).strides == 2


def test_factory_rejects_an_unknown_variant():
    with pytest.raises(ValueError, match="Received: variant='gated'"):
        treeconv_factory(variant="gated")


@pytest.mark.parametrize(
    "layer, kwargs, match",
    [
        (keras.layers.Conv2D(8, 3, dilation_rate=2, padding="same"), {}, "no dilation_rate"),
        (keras.layers.Conv2D(8, 3, groups=2, padding="same"), {}, "no groups"),
        (keras.layers.Conv2D(8, 3, activation="relu", padding="same"), {}, "no activation"),
        (keras.layers.Conv2D(8, 3, padding="valid"), {}, "pads symmetrically"),
        (keras.layers.Conv2D(8, 5, strides=2), {"zero_padding": ((1, 1), (1, 1))},
         "pads symmetrically"),
        (keras.layers.DepthwiseConv2D(3), {}, "must be a keras.layers.Conv2D"),
    ],
)
def test_from_conv_refuses_what_it_cannot_stand_for(layer, kwargs, match):
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
