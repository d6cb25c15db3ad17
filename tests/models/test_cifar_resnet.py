"""CIFAR ResNets: exact parameter counts, forward equal to an independent plain-TF reference,
factories (every 3×3 conv but the stem; attention before each add), `.keras` round trip, and the
option-A shortcut layer through the shared layer harness."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_structconv import convert
from keras_structconv.models import CifarResNet18, CifarResNet50, ResNet20, ResNet56
from keras_structconv.models._blocks import OptionAShortcut
from tests.layer_harness import LayerCase, LayerHarness
from tests.models.resnet_reference import ReferenceResNet, randomize_batch_norms
from tests.toy_factories import ChannelScale, CopyConv2D

BUILDERS = {
    "ResNet20": ResNet20,
    "ResNet56": ResNet56,
    "CifarResNet18": CifarResNet18,
    "CifarResNet50": CifarResNet50,
}
WIDE = [64, 128, 256, 512]
REFERENCES = {
    "ResNet20": ("basic", [(16, 3, 1), (32, 3, 2), (64, 3, 2)], "A"),
    "CifarResNet18": ("basic", list(zip(WIDE, [2, 2, 2, 2], [1, 2, 2, 2], strict=True)), "B"),
    "CifarResNet50": ("bottleneck", list(zip(WIDE, [3, 4, 6, 3], [1, 2, 2, 2], strict=True)), "B"),
}


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def images(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


@pytest.fixture(scope="module")
def built():
    """Builds each (builder, classes) once for the whole module."""
    cache = {}

    def get(name, classes=10):
        if (name, classes) not in cache:
            cache[(name, classes)] = BUILDERS[name](classes=classes, classifier_activation=None)
        return cache[(name, classes)]

    return get


@pytest.mark.parametrize(
    "name, classes, expected",
    [
        ("ResNet20", 10, 269_722),
        ("ResNet56", 10, 853_018),
        ("CifarResNet18", 10, 11_173_962),
        ("CifarResNet50", 10, 23_520_842),
        ("CifarResNet18", 100, 11_220_132),
        ("CifarResNet50", 100, 23_705_252),
    ],
)
def test_parameter_counts(built, name, classes, expected):
    assert trainable_count(built(name, classes)) == expected


@pytest.mark.parametrize("name", list(REFERENCES))
def test_forward_equals_plain_tf_reference(built, name):
    model = built(name)
    randomize_batch_norms(model, seed=4)
    block, stages, shortcut = REFERENCES[name]
    reference = ReferenceResNet(model, "cifar", block, stages, shortcut)
    x = images((2, 32, 32, 3))
    expected = reference(x).numpy()
    actual = model(x, training=False).numpy()
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize(
    "builder, vanilla_count, convs, strided, channels",
    [
        (ResNet20, 269_722, 18, 2, [16] * 3 + [32] * 3 + [64] * 3),
        (ResNet56, 853_018, 54, 2, [16] * 9 + [32] * 9 + [64] * 9),
        (CifarResNet18, 11_173_962, 16, 3, [64] * 2 + [128] * 2 + [256] * 2 + [512] * 2),
        (CifarResNet50, 23_520_842, 16, 3, [256] * 3 + [512] * 4 + [1024] * 6 + [2048] * 3),
    ],
)
def test_factories_get_every_3x3_but_the_stem(builder, vanilla_count, convs, strided, channels):
    keras.backend.clear_session()
    templates, seen_channels = [], []

    def conv(template):
        templates.append(template)
        return CopyConv2D.from_config(template.get_config())

    def attention(width):
        seen_channels.append(width)
        return ChannelScale()

    model = builder(conv=conv, attention=attention)
    assert len(templates) == convs
    assert "conv1_conv" not in {t.name for t in templates}
    assert all(t.kernel_size == (3, 3) and not t.use_bias for t in templates)
    assert sum(t.strides == (2, 2) for t in templates) == strided
    assert all(isinstance(model.get_layer(t.name), CopyConv2D) for t in templates)
    assert seen_channels == channels
    assert trainable_count(model) == vanilla_count + sum(channels)


def test_convert_agrees_with_the_builder_on_resnet20(built):
    keras.backend.clear_session()
    names = []
    ResNet20(conv=lambda t: names.append(t.name) or CopyConv2D.from_config(t.get_config()))
    _, report = convert(
        built("ResNet20"), conv=lambda c: CopyConv2D.from_config(c.get_config()), return_report=True
    )
    assert [entry.name for entry in report.replaced] == names


def test_keras_save_load_round_trip(built, tmp_path):
    model = built("ResNet20")
    path = tmp_path / "resnet20.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    x = images((2, 32, 32, 3), seed=5)
    np.testing.assert_allclose(loaded(x, training=False), model(x, training=False), atol=1e-5)


# ------------------------------------------------------------------------ option-A shortcut
def option_a_reference(layer, x):
    x = x[:, :: layer.strides, :: layer.strides, :]
    extra = layer.filters - x.shape[-1]
    zeros = tf.zeros_like(x[..., :1])
    before = tf.repeat(zeros, extra // 2, axis=-1)
    after = tf.repeat(zeros, extra - extra // 2, axis=-1)
    return tf.concat([before, x, after], axis=-1)


class TestOptionAShortcutHarness(LayerHarness):
    # No weights: the layer cannot learn, so the overfitting check does not apply.
    case = LayerCase(
        factory=lambda: OptionAShortcut(9, strides=2),
        input_shape=(2, 7, 8, 4),
        reference=option_a_reference,
        overfit=False,
    )


def test_option_a_shortcut_errors():
    with pytest.raises(ValueError, match="Received: filters=2, input channels=4"):
        OptionAShortcut(2)(np.zeros((1, 4, 4, 4), "float32"))
    with pytest.raises(ValueError, match="Received: strides=0"):
        OptionAShortcut(8, strides=0)


@pytest.mark.parametrize("builder", list(BUILDERS.values()))
def test_builders_refuse_positional_arguments(builder):
    with pytest.raises(TypeError, match="positional"):
        builder(False)
