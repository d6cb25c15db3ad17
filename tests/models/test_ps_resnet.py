"""PS-ResNet / PS-ResNeXt builders and `convert` with PSConv2D: exact vanilla parameter counts,
the right convolutions replaced (bottleneck 3×3s with their stride, groups and bias)."""

import keras
import numpy as np
import pytest

from keras_structconv import convert
from keras_structconv import models as zoo
from keras_structconv.layers.ps_conv import PSConv2D, psconv_factory

SMALL = (64, 64, 3)  # parameter counts do not depend on the input size


def ps_layers(model):
    return [layer for layer in model.layers if isinstance(layer, PSConv2D)]


def counts(model):
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    return model.count_params(), trainable


# Trainable parameters of the vanilla models (torchvision / He et al. / formula in
# test_resnext.py), which the PS models must have too.
PUBLISHED = {
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnext50": 25_028_904,
    "resnext29": 34_426_698,
    "resnet20": 269_722,
    "resnet56": 853_018,
}
# builder pairs: (PS builder, vanilla builder, kwargs, PSConv2D layers, strided, groups)
BUILDERS = {
    "resnet50": (zoo.PSResNet50, zoo.ResNet50, dict(input_shape=SMALL), 16, 3, 1),
    "resnet101": (zoo.PSResNet101, zoo.ResNet101, dict(input_shape=SMALL), 33, 3, 1),
    "resnext50": (zoo.PSResNeXt50_32x4d, zoo.ResNeXt50_32x4d, dict(input_shape=SMALL), 16, 3, 32),
    "resnext29": (zoo.PSResNeXt29_8x64d, zoo.ResNeXt29_8x64d, {}, 9, 2, 8),
    "resnet20": (zoo.PSResNet20, zoo.ResNet20, {}, 18, 2, 1),
    "resnet56": (zoo.PSResNet56, zoo.ResNet56, {}, 54, 2, 1),
}


@pytest.mark.parametrize("key", list(BUILDERS))
def test_builder_has_the_vanilla_parameter_count(key):
    ps_builder, vanilla_builder, kwargs, n_ps, n_strided, groups = BUILDERS[key]
    ps_model = ps_builder(**kwargs)
    vanilla = vanilla_builder(**kwargs)
    assert counts(ps_model) == counts(vanilla)
    assert counts(ps_model)[1] == PUBLISHED[key]
    replaced = ps_layers(ps_model)
    assert len(replaced) == n_ps
    assert sum(layer.strides == (2, 2) for layer in replaced) == n_strided
    assert {layer.groups for layer in replaced} == {groups}
    assert all(layer.dilation_pattern == (1, 2, 1, 4) and not layer.use_bias for layer in replaced)
    # Same names, same filters as the vanilla 3×3 convs they stand for.
    vanilla_convs = {
        layer.name: layer.filters for layer in vanilla.layers
        if isinstance(layer, keras.layers.Conv2D) and layer.name in {r.name for r in replaced}
    }
    assert vanilla_convs == {layer.name: layer.filters for layer in replaced}


def test_builder_options_and_errors():
    model = zoo.PSResNet20(cyclic_interval=2, classes=5)
    assert {layer.dilation_pattern for layer in ps_layers(model)} == {(1, 2)}
    assert model.name == "ps_resnet20"
    with pytest.raises(ValueError, match="Received: conv="):
        zoo.PSResNet20(conv=psconv_factory())


def test_ps_resnet20_trains_one_step():
    model = zoo.PSResNet20()
    x = np.random.default_rng(0).uniform(0, 1, (4, 32, 32, 3)).astype("float32")
    model.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
    loss = model.train_on_batch(x, np.array([0, 1, 2, 3]))
    assert np.isfinite(loss)


# ------------------------------------------------------------------ convert on keras.applications


@pytest.fixture(scope="module")
def applications():
    built = {}
    for name in ("ResNet50", "ResNet50V2"):
        original = getattr(keras.applications, name)(weights=None, input_shape=SMALL)
        built[name] = (original, convert(original, conv=psconv_factory()))
    return built


def test_convert_keras_resnet50(applications):
    original, converted = applications["ResNet50"]
    assert counts(converted) == counts(original)
    replaced = ps_layers(converted)
    assert len(replaced) == 16
    # Keras' ResNet50 (v1) strides its 1×1 convs: every 3×3 is stride 1, 'same', with bias.
    assert {(layer.strides, layer.padding, layer.use_bias) for layer in replaced} == {
        ((1, 1), "same", True)
    }


def test_convert_keras_resnet50v2(applications):
    original, converted = applications["ResNet50V2"]
    assert counts(converted) == counts(original)
    replaced = ps_layers(converted)
    assert len(replaced) == 16
    # ResNet50V2 pads explicitly: 'valid' 3×3 convs after ZeroPadding2D, three of them strided.
    assert {(layer.padding, layer.use_bias) for layer in replaced} == {("valid", False)}
    assert [layer.name for layer in replaced if layer.strides == (2, 2)] == [
        "conv2_block3_2_conv", "conv3_block4_2_conv", "conv4_block6_2_conv"
    ]
    x = np.random.default_rng(0).uniform(0, 255, (1, *SMALL)).astype("float32")
    assert np.all(np.isfinite(converted(x).numpy()))

