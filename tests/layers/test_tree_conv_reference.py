"""ReferenceTreeConv2D (the authors' released variant): exact parameter count, the leaf kernel
sizes, an independent reference, batch statistics, initialisation, argument checks, files saved
when it was `TreeConv2D(variant="reference")`, and the shared layer harness."""

import itertools
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_structconv  # noqa: F401  (registers the layers)
from keras_structconv.layers import ReferenceTreeConv2D, TreeConv2D
from tests.conftest import skip_if_saved_by_newer_keras
from tests.layer_harness import LayerCase, LayerHarness
from tests.layers.tree_conv_references import (
    assert_matches,
    random_layer,
    reference_authors,
    sample,
)

DATA = Path(__file__).parent / "data"


def trainable_count(layer):
    return sum(int(np.prod(w.shape)) for w in layer.trainable_weights)


def test_parameter_count_64_channels_at_56():
    layer = ReferenceTreeConv2D(64, 3, depth=3)
    layer.build((None, 56, 56, 64))
    assert trainable_count(layer) == 46_435  # 195 + 36,864 + 9,216 + 160


def test_leaf_kernels_follow_the_pooled_size():
    layer = ReferenceTreeConv2D(64, 3)
    layer.build((None, 7, 7, 64))  # pooled 1x1, 2x2, 4x4, 7x7
    assert layer.leaf_kernel_sizes == [1, 1, 3, 3]


def test_is_a_tree_convolution_with_the_same_parse():
    layer = ReferenceTreeConv2D(8, 3)
    assert isinstance(layer, TreeConv2D) and layer.variant == "reference"


@pytest.mark.parametrize(
    "shape, kwargs",
    [
        ((2, 9, 9, 8), dict(filters=8, depth=3)),
        ((2, 14, 11, 6), dict(filters=6, depth=2, strides=2, use_bias=True)),
    ],
)
def test_matches_its_reference(shape, kwargs):
    layer = random_layer(shape, layer_class=ReferenceTreeConv2D, **kwargs)
    rng = np.random.default_rng(5)
    for norm in [layer.branch_norm, *layer.leaf_norms]:  # non-trivial BN statistics
        norm.set_weights([rng.uniform(0.5, 1.5, v.shape) for v in norm.weights])
    assert_matches(layer, reference_authors, shape)


def test_training_mode_updates_the_batch_statistics():
    layer = random_layer((4, 8, 8, 4), layer_class=ReferenceTreeConv2D, filters=4, depth=1)
    before = np.array(layer.branch_norm.moving_mean)
    layer(sample((4, 8, 8, 4)), training=True)
    assert not np.allclose(before, layer.branch_norm.moving_mean)


@pytest.mark.parametrize("initializer", ["glorot_uniform", keras.initializers.HeNormal(seed=5)])
def test_no_two_same_shaped_kernels_start_equal(initializer):
    layer = ReferenceTreeConv2D(16, 3, depth=3, kernel_initializer=initializer)
    layer.build((None, 16, 16, 16))  # leaf kernels 3x3, 3x3, 3x3 (pooled 4, 8, 16) and 1x1
    kernels = [w for w in layer.weights if "kernel" in w.name]
    pairs = [(a, b) for a, b in itertools.combinations(kernels, 2) if a.shape == b.shape]
    assert len(pairs) == 6  # three 3x3 leaf kernels and the branch kernel
    for a, b in pairs:
        assert not np.array_equal(a, b), f"{a.name} == {b.name}"


def test_needs_static_size():
    with pytest.raises(ValueError, match="needs static height and width"):
        ReferenceTreeConv2D(8).build((None, None, None, 8))


def test_needs_filters_equal_to_the_input_channels():
    with pytest.raises(ValueError, match="Received: filters=16, input channels=8"):
        ReferenceTreeConv2D(16).build((None, 8, 8, 8))


def test_refuses_the_paper_variant():
    with pytest.raises(ValueError, match="Received: variant='paper'"):
        ReferenceTreeConv2D(8, variant="paper")


def test_loads_a_file_saved_as_treeconv2d_variant_reference():
    # Saved by the release in which both variants were `TreeConv2D(variant=...)`: a paper
    # TreeConv2D (fuse, bias) followed by a reference one with non-trivial BN statistics.
    skip_if_saved_by_newer_keras(DATA / "tree_conv_v0.keras")
    model = keras.models.load_model(DATA / "tree_conv_v0.keras")
    arrays = np.load(DATA / "tree_conv_v0.npz")
    assert type(model.get_layer("paper_tree")) is TreeConv2D
    assert isinstance(model.get_layer("reference_tree"), ReferenceTreeConv2D)
    np.testing.assert_allclose(model(arrays["x"], training=False), arrays["y"], atol=1e-5)


def test_a_file_saved_as_treeconv2d_variant_reference_saves_again(tmp_path):
    skip_if_saved_by_newer_keras(DATA / "tree_conv_v0.keras")
    model = keras.models.load_model(DATA / "tree_conv_v0.keras")
    model.save(tmp_path / "again.keras")
    again = keras.models.load_model(tmp_path / "again.keras")
    x = np.load(DATA / "tree_conv_v0.npz")["x"]
    np.testing.assert_array_equal(again(x, training=False), model(x, training=False))


class TestReferenceTreeConv2DHarness(LayerHarness):
    case = LayerCase(
        factory=lambda: ReferenceTreeConv2D(8, 3, depth=3),
        input_shape=(2, 9, 9, 8),
        reference=reference_authors,
        none_spatial=False,
        atol=1e-5,
        rtol=1e-5,
        overfit=False,
    )
