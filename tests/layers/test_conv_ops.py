"""Tests of layers/_conv_ops.py against a NumPy convolution written from the definition."""


import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_structconv._internals import onednn_enabled
from keras_structconv.layers import _conv_ops
from keras_structconv.layers._portable import portable_ops
from tests.references import numpy_conv2d


def _run(x, kernel, strides, dilation, padding, groups, dynamic=False, dtype="float32"):
    x = tf.constant(x, dtype)
    kernel = tf.constant(kernel, dtype)

    def fn(x, kernel):
        with tf.GradientTape() as tape:
            tape.watch([x, kernel])
            y = _conv_ops.conv2d(x, kernel, strides, dilation, padding, groups)
            cot = tf.cast(tf.reshape(tf.range(tf.size(y)), tf.shape(y)) % 7 - 3, y.dtype)
            loss = tf.reduce_sum(tf.cast(y * cot, "float32"))
        return y, tape.gradient(loss, [x, kernel])

    if dynamic:
        spec = [
            tf.TensorSpec([None, None, None, x.shape[-1]], dtype),
            tf.TensorSpec(kernel.shape, dtype),
        ]
        fn = tf.function(fn, input_signature=spec)
    y, (dx, dk) = fn(x, kernel)
    return y.numpy(), dx.numpy(), dk.numpy()


def _check(shape, k, strides, dilation, padding, groups, cout, dynamic=False, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype("float32")
    kernel = rng.standard_normal((k[0], k[1], shape[-1] // groups, cout)).astype("float32")
    y, dx, dk = _run(x, kernel, strides, dilation, padding, groups, dynamic)
    y_ref, backward = numpy_conv2d(x, kernel, strides, dilation, padding)
    cot = (np.arange(y_ref.size).reshape(y_ref.shape) % 7 - 3).astype("float64")
    dx_ref, dk_ref = backward(cot)
    np.testing.assert_allclose(y, y_ref, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(dx, dx_ref, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(dk, dk_ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    "strides, dilation, padding",
    [
        ((1, 1), 1, ((1, 1), (1, 1))),  # TF 'SAME' path
        ((1, 1), 3, ((3, 3), (3, 3))),  # dilated 'SAME' path
        ((1, 1), 2, ((0, 0), (0, 0))),  # VALID
        ((1, 1), 2, ((1, 3), (0, 2))),  # asymmetric explicit padding
        ((2, 2), 1, ((1, 1), (1, 1))),  # PyTorch padding at stride 2 (not TF 'SAME')
        ((2, 2), 2, ((2, 2), (2, 2))),  # d % s == 0: subsample
        ((2, 2), 4, ((1, 1), (3, 3))),  # subsample with odd padding (offset 1)
        ((2, 2), 3, ((3, 3), (3, 3))),  # d % s != 0: stride 1 then subsample
        ((3, 2), 2, ((2, 2), (2, 2))),  # different strides per axis
    ],
)
def test_conv2d_matches_numpy(strides, dilation, padding):
    for dynamic in (False, True):
        _check((2, 9, 8, 4), (3, 3), strides, dilation, padding, 2, 6, dynamic)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.tuples(st.integers(4, 10), st.integers(4, 10)),
    kernel=st.sampled_from([(1, 1), (3, 3), (5, 3)]),
    strides=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    dilation=st.integers(1, 4),
    pads=st.tuples(*[st.integers(0, 4)] * 4),
    groups=st.sampled_from([1, 2, 3]),
    dynamic=st.booleans(),
)
def test_conv2d_random(size, kernel, strides, dilation, pads, groups, dynamic):
    padding = ((pads[0], pads[1]), (pads[2], pads[3]))
    for axis in range(2):
        # The padded input must hold one dilated kernel.
        room = size[axis] + sum(padding[axis]) - dilation * (kernel[axis] - 1) - 1
        if room < 0:
            return
    _check((1,) + size + (2 * groups,), kernel, strides, dilation, padding, groups, 2 * groups,
           dynamic)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_runs_in_float32_with_gradients(dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 8, 8, 8)).astype("float32")
    kernel = rng.standard_normal((3, 3, 2, 8)).astype("float32")
    y, dx, dk = _run(x, kernel, (2, 2), 2, ((2, 2), (2, 2)), 4, dtype=dtype)
    assert y.dtype.name == dtype and dx.dtype.name == dtype
    x_rounded = tf.cast(tf.cast(x, dtype), "float32").numpy()
    k_rounded = tf.cast(tf.cast(kernel, dtype), "float32").numpy()
    y_ref, _ = numpy_conv2d(x_rounded, k_rounded, (2, 2), 2, ((2, 2), (2, 2)))
    tol = 2e-2 if dtype == "bfloat16" else 5e-3
    np.testing.assert_allclose(np.asarray(y, "float32"), y_ref, atol=tol * 30, rtol=tol)
    assert np.all(np.isfinite(np.asarray(dx, "float32")))
    assert np.all(np.isfinite(np.asarray(dk, "float32")))


def test_conv2d_under_xla():
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((2, 9, 9, 4)), "float32")
    kernel = tf.constant(rng.standard_normal((3, 3, 2, 4)), "float32")
    fn = tf.function(jit_compile=True)(
        lambda x, k: _conv_ops.conv2d(x, k, 2, 2, ((2, 2), (2, 2)), groups=2)
    )
    y_ref, _ = numpy_conv2d(x.numpy(), kernel.numpy(), (2, 2), 2, ((2, 2), (2, 2)))
    np.testing.assert_allclose(fn(x, kernel).numpy(), y_ref, atol=1e-4, rtol=1e-4)


def test_roll_blocks_rolls_inside_each_group():
    y = tf.reshape(tf.range(12), (1, 1, 1, 12))
    rolled = _conv_ops.roll_blocks(y, -1, blocks=3, groups=2).numpy().ravel()
    # Two groups of three blocks of two channels: blocks (0,1)(2,3)(4,5) | (6,7)(8,9)(10,11).
    np.testing.assert_array_equal(rolled, [2, 3, 4, 5, 0, 1, 8, 9, 10, 11, 6, 7])
    np.testing.assert_array_equal(
        _conv_ops.roll_blocks(y, 1, blocks=4).numpy().ravel(), np.roll(np.arange(12), 3)
    )


def test_output_size_and_paddings():
    assert _conv_ops.output_size(56, 3, 2, 4, (4, 4)) == 28
    assert _conv_ops.output_size(None, 3) is None
    assert _conv_ops.symmetric_padding(5, 2) == 4
    assert _conv_ops.tf_same_padding(8, 3, 2) == (0, 1)  # TF pads bottom/right at stride 2


def test_groups_mismatch_raises():
    with pytest.raises(ValueError, match="Received: channels=6, groups=4"):
        _conv_ops.conv2d(tf.zeros((1, 4, 4, 6)), tf.zeros((3, 3, 2, 4)), groups=4)


@pytest.mark.parametrize(
    "strides, dilation, padding",
    [((1, 1), 3, ((3, 3), (3, 3))), ((2, 2), 2, ((2, 2), (2, 2))), ((2, 2), 3, ((1, 2), (3, 0)))],
)
def test_portable_path_without_onednn_kernels(monkeypatch, strides, dilation, padding):
    """The split-groups / space-to-batch path used when oneDNN is off is exact as well."""
    monkeypatch.setattr(_conv_ops, "NATIVE_GROUPED_DILATED", False)
    _check((2, 9, 8, 4), (3, 3), strides, dilation, padding, 2, 6)


def test_native_calls_follow_the_runtime():
    assert _conv_ops.NATIVE_GROUPED_DILATED is onednn_enabled()


def test_roll_blocks_portable_equals_tf_roll_and_has_no_roll_op():
    y = tf.reshape(tf.range(2 * 24, dtype=tf.float32), (2, 1, 1, 24))
    for shift, blocks, groups in [(-1, 4, 1), (2, 4, 1), (-1, 3, 2), (1, 2, 3)]:
        expected = _conv_ops.roll_blocks(y, shift, blocks, groups)
        fn = tf.function(lambda v, s=shift, b=blocks, g=groups: _conv_ops.roll_blocks(v, s, b, g))
        with portable_ops():
            concrete = fn.get_concrete_function(tf.TensorSpec((None, 1, 1, 24)))
        assert "Roll" not in {op.type for op in concrete.graph.get_operations()}
        np.testing.assert_array_equal(concrete(y).numpy(), expected.numpy())


@pytest.mark.parametrize("padding", [((2, 2), (2, 2)), "same"])
def test_portable_trace_splits_groups_and_keeps_native_dilation(padding):
    """Inference traced for export needs no gradient: one dilated Conv2D per group, whatever the
    runtime, and no space-to-batch. Groups are split so that no grouped conv can be fused with a
    bias into a kernel only oneDNN has."""
    x = np.random.default_rng(0).standard_normal((1, 9, 9, 4)).astype("float32")
    kernel = np.random.default_rng(1).standard_normal((3, 3, 2, 4)).astype("float32")
    fn = tf.function(lambda v: _conv_ops.conv2d(v, kernel, 1, 2, padding, groups=2))
    with portable_ops():
        concrete = fn.get_concrete_function(tf.TensorSpec(x.shape))
    ops = [op.type for op in concrete.graph.get_operations()]
    assert ops.count("Conv2D") == 2 and "SpaceToBatchND" not in ops
    np.testing.assert_allclose(concrete(x).numpy(), fn(x).numpy(), atol=1e-5)


# ----------------------------------------------------------------------------- conv templates


def test_conv_template_kwargs_take_the_config_and_refuse_what_cannot_be_represented():
    import keras

    from keras_structconv.layers._conv_template import conv_template_kwargs

    conv = keras.layers.Conv2D(8, 3, strides=2, padding="valid", use_bias=False, name="c")
    kwargs = conv_template_kwargs(conv, "MyConv", plain=("dilation_rate", "groups"))
    assert (kwargs["filters"], kwargs["strides"], kwargs["padding"]) == (8, (2, 2), "valid")
    assert kwargs["name"] == "c" and not kwargs["use_bias"]
    assert "groups" not in kwargs and "dilation_rate" not in kwargs
    with pytest.raises(ValueError, match=r"MyConv .* `groups`. Received: groups=2"):
        conv_template_kwargs(keras.layers.Conv2D(8, 3, groups=2), "MyConv", plain=("groups",))
    with pytest.raises(ValueError, match=r"`activation`. Received: activation='relu'"):
        conv_template_kwargs(
            keras.layers.Conv2D(8, 3, activation="relu"), "MyConv", plain=("activation",)
        )
    with pytest.raises(ValueError, match="Received: conv=Dense"):
        conv_template_kwargs(keras.layers.Dense(8), "MyConv")
