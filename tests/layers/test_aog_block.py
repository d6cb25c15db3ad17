"""AOGBlock: harness, an independent reference, a hand computation, SPEC parameter counts."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_structconv import aog
from keras_structconv.layers import AOGBlock
from keras_structconv.layers.aog_block import channel_slices, near_equal_sizes
from tests.layer_harness import LayerCase, LayerHarness
from tests.references import (
    assert_relative_close,
    needs_onnx,
    onnx_outputs,
    tflite_outputs,
)

EPS = 1e-5

# ----------------------------------------------------------------------------- reference


def _groups(channels, n):
    """Group boundaries written from SPEC: `sizes[i % N] += 1`, contiguous."""
    sizes = np.bincount(np.arange(channels) % n, minlength=n)
    return np.concatenate([[0], np.cumsum(sizes)]).tolist()


def _bn(bn, x):
    """Inference BatchNorm from its variables."""
    return (x - bn.moving_mean) / tf.sqrt(bn.moving_variance + EPS) * bn.gamma + bn.beta


def _conv(conv, x):
    return tf.nn.conv2d(x, conv.kernel, strides=1, padding="SAME")


def _node_op(op, x_op, x_res):
    """ReLU(shortcut(x_res) + BN(conv1x1(ReLU(BN(conv3x3(ReLU(BN(conv1x1(x_op)))))))))."""
    y = tf.nn.relu(_bn(op.bn1, _conv(op.conv1, x_op)))
    y = tf.nn.relu(_bn(op.bn2, _conv(op.conv2, y)))
    y = _bn(op.bn3, _conv(op.conv3, y))
    if x_res.shape[-1] != y.shape[-1]:
        x_res = _bn(op.shortcut_bn, _conv(op.shortcut_conv, x_res))
    return tf.nn.relu(x_res + y)


def reference_block(layer, x):
    """The block from the definition, evaluated recursively over a freshly built grammar."""
    g = aog.build_grammar(layer.num_primitives, prune=layer.prune, lateral=layer.lateral)
    in_groups = _groups(x.shape[-1], layer.num_primitives)
    lateral_parent = {n.lateral: n.id for n in g if n.lateral is not None}

    def syntactic_parents(node_id):
        return {p for p in g.nodes[node_id].parents if lateral_parent.get(node_id) != p}

    def paths(node_id):  # root-to-node paths, laterals excluded
        if node_id == 0:
            return 1
        return sum(paths(p) for p in syntactic_parents(node_id))

    memo = {}

    def out(node_id):
        if node_id in memo:
            return memo[node_id]
        node = g.nodes[node_id]
        if node.kind == aog.TERMINAL:
            x_op = x_res = x[..., in_groups[node.start] : in_groups[node.end + 1]]
        else:
            kids = [out(c) for c in node.children]
            weights = [paths(node_id) / paths(c) for c in node.children]
            combine = (lambda ts: tf.concat(ts, -1)) if node.kind == aog.AND else tf.add_n
            x_op = combine(kids)
            x_res = combine([k * w for k, w in zip(kids, weights, strict=True)])
            if node.lateral is not None:
                side = out(node.lateral)
                x_op = x_op + side
                if not syntactic_parents(node_id) & syntactic_parents(node.lateral):
                    x_res = x_res + side * (paths(node_id) / paths(node.lateral))
        memo[node_id] = _node_op(layer.node_op(node_id), x_op, x_res)
        return memo[node_id]

    return tf.nn.relu(_bn(layer.output_bn, out(0)))


def _randomize_batchnorms(layer, seed=0):
    """Non-trivial BN statistics and affine parameters, so the reference checks them (gammas
    small enough that the many residual sums keep the activations of order 1)."""
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        name = w.path.rsplit("/", 1)[-1]
        if name == "gamma":
            w.assign(rng.uniform(0.2, 0.5, w.shape).astype("float32"))
        elif name == "moving_variance":
            w.assign(rng.uniform(0.5, 1.5, w.shape).astype("float32"))
        elif name in ("beta", "moving_mean"):
            w.assign(rng.normal(0, 0.1, w.shape).astype("float32"))


def _random_block(input_shape, input_seed, filters, num_primitives, **kwargs):
    """A seeded `AOGBlock(filters, num_primitives, **kwargs)` called once on a random input of
    `input_shape`, its batch norms randomised: `(layer, x)`."""
    keras.utils.set_random_seed(0)
    layer = AOGBlock(filters, num_primitives, **kwargs)
    x = np.random.default_rng(input_seed).standard_normal(input_shape).astype("float32")
    layer(x)
    _randomize_batchnorms(layer)
    return layer, x


# ----------------------------------------------------------------------------- harness


class TestAOGBlockHarness(LayerHarness):
    # N=2 (7 nodes: AND concat, OR sum, a lateral, Terminal shortcuts 2 -> 4 and 4 -> 8) keeps the
    # harness' many traces affordable; double counting and the other lateral cases are checked
    # against the reference and by hand below.
    case = LayerCase(
        factory=lambda: AOGBlock(8, num_primitives=2),
        input_shape=(2, 6, 6, 4),
        reference=reference_block,
        overfit_steps=80,  # reaches 94 % at 60 steps with the harness seed
    )


@pytest.mark.parametrize(
    ("filters", "channels", "n", "prune", "lateral", "drop_rate"),
    [
        (9, 6, 3, None, True, 0.0),
        (12, 12, 4, 1, True, 0.2),
        (9, 5, 4, 2, False, 0.0),  # uneven groups (3, 2, 2, 2) in and out
        (10, 7, 5, None, True, 0.0),
    ],
)
def test_forward_equals_reference_with_random_statistics(
    filters, channels, n, prune, lateral, drop_rate
):
    layer, x = _random_block(
        (2, 5, 6, channels), 1, filters, n, prune=prune, lateral=lateral, drop_rate=drop_rate
    )
    expected = reference_block(layer, x)
    assert 1.0 < np.abs(expected).max() < 100.0  # well-conditioned: 1e-5 is meaningful
    np.testing.assert_allclose(layer(x, training=False), expected, atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- hand computation


def _set_scaled_identity_ops(layer, scale):
    """Every node op becomes `x_res + c * x_op` on positive inputs, c = scale / (1+eps)^1.5.

    conv1 embeds the node's channels into the (wider) middle, conv2 is its centre tap identity,
    conv3 projects back times `scale`; BatchNorms keep their initial (identity up to 1/sqrt(1+eps))
    inference statistics.
    """
    for op in layer.node_ops:
        width, mid = op.out_channels, op.mid_channels
        assert mid >= width and op.shortcut_conv is None
        op.conv1.kernel.assign(np.eye(width, mid, dtype="float32")[None, None])
        centre = np.zeros((3, 3, mid, mid), "float32")
        centre[1, 1] = np.eye(mid)
        op.conv2.kernel.assign(centre)
        op.conv3.kernel.assign(scale * np.eye(mid, width, dtype="float32")[None, None])


def test_hand_computation_n3_or_sum_and_concat_laterals_double_counting():
    """N=3 full grammar, one channel per primitive, every node op made `g(op, res) = res + c*op`.

    Written out node by node from the paper's rules (Section 3.2 and 4.1) with our lateral
    directions: OR sums, AND concatenates, laterals enter the op input always and the residual
    only when the two nodes share no parent, residual children are weighted n(parent)/n(child).
    """
    scale = 0.5
    layer = AOGBlock(3, num_primitives=3, prune=None, lateral=True)
    x = np.random.default_rng(2).uniform(0.1, 1.0, (2, 4, 4, 3))
    layer(x.astype("float32"))
    _set_scaled_identity_ops(layer, scale)
    c = scale / (1 + EPS) ** 1.5

    def g(op, res):
        return res + c * op

    def cat(*parts):
        return np.concatenate(parts, axis=-1)

    x0, x1, x2 = x[..., 0:1], x[..., 1:2], x[..., 2:3]
    t0, t1, t2 = g(x0, x0), g(x1, x1), g(x2, x2)
    t01, t12, t012 = g(cat(x0, x1), cat(x0, x1)), g(cat(x1, x2), cat(x1, x2)), g(x, x)
    or0 = g(t0, t0)
    or1 = g(t1 + or0, t1)  # lateral OR[0]: shares parent AND[0|1] -> not in the residual
    or2 = g(t2 + or1, t2)  # lateral OR[1]: shares parent AND[1|2]
    # n(AND[1|2]) = 1, n(OR[1]) = n(OR[2]) = 2
    and12 = g(cat(or1, or2), cat(or1 / 2, or2 / 2))
    # lateral AND[1|2] has another parent (OR[1,2] vs OR[0,1]) -> also in the residual, weight 1
    and01 = g(cat(or0, or1) + and12, cat(or0 / 2, or1 / 2) + and12)
    or01 = g(t01 + and01, t01 + and01)
    or12 = g(t12 + and12 + or01, t12 + and12 + or01)  # lateral OR[0,1]: no shared parent
    and01_2 = g(cat(or01, or2), cat(or01, or2 / 2))
    and0_12 = g(cat(or0, or12) + and01_2, cat(or0 / 2, or12))  # lateral shares the root
    root = g(t012 + and0_12 + and01_2, t012 + and0_12 + and01_2)
    expected = root / np.sqrt(1 + EPS)

    np.testing.assert_allclose(layer(x.astype("float32"), training=False), expected, rtol=2e-5)


# ----------------------------------------------------------------------------- parameters


def _trainable(layer):
    return sum(int(np.prod(w.shape)) for w in layer.trainable_weights)


def _spec_node_params(cin, cout):
    """SPEC Appendix A: cin*m + 9m^2 + m*cout + 2(2m + cout) + [cin != cout](cin*cout + 2cout)."""
    m = max(4, int(np.floor(cout / 4 + 0.5)))
    return cin * m + 9 * m * m + m * cout + 2 * (2 * m + cout) + (
        cin * cout + 2 * cout if cin != cout else 0
    )


@pytest.mark.parametrize(
    ("filters", "channels", "n", "prune", "expected"),
    [
        (80, 32, 2, 1, 31_280),  # AOGNet-12M stage0.block0
        (384, 256, 4, 1, 1_419_936),  # stage2.block0
        (824, 512, 4, 2, 6_419_635),  # stage3.block0
    ],
)
def test_block_parameter_counts_match_spec(filters, channels, n, prune, expected):
    layer = AOGBlock(filters, n, prune=prune)
    layer.build((None, 8, 8, channels))
    assert _trainable(layer) == expected
    # every node op against the SPEC formula, widths from the grammar intervals
    out_groups, in_groups = _groups(filters, n), _groups(channels, n)
    for node in layer.grammar:
        cout = out_groups[node.end + 1] - out_groups[node.start]
        cin = in_groups[node.end + 1] - in_groups[node.start] if node.kind == "terminal" else cout
        assert _trainable(layer.node_op(node.id)) == _spec_node_params(cin, cout), node


def test_32_to_80_node_op_has_8800_parameters():
    layer = AOGBlock(80, 2, prune=1)
    layer.build((None, 8, 8, 32))
    root_terminal = layer.grammar.find("T[0,1]")
    op = layer.node_op(root_terminal.id)
    assert (op.in_channels, op.out_channels, op.mid_channels) == (32, 80, 20)
    assert _trainable(op) == 8_800


# ----------------------------------------------------------------------------- API


def test_sublayer_names_are_stable_and_readable():
    layer = AOGBlock(8, 2, prune=1, drop_rate=0.1, name="blk")
    layer.build((None, 4, 4, 4))
    names = [op.name for op in layer.node_ops]
    assert names == [f"node_{n.id}_{n.kind}" for n in layer.grammar]
    paths = {w.path for w in layer.weights}
    assert "blk/node_1_terminal/conv1/kernel" in paths
    assert "blk/node_1_terminal/shortcut_conv/kernel" in paths  # T[0,1]: 4 -> 8 channels
    assert not any(p.startswith("blk/node_0_or/shortcut") for p in paths)  # OR: 8 -> 8
    assert "blk/output_bn/gamma" in paths
    assert isinstance(layer.node_op(0).dropout, keras.layers.SpatialDropout2D)
    assert layer.node_op(0).dropout.rate == 0.1


def test_dropout_only_in_training():
    layer, x = _random_block((2, 5, 5, 8), 0, 8, 2, prune=1, drop_rate=0.5)
    inference = layer(x, training=False)
    np.testing.assert_allclose(inference, reference_block(layer, x), atol=1e-5, rtol=1e-5)
    assert not np.allclose(layer(x, training=True), layer(x, training=True))


def test_none_spatial_and_output_shape():
    layer = AOGBlock(9, 3, prune=1)
    inputs = keras.Input((None, None, 7))
    outputs = layer(inputs)
    assert outputs.shape == (None, None, None, 9)
    assert layer.compute_output_shape((3, 9, 9, 7)) == (3, 9, 9, 9)


@pytest.mark.parametrize(
    ("kwargs", "input_channels", "match"),
    [
        ({"filters": 8, "num_primitives": 0}, 8, "`num_primitives`.*Received: num_primitives=0"),
        ({"filters": 3, "num_primitives": 4}, 8, "`filters`.*Received: filters=3"),
        ({"filters": 8, "num_primitives": 4, "prune": 5}, 8, "`prune`.*Received: prune=5"),
        ({"filters": 8, "num_primitives": 4, "drop_rate": 1.0}, 8, "Received: drop_rate=1.0"),
        ({"filters": 8, "num_primitives": 4}, 3, "`num_primitives`.*Received: input_shape="),
        ({"filters": 10, "num_primitives": 4}, 8, "divisible.*Received: filters=10, num_pri"),
    ],
)
def test_bad_arguments(kwargs, input_channels, match):
    with pytest.raises(ValueError, match=match):
        AOGBlock(**kwargs).build((None, 4, 4, input_channels))


def test_config_keeps_every_argument():
    layer = AOGBlock(12, 3, prune=2, lateral=False, drop_rate=0.1, kernel_regularizer="l2")
    config = layer.get_config()
    assert {k: config[k] for k in ("filters", "num_primitives", "prune", "lateral", "drop_rate")} \
        == {"filters": 12, "num_primitives": 3, "prune": 2, "lateral": False, "drop_rate": 0.1}
    clone = AOGBlock.from_config(config)
    clone.build((None, 4, 4, 6))
    assert clone.grammar.counts() == aog.build_grammar(3, prune=2).counts()
    assert clone.lateral is False and clone.grammar.lateral_edges() == []
    assert len(clone.losses) == sum(1 for w in clone.trainable_weights if "kernel" in w.path)


@pytest.mark.parametrize("channels, n", [(824, 4), (10, 4), (7, 3), (5, 5), (3, 1)])
def test_channel_slices_follow_the_release_rule(channels, n):
    assert channel_slices(channels, n) == _groups(channels, n)
    assert near_equal_sizes(channels, n) == np.diff(_groups(channels, n)).tolist()


# ----------------------------------------------------------------------------- initialisation


def _same_shaped_kernel_pairs(layer):
    kernels = [w.numpy() for w in layer.weights if w.path.endswith("kernel")]
    return [
        (a, b) for a, b in itertools.combinations(kernels, 2) if a.shape == b.shape
    ]


@pytest.mark.parametrize(
    "initializer", ["he_normal", keras.initializers.HeNormal(seed=3), "glorot_uniform"]
)
def test_no_two_kernels_start_equal(initializer):
    """One initializer instance serves every node: each kernel must still get its own draw (39
    pairs of same-shaped kernels in this block)."""
    layer = AOGBlock(16, 2, prune=1, kernel_initializer=initializer)
    layer.build((None, 8, 8, 16))
    pairs = _same_shaped_kernel_pairs(layer)
    assert len(pairs) == 39
    assert not any(np.array_equal(a, b) for a, b in pairs)


def test_seeded_initializer_is_reproducible():
    def kernels():
        layer = AOGBlock(8, 2, kernel_initializer=keras.initializers.HeNormal(seed=5))
        layer.build((None, 4, 4, 4))
        return [w.numpy() for w in layer.weights if w.path.endswith("kernel")]

    for first, second in zip(kernels(), kernels(), strict=True):
        np.testing.assert_array_equal(first, second)


# ----------------------------------------------------------------------------- export


def exported_block():
    return _random_block((2, 9, 9, 8), 4, 12, 3, prune=1, drop_rate=0.1)


def test_converts_to_tflite_builtin_ops_and_matches():
    layer, x = exported_block()
    assert_relative_close(tflite_outputs(layer, x), layer(x, training=False), 1e-4)


@needs_onnx
def test_converts_to_onnx_and_matches():
    layer, x = exported_block()
    assert_relative_close(onnx_outputs(layer, x), layer(x, training=False), 1e-4)
