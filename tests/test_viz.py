"""keras_structconv.viz: explanation maps taken from the TreeConv2D's actual input in a model
(also inside a nested model), the figure, and `save_explanation_figure` end to end (.keras +
image file)."""

import keras
import numpy as np
import pytest
from PIL import Image

from keras_structconv.layers import TreeConv2D
from keras_structconv.viz import (
    explanation_maps,
    plot_explanation,
    save_explanation_figure,
    tree_conv_layers,
)


def _tiny_model(name="tiny"):
    inputs = keras.Input((16, 12, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", name="stem")(x)
    x = TreeConv2D(6, depth=2, name="tree_a", gate_bias_initializer="random_normal")(x)
    x = TreeConv2D(8, depth=3, strides=2, name="tree_b", gate_bias_initializer="random_normal")(x)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, outputs, name=name)


def _images(n=2, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, 16, 12, 3)).astype("float32")


def test_maps_are_those_of_the_layer_input():
    model = _tiny_model()
    images = _images()
    maps, name = explanation_maps(model, images)
    assert name == "tree_b"  # default: the last TreeConv2D
    features = keras.Model(model.input, model.get_layer("tree_a").output)(images)
    np.testing.assert_allclose(maps, model.get_layer("tree_b").explain(features), atol=1e-6)
    assert maps.shape == (2, 8, 6, 4)
    np.testing.assert_allclose(maps.sum(-1), 1.0, atol=1e-6)
    first, _ = explanation_maps(model, images, layer="tree_a")
    stem = keras.Model(model.input, model.get_layer("stem").output)(images)
    np.testing.assert_allclose(first, model.get_layer("tree_a").explain(stem), atol=1e-6)


def test_maps_inside_a_nested_model():
    inner = _tiny_model("inner")
    inputs = keras.Input((16, 12, 3))
    outer = keras.Model(inputs, keras.layers.Dense(3)(inner(inputs)), name="outer")
    assert [layer.name for layer in tree_conv_layers(outer)] == ["tree_a", "tree_b"]
    images = _images(1, 3)
    nested, _ = explanation_maps(outer, images, layer="tree_b")
    direct, _ = explanation_maps(inner, images, layer="tree_b")
    np.testing.assert_allclose(nested, direct, atol=1e-6)


def test_bad_layer_or_model_without_tree_conv():
    with pytest.raises(ValueError, match="Received: layer='stem'"):
        explanation_maps(_tiny_model(), _images(), layer="stem")
    inputs = keras.Input((8, 8, 3))
    plain = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs))
    with pytest.raises(ValueError, match="has no TreeConv2D layer"):
        explanation_maps(plain, np.zeros((1, 8, 8, 3), "float32"))


def test_figure_has_the_input_and_one_panel_per_leaf():
    maps = np.random.default_rng(0).dirichlet(np.ones(4), size=(4, 3)).astype("float32")
    figure = plot_explanation(_images(1)[0], maps, title="layer")
    image_axes = [axis for axis in figure.axes if axis.get_images()]
    assert len(image_axes) == 5
    titles = [axis.get_title() for axis in image_axes]
    assert titles == ["input", "leaf 0: ρ0", "leaf 1: (1-ρ0)ρ1", "leaf 2: (1-ρ0)(1-ρ1)ρ2",
                      "leaf 3: (1-ρ0)(1-ρ1)(1-ρ2)"]
    # the overlay of leaf 2 is its map upsampled (nearest) to the 16x12 image
    overlay = image_axes[3].get_images()[1].get_array()
    np.testing.assert_allclose(overlay, np.repeat(np.repeat(maps[..., 2], 4, 0), 4, 1))
    with pytest.raises(ValueError, match="Received: maps.shape"):
        plot_explanation(_images(1)[0], maps[..., 0])


def test_save_explanation_figure_end_to_end(tmp_path):
    model = _tiny_model()
    model.save(tmp_path / "tiny.keras")
    image = np.random.default_rng(1).integers(0, 255, (40, 30, 3)).astype("uint8")
    Image.fromarray(image).save(tmp_path / "image.png")
    out = save_explanation_figure(
        tmp_path / "tiny.keras", tmp_path / "image.png", tmp_path / "maps.png", layer="tree_a"
    )
    assert out == str(tmp_path / "maps.png")
    with Image.open(out) as saved:
        assert saved.format == "PNG" and saved.size[0] > saved.size[1] > 100


def test_structconv_explain_command(tmp_path, capsys):
    from keras_structconv import cli

    _tiny_model().save(tmp_path / "tiny.keras")
    image = np.random.default_rng(2).integers(0, 255, (16, 12, 3)).astype("uint8")
    Image.fromarray(image).save(tmp_path / "image.png")
    output = tmp_path / "explain.png"
    argv = ["explain", str(tmp_path / "tiny.keras"), str(tmp_path / "image.png"), "-o", str(output)]
    assert cli.main(argv) == 0
    assert f"wrote {output}" in capsys.readouterr().out
    with Image.open(output) as saved:
        assert saved.format == "PNG"
