"""The PSConv2D layer: zero padding, parameter count, initialisation, configuration from a
`Conv2D` and by the factory, argument errors, and the shared layer harness (both formulations a
build can pick)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_structconv.layers.ps_conv import PSConv2D, psconv_factory
from tests.layer_harness import (
    POLICIES,
    LayerCase,
    LayerHarness,
    check_fit_step,
    check_reference,
)
from tests.layers.ps_conv.ps_conv_references import tf_literal_reference


def test_valid_after_zero_padding_equals_same():
    """SPEC: ZeroPadding2D((K-1)/2) + PSConv2D('valid') is PSConv2D('same') (Keras ResNet50V2)."""
    x = np.random.default_rng(0).standard_normal((2, 10, 9, 8)).astype("float32")
    for strides in (1, 2):
        same = PSConv2D(8, 5, strides=strides, padding="same")
        valid = PSConv2D(8, 5, strides=strides, padding="valid")
        same.build(x.shape)
        valid.build((2, 14, 13, 8))
        valid.set_weights(same.get_weights())
        padded = keras.layers.ZeroPadding2D(2)(x)
        np.testing.assert_allclose(valid(padded).numpy(), same(x).numpy(), atol=1e-5)


def test_parameter_count_equals_vanilla_conv():
    layer = PSConv2D(64, 3)
    layer.build((None, 56, 56, 64))
    assert layer.count_params() == 36_864
    grouped = PSConv2D(128, 3, groups=32, use_bias=True)
    grouped.build((None, 8, 8, 128))
    assert grouped.count_params() == 3 * 3 * 4 * 128 + 128


def test_initializer_sees_the_vanilla_shape():
    seen = []

    def initializer(shape, dtype=None):
        seen.append(tuple(shape))
        return tf.zeros(shape, dtype)

    PSConv2D(16, 5, groups=2, kernel_initializer=initializer).build((None, 8, 8, 8))
    assert seen == [(5, 5, 4, 16)]


def test_from_conv_and_factory_keep_the_configuration():
    conv = keras.layers.Conv2D(32, 3, strides=2, padding="valid", use_bias=True, groups=2,
                               activation="relu", name="block_2_conv")
    layer = psconv_factory(cyclic_interval=2)(conv)
    assert isinstance(layer, PSConv2D)
    assert (layer.filters, layer.strides, layer.padding, layer.groups) == (32, (2, 2), "valid", 2)
    assert layer.use_bias and layer.name == "block_2_conv" and layer.dilation_pattern == (1, 2)
    assert layer.activation is keras.activations.relu
    with pytest.raises(ValueError, match="dilation_rate"):
        PSConv2D.from_conv(keras.layers.Conv2D(8, 3, dilation_rate=2))
    with pytest.raises(ValueError, match="Received: conv=Dense"):
        PSConv2D.from_conv(keras.layers.Dense(8))


# ----------------------------------------------------------------------------- errors


BAD_ARGUMENTS = [
    (dict(filters=6), r"`filters` must be divisible by .* Received: filters=6"),
    (dict(filters=8, groups=4), r"`filters` must be divisible .* Received: filters=8"),
    (dict(filters=8, kernel_size=4), r"`kernel_size` must be odd.* Received: kernel_size=4"),
    (dict(filters=8, dilation_pattern=(1, 2)), r"Received: dilation_pattern=\(1, 2\)"),
    (dict(filters=8, dilation_pattern=(1, 0, 1, 2)), r"positive integer dilation rates"),
    (dict(filters=8, padding="causal"), r"`padding` .* Received: padding='causal'"),
    (dict(filters=8, data_format="channels_first"), r"Received: data_format='channels_first'"),
    (dict(filters=8, cyclic_interval=0), r"Received: cyclic_interval=0"),
]


def test_bad_arguments_raise():
    for kwargs, message in BAD_ARGUMENTS:
        with pytest.raises(ValueError, match=message):
            PSConv2D(**kwargs)


def test_input_channels_not_divisible_raise():
    with pytest.raises(ValueError, match=r"`input channels` .* Received: input_channels=6"):
        PSConv2D(8)(np.zeros((1, 8, 8, 6), "float32"))


# ----------------------------------------------------------------------------- shared harness


class TestPSConv2DHarness(LayerHarness):
    # 8 input channels per block: grouped convs per slot (oneDNN) or convs per input block.
    case = LayerCase(
        factory=lambda: PSConv2D(32, 3, strides=2, use_bias=True),
        input_shape=(2, 9, 9, 32),
        reference=tf_literal_reference,
        atol=1e-5,
        rtol=1e-5,
    )


NARROW = LayerCase(
    factory=lambda: PSConv2D(16, 3, groups=2, use_bias=True),  # 2 channels per block: masked
    input_shape=(2, 9, 9, 16),
    reference=tf_literal_reference,
    atol=1e-5,
    rtol=1e-5,
)


def test_narrow_blocks_take_the_masked_path_and_pass_the_harness_checks():
    layer = NARROW.factory()
    layer.build(NARROW.input_shape)
    assert layer._formulation == "masked"
    check_reference(NARROW)
    for policy in POLICIES:
        check_fit_step(NARROW, policy)
    check_fit_step(NARROW, jit_compile=True)
