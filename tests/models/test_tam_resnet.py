"""TAM variants: module counts, exact parameter overheads, placement on the residual branch, and
identity behaviour with open gates."""

import keras
import numpy as np
import pytest

from keras_structconv.layers import TreeAttention
from keras_structconv.models import (
    CifarResNet18,
    CifarResNet50,
    ResNet20,
    ResNet56,
    TAMCifarResNet18,
    TAMCifarResNet50,
    TAMEfficientNetB0,
    TAMMobileNetV2,
    TAMResNet20,
    TAMResNet50,
    TAMResNet56,
    add_tree_attention,
)

SMALL = (32, 32, 3)


def trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def modules(model):
    return [layer for layer in model.layers if isinstance(layer, TreeAttention)]


def spec_count(channels, g=2):
    """SPEC §3's parameter rule written out: per level in + out (+ out slopes below the top)."""
    total, n = 0, channels
    while n % g == 0 and n > 1:
        total += n + n // g + (n // g if n // g > 1 else 0)
        n //= g
    return total + (n + 1 if n > 1 else 0)


def neighbours(layer):
    """(producer, consumer) layer names around a module."""
    producer = layer._inbound_nodes[0].input_tensors[0]._keras_history.operation
    (consumer,) = [node.operation for node in layer._outbound_nodes]
    return producer, consumer


def open_gates(model):
    """Sets every module's last bias to +100: sigmoid(100) == 1 in float32, the module is x."""
    for layer in modules(model):
        weights = layer.get_weights()
        weights[-1] = np.full_like(weights[-1], 100.0)
        layer.set_weights(weights)


@pytest.fixture(scope="module")
def resnet50_pair():
    base = keras.applications.ResNet50(weights=None, input_shape=SMALL, classes=10)
    return base, add_tree_attention(base)


def test_tam_resnet50_counts(resnet50_pair):
    base, converted = resnet50_pair
    assert len(modules(converted)) == 16
    assert trainable(converted) - trainable(base) == 60_336
    assert sorted({layer.levels[0] for layer in modules(converted)}) == [256, 512, 1024, 2048]


def test_tam_resnet50_builder():
    model = TAMResNet50(input_shape=SMALL, classes=10, include_top=False, pooling="avg")
    assert model.name == "tam_resnet50"
    assert len(modules(model)) == 16
    assert model.output_shape == (None, 2048)


def test_tam_resnet50_placement(resnet50_pair):
    _, converted = resnet50_pair
    for layer in modules(converted):
        producer, consumer = neighbours(layer)
        stem = consumer.name[: -len("_add")]
        assert isinstance(consumer, keras.layers.Add) and consumer.name.endswith("_add")
        assert producer.name == f"{stem}_3_bn", layer.name  # after the branch's last BN


def test_open_gates_give_the_base_model(resnet50_pair):
    base, converted = resnet50_pair
    open_gates(converted)
    x = np.random.default_rng(0).standard_normal((2,) + SMALL).astype("float32")
    np.testing.assert_allclose(
        converted(x, training=False), base(x, training=False), rtol=1e-5, atol=1e-6
    )


def _after_dropout(producer):
    return isinstance(producer, keras.layers.Dropout)


def _after_projection_bn(producer):
    return producer.name.endswith("_project_BN")


@pytest.mark.parametrize(
    "tam_builder, application, count, extra, placed",
    [
        # EfficientNet: between the block's Dropout and the Add.
        (TAMEfficientNetB0, keras.applications.EfficientNetB0, 9, 3_982, _after_dropout),
        # MobileNetV2: after the block's projection BatchNorm.
        (TAMMobileNetV2, keras.applications.MobileNetV2, 10, 3_091, _after_projection_bn),
    ],
)
def test_keras_applications(tam_builder, application, count, extra, placed):
    base = application(weights=None, input_shape=SMALL, classes=10)
    model = tam_builder(input_shape=SMALL, classes=10)
    found = modules(model)
    assert len(found) == count
    expected = 0
    for layer in found:
        producer, consumer = neighbours(layer)
        assert placed(producer), producer.name
        assert isinstance(consumer, keras.layers.Add), consumer.name
        expected += spec_count(layer.levels[0])
    assert trainable(model) - trainable(base) == expected == extra


@pytest.mark.parametrize(
    "tam_builder, builder, count, extra",
    [(TAMCifarResNet18, CifarResNet18, 8, 7_640), (TAMCifarResNet50, CifarResNet50, 16, 60_336)],
)
def test_cifar_tam_resnets(tam_builder, builder, count, extra):
    model, base = tam_builder(classes=100), builder(classes=100)
    assert len(modules(model)) == count
    assert trainable(model) - trainable(base) == extra
    widths = sorted(layer.levels[0] for layer in modules(model))
    assert extra == sum(spec_count(c) for c in widths)
    # The overheads the README reports beside the paper's +0.00 % / +1.23 %.
    assert round(100 * extra / trainable(base), 2) == {7_640: 0.07, 60_336: 0.25}[extra]


@pytest.mark.parametrize(
    "tam_builder, builder, count, extra",
    [(TAMResNet20, ResNet20, 9, 1_299), (TAMResNet56, ResNet56, 27, 3_897)],
)
def test_he_cifar_tam_resnets(tam_builder, builder, count, extra):
    model, base = tam_builder(), builder()
    found = modules(model)
    assert len(found) == count
    for layer in found:
        _, consumer = neighbours(layer)
        assert isinstance(consumer, keras.layers.Add), consumer.name
    assert trainable(model) - trainable(base) == extra
    assert extra == sum(spec_count(layer.levels[0]) for layer in found)


def test_group_size_is_passed_through():
    model = TAMCifarResNet18(group_size=4, classes=10)
    assert {layer.group_size for layer in modules(model)} == {4}
    base = CifarResNet18(classes=10)
    assert trainable(model) - trainable(base) == 2 * sum(
        spec_count(c, 4) for c in (64, 128, 256, 512)
    )
