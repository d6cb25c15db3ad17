"""AOGNets: exact parameter counts of the released networks, stage schedule, Applications API."""

import keras
import numpy as np
import pytest

from keras_structconv.layers import AOGBlock
from keras_structconv.models import AOGNet, AOGNet12M, AOGNet40M, AOGNetCIFAR
from keras_structconv.models.aognet import stage_widths


def _trainable(layer):
    return sum(int(np.prod(w.shape)) for w in layer.trainable_weights)


# Counts do not depend on the input size: build the big models once, small.
@pytest.fixture(scope="module")
def aognet12m():
    return AOGNet12M(input_shape=(64, 64, 3))


@pytest.fixture(scope="module")
def aognet40m():
    return AOGNet40M(input_shape=(64, 64, 3))


def test_aognet12m_trainable_parameters(aognet12m):
    assert _trainable(aognet12m) == 12_259_099


def test_aognet40m_trainable_parameters(aognet40m):
    assert _trainable(aognet40m) == 40_153_004


def test_aognet12m_blocks_match_spec(aognet12m):
    blocks = {layer.name: layer for layer in aognet12m.layers if isinstance(layer, AOGBlock)}
    assert list(blocks) == [
        "stage0_block0",
        "stage0_block1",
        "stage1_block0",
        "stage1_block1",
        "stage2_block0",
        "stage2_block1",
        "stage3_block0",
    ]
    widths = {
        name: (b.input.shape[-1], b.filters, b.num_primitives, b.prune)
        for name, b in blocks.items()
    }
    assert widths["stage0_block0"] == (32, 80, 2, 1)
    assert widths["stage1_block1"] == (192, 256, 2, 2)
    assert widths["stage2_block0"] == (256, 384, 4, 1)
    assert widths["stage3_block0"] == (512, 824, 4, 2)
    assert _trainable(blocks["stage0_block0"]) == 31_280
    assert _trainable(blocks["stage2_block0"]) == 1_419_936
    assert _trainable(blocks["stage3_block0"]) == 6_419_635
    assert all(
        b.drop_rate == (0.1 if n.startswith(("stage2", "stage3")) else 0.0)
        for n, b in blocks.items()
    )
    assert all(b.lateral for b in blocks.values())


def test_aognet12m_stem_transitions_and_head(aognet12m):
    get = aognet12m.get_layer
    assert get("stem1_conv").strides == (2, 2) and get("stem1_conv").filters == 16
    assert get("stem3_conv").filters == 32
    assert get("stem_pool").output.shape[1:] == (16, 16, 32)  # 64 / 4
    for stage, channels in ((1, 128), (2, 256), (3, 512)):
        conv = get(f"stage{stage}_transition_conv")
        assert conv.kernel_size == (1, 1) and conv.filters == channels
        assert isinstance(get(f"stage{stage}_transition_pool"), keras.layers.AveragePooling2D)
    assert aognet12m.get_layer("stage3_block0").output.shape[1:] == (2, 2, 824)
    assert aognet12m.output_shape == (None, 1000)
    bns = [lr for lr in aognet12m.layers if isinstance(lr, keras.layers.BatchNormalization)]
    assert all(bn.momentum == 0.9 and bn.epsilon == 1e-5 for bn in bns)


def test_stage_channel_schedule():
    # SPEC: step = (out - in) // blocks rounded to the nearer multiple of N (lower on a tie),
    # last block exactly `out`.
    assert stage_widths(32, 128, 2, 2) == [80, 128]
    assert stage_widths(448, 896, 3, 4) == [596, 744, 896]  # step 149 -> 148
    assert stage_widths(10, 20, 1, 4) == [20]
    assert stage_widths(0, 18, 3, 4) == [4, 8, 18]  # step 6: tie between 4 and 8 -> 4
    assert stage_widths(0, 21, 3, 4) == [8, 16, 21]  # step 7 -> 8


def test_cifar_aognet_parameters_and_forward():
    model = AOGNetCIFAR(classes=100)
    assert _trainable(model) == 812_695
    assert model.input_shape == (None, 32, 32, 3)
    assert model.get_layer("stage2_block0").output.shape[1:] == (8, 8, 248)
    x = np.random.default_rng(0).uniform(0, 1, (2, 32, 32, 3)).astype("float32")
    probabilities = np.asarray(model(x, training=False))
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, rtol=1e-5)
    # the head is GAP + Dense: logits from the last block's pooled features by hand
    features = keras.Model(model.input, model.get_layer("avg_pool").output)(x, training=False)
    dense = model.get_layer("predictions")
    logits = np.asarray(features) @ np.asarray(dense.kernel) + np.asarray(dense.bias)
    expected = np.exp(logits - logits.max(-1, keepdims=True))
    np.testing.assert_allclose(
        probabilities, expected / expected.sum(-1, keepdims=True), rtol=1e-4, atol=1e-6
    )


def _tiny(**kwargs):
    return AOGNet(
        filters=[8, 16, 24],
        num_primitives=[2, 2],
        blocks=[1, 1],
        prune_modes=[1, 2],
        stem="cifar",
        **kwargs,
    )


def test_applications_signature_without_top():
    model = _tiny(include_top=False, pooling="avg", input_shape=(32, 32, 3))
    assert model.output_shape == (None, 24)
    features = _tiny(include_top=False)
    assert features.input_shape == (None, None, None, 3)
    assert features.output_shape == (None, None, None, 24)
    tensor = keras.Input((40, 40, 3))
    on_tensor = _tiny(input_tensor=tensor, pooling="max", include_top=False)
    assert on_tensor.inputs[0] is tensor and on_tensor.output_shape == (None, 24)
    logits = _tiny(classes=7, classifier_activation=None)
    assert logits.input_shape == (None, 32, 32, 3) and logits.output_shape == (None, 7)
    assert logits.get_layer("predictions").activation is keras.activations.linear


@pytest.mark.parametrize(
    ("builder", "kwargs", "match"),
    [
        (
            AOGNet12M,
            {"weights": "imagenet"},
            "`weights`.*does not download.*Received: weights='imagenet'",
        ),
        (AOGNetCIFAR, {"weights": "/tmp/w.h5"}, "Received: weights='/tmp/w.h5'"),
        (AOGNetCIFAR, {"include_top": False, "pooling": "sum"}, "Received: pooling='sum'"),
        (AOGNetCIFAR, {"input_shape": (32, 32)}, "Received: input_shape=\\(32, 32\\)"),
    ],
)
def test_bad_arguments(builder, kwargs, match):
    with pytest.raises(ValueError, match=match):
        builder(**kwargs)


def test_generic_builder_checks_stage_lists():
    with pytest.raises(ValueError, match="`blocks` needs one entry per stage.*Received: blocks="):
        AOGNet(filters=[8, 16, 32], num_primitives=[2, 2], blocks=[1], prune_modes=[1, 1])


@pytest.mark.parametrize("builder", [AOGNet, AOGNet12M, AOGNet40M, AOGNetCIFAR])
def test_builders_refuse_positional_arguments(builder):
    with pytest.raises(TypeError, match="positional"):
        builder([8, 16, 24])
