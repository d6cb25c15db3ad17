"""The rewriting (`keras_structconv.surgery._rewriter`): default and custom selection, Sequential
models with padding folding, nested models rewritten recursively."""

import keras
import numpy as np
from keras import layers

from keras_structconv import convert
from keras_structconv.models import ResNet20
from tests.surgery.helpers import all_layers, random_images
from tests.toy_factories import (
    ChannelScale,
    CopyConv2D,
    FoldingConv,
    copy_conv,
    scale_attention,
)


def test_default_select_skips_the_stem_behind_preprocessing():
    inputs = keras.Input((8, 8, 3), name="image")
    x = layers.Rescaling(1 / 255.0, name="rescale")(inputs)
    x = layers.ZeroPadding2D(1, name="stem_pad")(x)
    x = layers.Conv2D(4, 3, name="stem_conv")(x)
    x = layers.Conv2D(4, 3, padding="same", name="body_conv")(x)
    x = layers.Conv2D(4, 1, name="pointwise")(x)
    x = layers.DepthwiseConv2D(3, padding="same", name="depthwise")(x)
    model = keras.Model(inputs, x)
    _, report = convert(model, conv=copy_conv, return_report=True)
    assert [entry.name for entry in report.replaced] == ["body_conv"]
    # A custom select decides alone, stem included; it sees depthwise convs too.
    seen = []

    def select(layer):
        seen.append(layer.name)
        return layer.kernel_size == (1, 1)

    _, report = convert(model, conv=copy_conv, select=select, return_report=True)
    assert [entry.name for entry in report.replaced] == ["pointwise"]
    assert seen == ["stem_conv", "body_conv", "pointwise", "depthwise"]


def test_sequential_conv_replacement_with_folding():
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            layers.Conv2D(4, 3, padding="same", name="stem"),
            layers.ZeroPadding2D(1, name="pad"),
            layers.Conv2D(4, 3, strides=2, name="body"),
            layers.Conv2D(2, 3, name="last"),
        ],
        name="seq",
    )
    factory = FoldingConv()
    converted, report = convert(model, conv=factory, return_report=True)
    assert isinstance(converted, keras.Sequential)
    assert [(e.name, e.folded_padding) for e in report.replaced] == [
        ("body", "pad"),
        ("last", None),
    ]
    assert [layer.name for layer in converted.layers] == ["stem", "body", "last"]
    images = random_images((2, 8, 8, 3))
    np.testing.assert_allclose(converted(images), model(images), rtol=1e-5, atol=1e-4)


def test_nested_model_is_rewritten_recursively():
    backbone = ResNet20(include_top=False, name="backbone")
    inputs = keras.Input((32, 32, 3), name="image")
    features = backbone(inputs)
    outputs = layers.Dense(3, name="head")(layers.GlobalAveragePooling2D(name="gap")(features))
    model = keras.Model(inputs, outputs, name="outer")
    converted, report = convert(
        model, conv=copy_conv, attention=scale_attention, return_report=True
    )
    assert len(report.replaced) == 18 and len(report.inserted) == 9
    assert all(entry.name.startswith("backbone/") for entry in report.replaced)
    inner = converted.get_layer("backbone")
    assert isinstance(inner.get_layer("conv3_block1_1_conv"), CopyConv2D)
    assert isinstance(inner.get_layer("conv3_block1_add_attention"), ChannelScale)
    assert not {id(x) for x in all_layers(model)} & {id(x) for x in all_layers(converted)}
    images = random_images((2, 32, 32, 3))
    np.testing.assert_allclose(converted(images), model(images), rtol=1e-5, atol=1e-5)
