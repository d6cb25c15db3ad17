"""`_blocks.conv_variant`, which makes every PS- and Tree- builder: the conv arguments reach the
factory, the other arguments reach the vanilla builder, and `conv` or positional arguments are
refused."""

import pytest

from keras_structconv import models
from keras_structconv.layers import PSConv2D, TreeConv2D
from keras_structconv.models import _blocks


def test_conv_arguments_go_to_the_factory_and_the_rest_to_the_builder():
    calls = []

    def vanilla(*, conv, name, **kwargs):
        calls.append((conv, name, kwargs))
        return "model"

    def make_conv(depth, fuse):
        return ("factory", depth, fuse)

    defaults = {"depth": 3, "fuse": False}
    builder = _blocks.conv_variant(vanilla, "variant", make_conv, defaults, "doc")
    assert builder(classes=7, depth=2) == "model"
    assert builder(name="other") == "model"
    assert calls == [
        (("factory", 2, False), "variant", {"classes": 7}),
        (("factory", 3, False), "other", {}),
    ]
    assert builder.__doc__ == "doc"


@pytest.mark.parametrize(
    ("builder", "layer_type"), [(models.PSResNet20, PSConv2D), (models.TreeResNet20, TreeConv2D)]
)
def test_variants_build_their_convs_and_refuse_conv_and_positional_arguments(builder, layer_type):
    model = builder(input_shape=(16, 16, 3), classes=3)
    assert model.output_shape == (None, 3)
    assert sum(isinstance(layer, layer_type) for layer in model.layers) == 18
    with pytest.raises(ValueError, match=r"sets `conv` itself\. Received: conv="):
        builder(conv=lambda template: template)
    with pytest.raises(TypeError, match="positional"):
        builder(True)
