"""GroupedConv2D equals keras.layers.Conv2D(groups=...) with the same weights."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_structconv.layers.grouped_conv import GroupedConv2D
from tests.layer_harness import LayerCase, LayerHarness
from tests.references import (
    assert_relative_close,
    needs_onnx,
    numpy_conv2d,
    onnx_outputs,
    tflite_outputs,
)


def keras_reference(layer, x):
    """Keras' own grouped convolution (its XLA path) on the layer's variables."""
    y = keras.ops.conv(
        x,
        layer.kernel,
        strides=layer.strides,
        padding=layer.padding,
        dilation_rate=layer.dilation_rate,
    )
    if layer.use_bias:
        y = y + layer.bias
    return layer.activation(y)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(strides=1, padding="same", groups=4),
        dict(strides=2, padding="same", groups=2),  # TF 'same': bottom/right-heavy at stride 2
        dict(strides=2, padding="valid", groups=8, use_bias=False),
        dict(strides=1, padding="same", groups=4, dilation_rate=2, activation="relu"),
        dict(kernel_size=4, strides=1, padding="same", groups=2),  # even kernel: asymmetric
    ],
)
def test_matches_keras_grouped_conv(kwargs):
    kwargs = dict(kwargs)
    kernel_size = kwargs.pop("kernel_size", 3)
    layer = GroupedConv2D(8, kernel_size, **kwargs)
    x = np.random.default_rng(0).standard_normal((2, 10, 9, 8)).astype("float32")
    layer(x)
    if layer.use_bias:
        layer.bias.assign(np.arange(8, dtype="float32"))
    expected = keras.layers.Conv2D(8, kernel_size, **kwargs)
    expected(x)
    expected.set_weights(layer.get_weights())
    dynamic = tf.function(layer, input_signature=[tf.TensorSpec((None, None, None, 8))])
    np.testing.assert_allclose(layer(x).numpy(), expected(x).numpy(), atol=1e-5)
    np.testing.assert_allclose(dynamic(x).numpy(), expected(x).numpy(), atol=1e-5)


def test_gradients_match_numpy():
    layer = GroupedConv2D(6, 3, strides=2, padding="same", groups=3, use_bias=False)
    x = tf.constant(np.random.default_rng(1).standard_normal((2, 8, 8, 6)), "float32")
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(y * y)
    dx, dk = tape.gradient(loss, [x, layer.kernel])
    # TF 'same' at stride 2 on 8 rows pads (0, 1).
    y_ref, backward = numpy_conv2d(x.numpy(), layer.kernel.numpy(), (2, 2), 1, ((0, 1), (0, 1)))
    dx_ref, dk_ref = backward(2 * y_ref)
    np.testing.assert_allclose(y.numpy(), y_ref, atol=1e-5)
    np.testing.assert_allclose(dx.numpy(), dx_ref, atol=1e-4)
    np.testing.assert_allclose(dk.numpy(), dk_ref, atol=1e-4)


def test_is_a_conv2d_and_rejects_channels_first():
    assert isinstance(GroupedConv2D(4, 3, groups=2), keras.layers.Conv2D)
    with pytest.raises(ValueError, match="Received: data_format='channels_first'"):
        GroupedConv2D(4, 3, data_format="channels_first")


class TestGroupedConv2DHarness(LayerHarness):
    case = LayerCase(
        factory=lambda: GroupedConv2D(16, 3, strides=2, padding="same", groups=4),
        input_shape=(2, 9, 9, 16),
        reference=keras_reference,
        atol=1e-5,
        rtol=1e-5,
    )


EXPORT_CASES = [
    dict(strides=1, padding="same", groups=4),
    dict(strides=2, padding="same", groups=4),
    dict(strides=2, padding="valid", groups=2, dilation_rate=1),
    dict(strides=1, padding="same", groups=2, dilation_rate=2),
]


def exported_layer(kwargs):
    layer = GroupedConv2D(16, 3, **kwargs)
    layer.build((None, 9, 9, 16))
    rng = np.random.default_rng(3)
    layer.set_weights([rng.standard_normal(w.shape).astype("float32") for w in layer.weights])
    return layer, rng.standard_normal((2, 9, 9, 16)).astype("float32")


@pytest.mark.parametrize("kwargs", EXPORT_CASES)
def test_converts_to_tflite_builtin_ops_and_matches(kwargs):
    layer, x = exported_layer(kwargs)
    assert_relative_close(tflite_outputs(layer, x), layer(x), 1e-4)


@needs_onnx
@pytest.mark.parametrize("kwargs", EXPORT_CASES)
def test_converts_to_onnx_and_matches(kwargs):
    layer, x = exported_layer(kwargs)
    assert_relative_close(onnx_outputs(layer, x), layer(x), 1e-4)
