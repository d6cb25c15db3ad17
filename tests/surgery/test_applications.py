"""`convert` on keras.applications models: replacement and insertion counts, weight copying,
ZeroPadding2D folding, attention placement in EfficientNet, no shared layer or variable.

The keras.applications models are slow to build on 2 cores: each is built once per module, at
64×64 with weights=None (the counts do not depend on the input size).
"""

import keras
import numpy as np
import pytest
from keras import layers

from keras_structconv import convert
from tests.surgery.helpers import all_layers, input_names, random_images
from tests.toy_factories import ChannelScale, CopyConv2D, FoldingConv, copy_conv, scale_attention

APPLICATIONS = {
    # name: (replaced 3×3 convs, inserted modules)
    "ResNet50": (16, 16),
    "ResNet101": (33, 33),
    "ResNet50V2": (16, 16),
    "EfficientNetB0": (0, 9),
    "MobileNetV2": (0, 10),
}


@pytest.fixture(scope="module")
def applications():
    """Each application model (64×64, weights=None) and its conversion, built once."""
    built = {}
    for name in APPLICATIONS:
        keras.backend.clear_session()
        model = getattr(keras.applications, name)(weights=None, input_shape=(64, 64, 3))
        conv = FoldingConv() if name == "ResNet50V2" else copy_conv
        converted, report = convert(model, conv=conv, attention=scale_attention, return_report=True)
        built[name] = (model, converted, report, conv)
    return built


@pytest.mark.parametrize("name", list(APPLICATIONS))
def test_table_counts(applications, name):
    model, converted, report, _ = applications[name]
    replaced, inserted = APPLICATIONS[name]
    assert len(report.replaced) == replaced
    assert len(report.inserted) == inserted
    assert not report.skipped_adds
    adds = [layer for layer in model.layers if isinstance(layer, layers.Add)]
    assert {entry.add for entry in report.inserted} == {add.name for add in adds}
    # Each module adds one scale per channel of its residual branch.
    added = sum(entry.channels for entry in report.inserted)
    assert converted.count_params() == model.count_params() + added
    for entry in report.inserted:
        assert isinstance(converted.get_layer(entry.name), ChannelScale)


@pytest.mark.parametrize("name", ["ResNet50", "ResNet101"])
def test_resnet_v1_replaces_stride1_same_biased_3x3(applications, name):
    model, converted, report, _ = applications[name]
    for entry in report.replaced:
        old = model.get_layer(entry.name)
        assert (old.kernel_size, old.strides, old.padding, old.use_bias) == (
            (3, 3),
            (1, 1),
            "same",
            True,
        )
        assert isinstance(converted.get_layer(entry.name), CopyConv2D)
        assert entry.weights_copied and entry.folded_padding is None


def test_resnet50v2_folds_the_explicit_padding(applications):
    model, converted, report, factory = applications["ResNet50V2"]
    strided = [e for e in report.replaced if model.get_layer(e.name).strides == (2, 2)]
    assert len(strided) == 3
    for entry in report.replaced:
        old = model.get_layer(entry.name)
        assert old.padding == "valid"
        (pad_name,) = input_names(model, entry.name)
        assert isinstance(model.get_layer(pad_name), layers.ZeroPadding2D)
        assert entry.folded_padding == pad_name
        with pytest.raises(ValueError):
            converted.get_layer(pad_name)  # folded away
        assert input_names(converted, entry.name) != [pad_name]
    assert factory.folded_paddings == [((1, 1), (1, 1))] * 16
    images = random_images((2, 64, 64, 3))
    np.testing.assert_allclose(converted(images), model(images), rtol=1e-5, atol=1e-6)


def test_conv_subclass_replacement_gives_equal_outputs(applications):
    # The fixture's attention modules start as an exact identity (scale 1.0).
    model, converted, _, _ = applications["ResNet50"]
    images = random_images((2, 64, 64, 3))
    expected = model(images, training=False)
    np.testing.assert_array_equal(converted(images, training=False), expected)
    # The replaced conv is really on the path: changing its weights changes the outputs.
    layer = converted.get_layer("conv3_block1_2_conv")
    assert isinstance(layer, CopyConv2D)
    kernel = layer.kernel.numpy()
    try:
        layer.kernel.assign(kernel * 2.0)
        assert not np.allclose(converted(images, training=False), expected)
    finally:
        layer.kernel.assign(kernel)


def test_no_layer_or_variable_shared(applications):
    model, converted, _, _ = applications["EfficientNetB0"]
    assert not {id(x) for x in all_layers(model)} & {id(x) for x in all_layers(converted)}
    assert not {id(v) for v in model.weights} & {id(v) for v in converted.weights}
    old_names = [layer.name for layer in model.layers]
    new_names = [layer.name for layer in converted.layers]
    assert len(set(new_names)) == len(new_names)
    assert set(old_names) <= set(new_names)


def test_efficientnet_attention_between_dropout_and_add(applications):
    model, converted, report, _ = applications["EfficientNetB0"]
    for entry in report.inserted:
        assert isinstance(model.get_layer(entry.branch), layers.Dropout)
        assert input_names(converted, entry.name) == [entry.branch]
        assert entry.name in input_names(converted, entry.add)
