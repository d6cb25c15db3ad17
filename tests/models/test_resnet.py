"""ImageNet-style ResNets (torchvision v1.5): exact parameter counts, forward equal to an
independent plain-TF reference, what the conv/attention factories receive and where their layers
go, ZeroPadding folding, agreement with `convert`, the Keras Applications arguments."""

import keras
import numpy as np
import pytest
from keras import layers

from keras_structconv import convert
from keras_structconv.layers.conv_factory import ConvFactory, folds_zero_padding
from keras_structconv.models import ResNet18, ResNet50, ResNet101, build_resnet
from tests.models.resnet_reference import ReferenceResNet, randomize_batch_norms
from tests.toy_factories import ChannelScale, CopyConv2D, ExplicitPadConv2D, FoldingConv

BOTTLENECK_STAGES = {
    "ResNet50": [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)],
    "ResNet101": [(64, 3, 1), (128, 4, 2), (256, 23, 2), (512, 3, 2)],
}
BASIC_STAGES = [(64, 2, 1), (128, 2, 2), (256, 2, 2), (512, 2, 2)]


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def input_names(model, layer_name):
    inputs = keras.tree.flatten(model.get_layer(layer_name).input)
    return [tensor._keras_history.operation.name for tensor in inputs]


def images(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


class Recorder:
    """Factories recording what the builder hands them (`conv` folds if the wrapped one does)."""

    def __init__(self, conv_factory):
        self.templates = []  # (template, was it built, zero_padding or None)
        self.channels = []

        def conv(template, **kwargs):
            self.templates.append((template, template.built, kwargs.get("zero_padding")))
            return conv_factory(template, **kwargs)

        self.conv = ConvFactory(conv, folds_zero_padding=folds_zero_padding(conv_factory))

    def attention(self, channels):
        self.channels.append(channels)
        return ChannelScale()


def copy_factory(template):
    return CopyConv2D.from_config(template.get_config())


@pytest.fixture(scope="module")
def resnet50():
    keras.backend.clear_session()
    return ResNet50(input_shape=(64, 64, 3), classifier_activation=None)


@pytest.fixture(scope="module")
def resnet18():
    keras.backend.clear_session()
    return ResNet18(input_shape=(64, 64, 3), classifier_activation=None)


@pytest.fixture(scope="module")
def recorded_resnet50():
    keras.backend.clear_session()
    recorder = Recorder(copy_factory)
    model = ResNet50(input_shape=(64, 64, 3), conv=recorder.conv, attention=recorder.attention)
    return model, recorder


@pytest.fixture(scope="module")
def recorded_resnet18():
    keras.backend.clear_session()
    recorder = Recorder(FoldingConv())
    model = ResNet18(
        input_shape=(64, 64, 3),
        classifier_activation=None,
        conv=recorder.conv,
        attention=recorder.attention,
    )
    return model, recorder


def test_parameter_counts_equal_torchvision(resnet18, resnet50):
    assert trainable_count(resnet18) == 11_689_512
    assert trainable_count(resnet50) == 25_557_032
    keras.backend.clear_session()
    assert trainable_count(ResNet101(input_shape=(64, 64, 3))) == 44_549_160


@pytest.mark.parametrize("name", ["ResNet18", "ResNet50"])
def test_forward_equals_plain_tf_reference(name, resnet18, resnet50):
    model = resnet18 if name == "ResNet18" else resnet50
    randomize_batch_norms(model, seed=1)
    if name == "ResNet18":
        reference = ReferenceResNet(model, "imagenet", "basic", BASIC_STAGES)
    else:
        reference = ReferenceResNet(model, "imagenet", "bottleneck", BOTTLENECK_STAGES[name])
    x = images((2, 64, 64, 3))
    expected = reference(x).numpy()
    actual = model(x, training=False).numpy()
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_bottleneck_conv_factory_gets_every_3x3_with_the_stride(recorded_resnet50):
    model, recorder = recorded_resnet50
    names = [template.name for template, _, _ in recorder.templates]
    expected_names = [
        f"conv{stage + 2}_block{block + 1}_2_conv"
        for stage, (_, blocks, _) in enumerate(BOTTLENECK_STAGES["ResNet50"])
        for block in range(blocks)
    ]
    assert names == expected_names
    for template, was_built, zero_padding in recorder.templates:
        assert type(template) is layers.Conv2D and not was_built and zero_padding is None
        assert (template.kernel_size, template.use_bias) == ((3, 3), False)
        strided = template.name in {f"conv{s}_block1_2_conv" for s in (3, 4, 5)}
        assert template.strides == ((2, 2) if strided else (1, 1))
        assert template.padding == ("valid" if strided else "same")
        replacement = model.get_layer(template.name)
        assert isinstance(replacement, CopyConv2D) and replacement is not template
        if strided:  # not folding: the builder pads explicitly, as PyTorch does
            pad = model.get_layer(template.name.replace("_conv", "_pad"))
            assert input_names(model, template.name) == [pad.name]
            assert isinstance(pad, layers.ZeroPadding2D) and pad.padding == ((1, 1), (1, 1))


def test_attention_factory_on_each_residual_branch(recorded_resnet50, resnet50):
    model, recorder = recorded_resnet50
    expected_channels = [256] * 3 + [512] * 4 + [1024] * 6 + [2048] * 3
    assert recorder.channels == expected_channels
    assert trainable_count(model) == 25_557_032 + sum(expected_channels)
    assert input_names(model, "conv2_block1_add") == [
        "conv2_block1_0_bn",
        "conv2_block1_add_attention",
    ]
    assert input_names(model, "conv2_block2_add") == [
        "conv2_block1_out",
        "conv2_block2_add_attention",
    ]
    assert input_names(model, "conv2_block2_add_attention") == ["conv2_block2_3_bn"]


def test_basic_blocks_fold_padding_and_match_the_vanilla_model(recorded_resnet18, resnet18):
    model, recorder = recorded_resnet18
    names = [template.name for template, _, _ in recorder.templates]
    assert names == [
        f"conv{stage}_block{block}_{index}_conv"
        for stage in (2, 3, 4, 5)
        for block in (1, 2)
        for index in (1, 2)
    ]
    assert recorder.channels == [64, 64, 128, 128, 256, 256, 512, 512]
    for template, _, zero_padding in recorder.templates:
        strided = template.strides == (2, 2)
        assert zero_padding == (((1, 1), (1, 1)) if strided else None)
        assert isinstance(model.get_layer(template.name), ExplicitPadConv2D)
    assert sum(t.strides == (2, 2) for t, _, _ in recorder.templates) == 3
    assert not any(
        isinstance(layer, layers.ZeroPadding2D) and "block" in layer.name for layer in model.layers
    )
    # Same weights (attention at its identity init): same outputs as the vanilla ResNet-18.
    for layer in resnet18.layers:
        if layer.weights:
            model.get_layer(layer.name).set_weights(layer.get_weights())
    x = images((2, 64, 64, 3), seed=2)
    np.testing.assert_allclose(
        model(x, training=False), resnet18(x, training=False), rtol=1e-5, atol=1e-4
    )


def test_convert_selects_what_the_builder_hands_its_factory(recorded_resnet18, resnet18):
    _, recorder = recorded_resnet18
    _, report = convert(resnet18, conv=copy_factory, return_report=True)
    assert [entry.name for entry in report.replaced] == [t.name for t, _, _ in recorder.templates]


def test_keras_applications_arguments():
    keras.backend.clear_session()
    with pytest.raises(ValueError, match="Received: weights='imagenet'"):
        ResNet50(weights="imagenet")
    with pytest.raises(ValueError, match="Received: pooling='mean'"):
        ResNet18(include_top=False, pooling="mean")
    with pytest.raises(ValueError, match="Received: classes=0"):
        ResNet18(classes=0)
    features = ResNet18(include_top=False, input_shape=(32, 32, 3))
    pooled = ResNet18(include_top=False, pooling="max", input_shape=(32, 32, 3))
    pooled.set_weights(features.get_weights())
    x = images((2, 32, 32, 3), seed=3)
    np.testing.assert_allclose(
        pooled(x, training=False), np.max(features(x, training=False), axis=(1, 2)), rtol=1e-6
    )
    tensor = keras.Input((40, 40, 3), name="given")
    model = ResNet18(input_tensor=tensor, classes=7)
    assert model.inputs[0] is tensor and model.output_shape == (None, 7)
    assert ResNet18(include_top=False).input_shape == (None, None, None, 3)


@pytest.mark.parametrize("builder", [ResNet18, ResNet50, ResNet101])
def test_builders_refuse_positional_arguments(builder):
    with pytest.raises(TypeError, match="positional"):
        builder(False)


@pytest.mark.parametrize(
    "arguments, match",
    [
        ({"block": "dense"}, r"`block` must be one of 'basic', 'bottleneck'\. Received: block="),
        ({"stem": "tiny"}, r"`stem` must be one of .*Received: stem='tiny'"),
        ({"block": "basic", "groups": 32}, r"Basic blocks take neither.*Received: groups=32"),
        ({"shortcut": "A"}, r"Bottlenecks have projection shortcuts.*Received: shortcut='A'"),
        ({"block": "basic", "shortcut": "C"}, r"`shortcut` must be one of .*Received: shortcut="),
        ({"stage_filters": (8, 16)}, r"one entry per stage.*Received: stage_filters=\(8, 16\)"),
    ],
)
def test_build_resnet_refuses_inconsistent_configurations(arguments, match):
    config = {"block": "bottleneck", "blocks_per_stage": (1, 1, 1), "stage_filters": (8, 16, 32)}
    with pytest.raises(ValueError, match=match):
        build_resnet(**{**config, **arguments})
