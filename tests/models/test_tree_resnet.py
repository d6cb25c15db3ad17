"""Tree-ResNets: exact parameter counts (the ResNet's plus the gates, derived below), which
convolutions became TreeConv2D (strides, folded padding, stem untouched), our builder against
`convert` on the same model (same outputs), Keras Applications' ResNet50 converted. (Training
steps of the layer run in the layer harness.)"""

import keras
import numpy as np
import pytest

from keras_structconv import convert
from keras_structconv.layers import ReferenceTreeConv2D, TreeConv2D, treeconv_factory
from keras_structconv.models import (
    ResNet18,
    TreeCifarResNet18,
    TreeResNet18,
    TreeResNet20,
    TreeResNet50,
    tree_resnet50_from_keras,
)


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def tree_layers(model):
    return [layer for layer in model.layers if isinstance(layer, TreeConv2D)]


def gates(channels, depth=3):
    return depth * (channels + 1)


# Bottleneck 3x3 inputs of ResNet-50: 64 x3, 128 x4, 256 x6, 512 x3.
RESNET50_GATES = 3 * gates(64) + 4 * gates(128) + 6 * gates(256) + 3 * gates(512)


def test_tree_resnet50_is_resnet50_plus_gates():
    model = TreeResNet50(input_shape=(32, 32, 3))
    assert RESNET50_GATES == 11_376
    assert trainable_count(model) == 25_557_032 + 11_376 == 25_568_408  # paper: 25.57M
    trees = tree_layers(model)
    assert len(trees) == 16
    assert all(t.depth == 3 and t.variant == "paper" and t.kernel_size == 3 for t in trees)
    strided = sorted(t.name for t in trees if t.strides == 2)
    assert strided == ["conv3_block1_2_conv", "conv4_block1_2_conv", "conv5_block1_2_conv"]
    assert not [layer.name for layer in model.layers if layer.name.endswith("_2_pad")]
    assert type(model.get_layer("conv1_conv")) is keras.layers.Conv2D


@pytest.mark.parametrize("depth", [1, 4])
def test_tree_resnet50_other_depths(depth):
    model = TreeResNet50(input_shape=(32, 32, 3), depth=depth, include_top=False)
    vanilla_without_top = 25_557_032 - (2048 * 1000 + 1000)
    assert trainable_count(model) == vanilla_without_top + RESNET50_GATES // 3 * depth


def test_keras_applications_resnet50_converted():
    model, report = tree_resnet50_from_keras(input_shape=(32, 32, 3), return_report=True)
    assert len(report.replaced) == 16
    # Keras' ResNet50 (v1, conv biases): 25,583,592 trainable; its 3x3 convs keep their biases.
    assert trainable_count(model) == 25_583_592 + RESNET50_GATES
    assert all(t.use_bias and t.strides == 1 for t in tree_layers(model))
    assert type(model.get_layer("conv1_conv")) is keras.layers.Conv2D


def test_builder_equals_convert_of_the_vanilla_builder():
    """TreeResNet18 (factory inside the builder) and convert(ResNet18, treeconv_factory) are the
    same network: same layers, and the same outputs with the same weights."""
    keras.utils.set_random_seed(0)
    built = TreeResNet18(input_shape=(40, 40, 3), classes=7)
    converted = convert(ResNet18(input_shape=(40, 40, 3), classes=7), conv=treeconv_factory())
    assert [layer.name for layer in built.layers] == [layer.name for layer in converted.layers]
    assert trainable_count(built) == trainable_count(converted)
    converted.set_weights(built.get_weights())
    x = np.random.default_rng(0).uniform(0, 255, (2, 40, 40, 3)).astype("float32")
    np.testing.assert_allclose(converted(x), built(x), atol=1e-5)


def test_cifar_tree_resnet20_count():
    # ResNet-20: 3x3 convs but the stem: 16-ch x6, 16->32 once, 32-ch x5, 32->64 once, 64-ch x5.
    model = TreeResNet20()
    expected_gates = 6 * gates(16) + gates(16) + 5 * gates(32) + gates(32) + 5 * gates(64)
    assert trainable_count(model) == 269_722 + expected_gates == 271_648
    assert len(tree_layers(model)) == 18


def test_cifar_resnet18_tree_count():
    model = TreeCifarResNet18()
    per_stage = [4 * gates(64), gates(64) + 3 * gates(128), gates(128) + 3 * gates(256),
                 gates(256) + 3 * gates(512)]
    assert trainable_count(model) == 11_173_962 + sum(per_stage)


def test_reference_variant_needs_channel_preserving_convs():
    with pytest.raises(ValueError, match="Received: filters=32, input channels=16"):
        TreeResNet20(variant="reference")


def test_reference_variant_builds_reference_layers():
    model = TreeResNet50(input_shape=(64, 64, 3), include_top=False, variant="reference")
    trees = tree_layers(model)
    assert len(trees) == 16
    assert all(type(t) is ReferenceTreeConv2D for t in trees)
