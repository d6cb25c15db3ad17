"""The PS- and Tree- builders: their conv arguments reach the conv factory, the other arguments
reach the vanilla builder, and `conv` or positional arguments are refused."""

import pytest

from keras_structconv import models
from keras_structconv.layers import PSConv2D, TreeConv2D


def _layers(model, layer_type):
    return [layer for layer in model.layers if isinstance(layer, layer_type)]


def test_psconv_arguments_reach_every_replaced_conv():
    model = models.PSResNet20(cyclic_interval=2, input_shape=(16, 16, 3), classes=3, name="m")
    layers = _layers(model, PSConv2D)
    assert len(layers) == 18
    assert {layer.cyclic_interval for layer in layers} == {2}
    assert (model.name, model.output_shape) == ("m", (None, 3))


def test_treeconv_arguments_reach_every_replaced_conv():
    model = models.TreeResNet20(depth=2, input_shape=(16, 16, 3), classes=3)
    layers = _layers(model, TreeConv2D)
    assert len(layers) == 18
    assert {layer.depth for layer in layers} == {2}
    assert model.name == "tree_resnet20"


@pytest.mark.parametrize("builder", [models.PSResNet20, models.TreeResNet20])
def test_variants_refuse_a_conv_factory(builder):
    with pytest.raises(ValueError, match=r"sets `conv` itself\. Received: conv="):
        builder(conv=lambda template: template)


@pytest.mark.parametrize("builder", [models.PSResNet20, models.TreeResNet20])
def test_variants_refuse_positional_arguments(builder):
    with pytest.raises(TypeError, match="positional"):
        builder(True)
