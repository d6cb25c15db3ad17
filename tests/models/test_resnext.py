"""ResNeXt builders: published parameter counts, grouped 3×3 convs on GroupedConv2D, factories."""

import keras
import numpy as np
import pytest

from keras_structconv.layers.grouped_conv import GroupedConv2D
from keras_structconv.models import (
    ResNeXt29_8x64d,
    ResNeXt29_16x64d,
    ResNeXt50_32x4d,
    ResNeXt101_32x4d,
    build_resnet,
)


def trainable_count(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


@pytest.fixture(scope="module")
def resnext50():
    return ResNeXt50_32x4d(input_shape=(64, 64, 3))


@pytest.fixture(scope="module")
def resnext29():
    return ResNeXt29_8x64d()


def test_resnext50_matches_torchvision_count(resnext50):
    assert trainable_count(resnext50) == 25_028_904  # torchvision resnext50_32x4d


def cifar_resnext_count(cardinality, base_width, classes):
    """Trainable parameters of the paper's CIFAR ResNeXt-29, counted layer by layer."""
    count = 3 * 9 * 64 + 2 * 64  # stem conv + BN
    in_channels = 64
    for out in (256, 512, 1024):
        width = cardinality * base_width * out // 256
        for block in range(3):
            count += in_channels * width + 2 * width  # 1×1 + BN
            count += 9 * width * width // cardinality + 2 * width  # grouped 3×3 + BN
            count += width * out + 2 * out  # 1×1 + BN
            if block == 0:
                count += in_channels * out + 2 * out  # projection + BN
            in_channels = out
    return count + 1024 * classes + classes


def test_resnext29_count_matches_the_paper(resnext29):
    count = trainable_count(resnext29)
    assert count == cifar_resnext_count(8, 64, 10)
    assert round(count / 1e6, 1) == 34.4  # Xie et al. Table 7: 34.4M


def grouped_convs(model):
    return [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.Conv2D) and layer.groups > 1
    ]


def test_every_grouped_conv_is_native(resnext50, resnext29):
    for model, widths in ((resnext50, {128, 256, 512, 1024}), (resnext29, {512, 1024, 2048})):
        convs = grouped_convs(model)
        assert convs and all(type(layer) is GroupedConv2D for layer in convs)
        assert {layer.filters for layer in convs} == widths
        assert {layer.kernel_size for layer in convs} == {(3, 3)}
    strided = [layer.name for layer in grouped_convs(resnext50) if layer.strides == (2, 2)]
    assert strided == ["conv3_block1_2_conv", "conv4_block1_2_conv", "conv5_block1_2_conv"]


def test_forward_and_one_training_step():
    model = tiny_cifar_resnext()
    x = np.random.default_rng(0).uniform(0, 1, (2, 32, 32, 3)).astype("float32")
    probs = model(x).numpy()
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    model.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
    before = [w.numpy().copy() for w in model.trainable_weights]
    loss = model.train_on_batch(x, np.array([1, 2]))
    assert np.isfinite(loss)
    moved = [
        not np.array_equal(a, w.numpy())
        for a, w in zip(before, model.trainable_weights, strict=True)
    ]
    assert all(moved)


def tiny_cifar_resnext():
    """A narrow CIFAR ResNeXt-29 through the builders' code path (8 groups of width 2)."""
    return build_resnet(
        "bottleneck", (3, 3, 3), stage_filters=(64, 128, 256), stem="cifar", groups=8,
        width_per_group=2, classes=10, name="tiny",
    )


def test_conv_factory_receives_grouped_templates():
    seen = []

    def factory(template):
        seen.append((type(template).__name__, template.groups, template.strides, template.padding))
        return GroupedConv2D.from_config(template.get_config())

    ResNeXt29_8x64d(conv=factory, input_shape=(16, 16, 3))
    assert len(seen) == 9
    assert seen[0] == ("GroupedConv2D", 8, (1, 1), "same")
    assert seen[3] == ("GroupedConv2D", 8, (2, 2), "valid")  # after ZeroPadding2D(1)


@pytest.mark.parametrize(
    "builder", [ResNeXt29_8x64d, ResNeXt29_16x64d, ResNeXt50_32x4d, ResNeXt101_32x4d]
)
def test_builders_refuse_positional_arguments(builder):
    with pytest.raises(TypeError, match="positional"):
        builder(False)
