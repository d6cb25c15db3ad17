"""Attention before residual adds (`keras_structconv.surgery._attention`): which input is the
branch on hand-made graphs, operator adds, unique module names, skipped and refused adds."""

import keras
import numpy as np
import pytest
from keras import layers

from keras_structconv import convert
from tests.surgery.helpers import conv_bn, input_names, random_images
from tests.toy_factories import ChannelScale, copy_conv, scale_attention


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
