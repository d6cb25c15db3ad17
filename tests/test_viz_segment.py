"""`structconv segment` and its drawing helpers in viz.py: leaf-cell outlines on a hand-made
quadtree, the figure, and the command on a tiny saved QGN (prediction checked against the model
run on the same padded, standardised image)."""

import numpy as np
import pytest
from PIL import Image

from keras_structconv import cli, viz
from keras_structconv.datasets import camvid
from keras_structconv.models import QGN
from tests.conftest import needs_quadtree_reload


def test_leaf_cell_edges_outline_every_leaf():
    levels = np.zeros((4, 4), int)
    levels[:2, :2] = 1  # one 2x2 leaf at level 1, twelve full-resolution leaves
    expected = np.ones((4, 4), bool)
    expected[0, 0] = False  # inside the 2x2 cell: its right and lower neighbours share it
    expected[3, 3] = False  # no right or lower neighbour
    np.testing.assert_array_equal(viz.leaf_cell_edges(levels), expected)
    np.testing.assert_array_equal(viz.leaf_cell_edges(np.full((4, 4), 2)), np.zeros((4, 4)))


def test_plot_segmentation_panels_and_errors():
    classes = np.array([[0, 1], [2, 10]])
    figure = viz.plot_segmentation(
        np.zeros((2, 2, 3)), classes, np.zeros((2, 2), int),
        class_names=list(camvid.CLASS_NAMES), num_levels=3, title="t",
    )
    assert [axis.get_title() for axis in figure.axes] == [
        "input", "prediction", "quadtree leaves (level of each cell)"
    ]
    np.testing.assert_allclose(viz.class_colors(11)[3], np.array([128, 64, 128]) / 255)
    assert viz.class_colors(3).shape == (3, 3)
    with pytest.raises(ValueError, match="same height and width"):
        viz.plot_segmentation(np.zeros((3, 2, 3)), classes, np.zeros((2, 2), int))


@needs_quadtree_reload
def test_segment_command_on_a_saved_qgn(tmp_path, capsys):
    model = QGN(11, encoder="resnet18", levels=4, input_shape=(32, 32, 3),
                decoder_filters=(8, 8, 8), decoder_units=(1, 1, 1), top_filters=16)
    model_path = tmp_path / "qgn.keras"
    model.save(model_path)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (20, 28, 3), dtype=np.uint8)  # smaller than 32x32: padded
    image_path = tmp_path / "frame.png"
    Image.fromarray(pixels).save(image_path)

    output = tmp_path / "out.png"
    assert cli.main(["segment", str(model_path), str(image_path), "-o", str(output)]) == 0
    assert "wrote" in capsys.readouterr().out
    with Image.open(output) as drawn:
        assert drawn.size[0] > drawn.size[1] > 0

    _, prediction = viz.save_segmentation_figure(model_path, image_path, tmp_path / "again.png")
    canvas = np.zeros((1, 32, 32, 3), "float32")
    canvas[0, :20, :28] = pixels
    standardised = (canvas / 255.0 - np.asarray(camvid.MEAN)) / np.asarray(camvid.STD)
    expected = model(standardised.astype("float32"), propagation="pred")
    for key in ("classes", "levels"):
        np.testing.assert_array_equal(prediction[key], np.asarray(expected[key])[0, :20, :28])
    with pytest.raises(ValueError, match="'gt' scheme needs label maps"):
        viz.save_segmentation_figure(model_path, image_path, output, propagation="gt")
