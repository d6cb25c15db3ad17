"""Tests of `keras_structconv.convert`: counts on keras.applications models, weight copying,
ZeroPadding2D folding, attention placement, nested/Sequential models, export, errors.

The keras.applications models are slow to build on 2 cores: each is built once per module, at
64×64 with weights=None (the counts do not depend on the input size).
"""

import keras
import numpy as np
import pytest
from keras import layers

from keras_structconv import convert
from keras_structconv.models import ResNet20
from tests.toy_factories import (
    ChannelScale,
    CopyConv2D,
    FoldingConv,
    copy_conv,
    scale_attention,
)


def all_layers(model):
    return list(model._flatten_layers(include_self=True, recursive=True))


def random_images(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, size=shape).astype("float32")


def input_names(model, layer_name):
    """Names of the layers producing the inputs of `layer_name` in `model`."""
    inputs = keras.tree.flatten(model.get_layer(layer_name).input)
    return [tensor._keras_history.operation.name for tensor in inputs]


# ------------------------------------------------------------------ keras.applications table
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


# ------------------------------------------------------------- placement on hand-made graphs
def conv_bn(x, name, filters=4, kernel_size=3):
    x = layers.Conv2D(filters, kernel_size, padding="same", name=f"{name}_conv")(x)
    return layers.BatchNormalization(name=f"{name}_bn")(x)


def placement_model(kind, swap):
    """Add(shortcut, branch) in the argument order `swap` picks; outputs add, shortcut, branch."""
    inputs = keras.Input((8, 8, 4), name="image")
    trunk = layers.ReLU(name="trunk")(conv_bn(inputs, "stem"))
    if kind == "identity":
        shortcut = trunk
        branch = conv_bn(layers.ReLU(name="b1_relu")(conv_bn(trunk, "b1")), "b2")
    elif kind == "projection":
        shortcut = conv_bn(trunk, "proj", kernel_size=1)
        branch = conv_bn(layers.ReLU(name="b1_relu")(conv_bn(trunk, "b1")), "b2")
    else:  # "shorter": both branches are layer stacks; the shorter one is the shortcut
        shortcut = layers.ReLU(name="short_relu")(conv_bn(trunk, "short"))
        branch = layers.ReLU(name="long_relu")(conv_bn(conv_bn(trunk, "long1"), "long2"))
    pair = [branch, shortcut] if swap else [shortcut, branch]
    added = layers.Add(name="add")(pair)
    return keras.Model(inputs, [added, shortcut, branch], name=f"{kind}_{swap}")


@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize(
    "kind, branch, shortcut, rule",
    [
        ("identity", "b2_bn", "trunk", "ancestor"),
        ("projection", "b2_bn", "proj_bn", "nearest common ancestor"),
        ("shorter", "long_relu", "short_relu", "nearest common ancestor"),
    ],
)
def test_attention_goes_on_the_residual_branch(kind, branch, shortcut, rule, swap):
    model = placement_model(kind, swap)
    converted, report = convert(
        model, attention=lambda channels: ChannelScale(2.0), return_report=True
    )
    (entry,) = report.inserted
    assert (entry.name, entry.add, entry.branch, entry.shortcut, entry.rule) == (
        "add_attention",
        "add",
        branch,
        shortcut,
        rule,
    )
    expected_inputs = [shortcut, "add_attention"]
    assert input_names(converted, "add") == (expected_inputs[::-1] if swap else expected_inputs)
    assert input_names(converted, "add_attention") == [branch]
    # Numerically: add = shortcut + 2 * branch, with the original's tensors.
    images = random_images((2, 8, 8, 4))
    _, old_shortcut, old_branch = model(images)
    new_added, _, _ = converted(images)
    np.testing.assert_allclose(new_added, old_shortcut + 2.0 * old_branch, rtol=1e-5, atol=1e-5)


def test_operator_add_is_handled_like_the_layer():
    inputs = keras.Input((8, 8, 4), name="image")
    trunk = layers.ReLU(name="trunk")(inputs)
    branch = conv_bn(trunk, "b1")
    model = keras.Model(inputs, branch + trunk)
    _, report = convert(model, attention=scale_attention, return_report=True)
    (entry,) = report.inserted
    assert (entry.branch, entry.shortcut, entry.rule) == ("b1_bn", "trunk", "ancestor")


def test_unique_attention_names():
    inputs = keras.Input((8, 8, 4), name="image")
    trunk = layers.ReLU(name="add_attention")(inputs)  # takes the name the module would get
    added = layers.Add(name="add")([trunk, conv_bn(trunk, "b1")])
    converted, report = convert(
        keras.Model(inputs, added), attention=scale_attention, return_report=True
    )
    assert report.inserted[0].name == "add_attention_1"
    assert isinstance(converted.get_layer("add_attention_1"), ChannelScale)


def test_non_residual_add_is_skipped_and_reported():
    first = keras.Input((8, 8, 4), name="first")
    second = keras.Input((8, 8, 4), name="second")
    added = layers.Add(name="add")([conv_bn(first, "a"), conv_bn(second, "b")])
    _, report = convert(
        keras.Model([first, second], added), attention=scale_attention, return_report=True
    )
    assert not report.inserted
    assert [entry.name for entry in report.skipped_adds] == ["add"]
    assert "no common ancestor" in str(report)


# --------------------------------------------------------------------------------- selection
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


# ------------------------------------------------------------------ training, export, reload
@pytest.fixture(scope="module")
def small_pair():
    keras.backend.clear_session()
    model = ResNet20(input_shape=(16, 16, 3), classes=4)
    converted = convert(model, conv=copy_conv, attention=lambda c: ChannelScale(1.5))
    return model, converted


def test_original_weights_untouched_by_training_the_converted(small_pair):
    model, converted = small_pair
    before = [w.copy() for w in model.get_weights()]
    trainable_before = [w.numpy().copy() for w in converted.trainable_weights]
    converted.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    images = random_images((8, 16, 16, 3))
    labels = np.arange(8) % 4
    converted.fit(images, labels, epochs=1, batch_size=8, verbose=0)
    # The converted model did train (every trainable weight moved, attention scales included)...
    for old, variable in zip(trainable_before, converted.trainable_weights, strict=True):
        assert not np.array_equal(old, variable.numpy()), variable.path
    # ...and the original, moving statistics included, did not.
    for old, now in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, now)


def test_export_and_reload(small_pair, tmp_path):
    _, converted = small_pair
    path = str(tmp_path / "converted")
    converted.export(path, verbose=False)
    reloaded = keras.layers.TFSMLayer(path, call_endpoint="serve", dtype="float32")
    images = random_images((3, 16, 16, 3))
    np.testing.assert_allclose(
        reloaded(images), converted(images, training=False), rtol=1e-5, atol=1e-6
    )


# ---------------------------------------------------------------------------------- errors
class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.conv = layers.Conv2D(4, 3)

    def call(self, inputs):
        return self.conv(inputs)


def test_subclassed_model_is_refused():
    model = Subclassed()
    model(np.zeros((1, 8, 8, 3), "float32"))
    with pytest.raises(ValueError, match="subclassed model.*Received: model of type Subclassed"):
        convert(model, conv=copy_conv)


def test_attention_on_sequential_is_refused():
    model = keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(4, 3)])
    with pytest.raises(ValueError, match="`attention` is not supported on a Sequential"):
        convert(model, attention=scale_attention)


def test_add_with_three_inputs_is_refused():
    inputs = keras.Input((8, 8, 4))
    trunk = layers.ReLU()(inputs)
    added = layers.Add(name="add3")([trunk, conv_bn(trunk, "a"), conv_bn(trunk, "b")])
    model = keras.Model(inputs, added)
    with pytest.raises(ValueError, match="exactly two inputs.*'add3' with 3 inputs"):
        convert(model, attention=scale_attention)
    # Without attention, a three-input add is fine.
    assert convert(model, conv=copy_conv).count_params() == model.count_params()


def test_ambiguous_add_is_refused():
    inputs = keras.Input((8, 8, 4))
    trunk = layers.ReLU()(inputs)
    added = layers.Add(name="tie")([conv_bn(trunk, "a"), conv_bn(trunk, "b")])
    with pytest.raises(ValueError, match="equally many layers.*'tie'"):
        convert(keras.Model(inputs, added), attention=scale_attention)


def test_factory_must_return_a_new_layer():
    model = keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(4, 3), layers.Conv2D(4, 3)])
    with pytest.raises(ValueError, match="`conv` must return a new keras Layer"):
        convert(model, conv=lambda old: old)
    with pytest.raises(ValueError, match="`conv` must be callable"):
        convert(model, conv="psconv")
