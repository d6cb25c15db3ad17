"""Tests of PSConv2D: a literal block-D reference (every formulation, both oneDNN settings), the
PSConv authors' test vectors, the weight layouts, errors, and export (TFLite builtins, ONNX)."""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_structconv._internals import onednn_enabled
from keras_structconv.layers.ps_conv import (
    FORMULATIONS,
    PSConv2D,
    default_dilation_pattern,
    dense_to_slots,
    psconv_factory,
    slots_to_dense,
)
from tests.layer_harness import (
    POLICIES,
    LayerCase,
    LayerHarness,
    check_fit_step,
    check_reference,
)
from tests.references import (
    assert_relative_close,
    needs_onnx,
    numpy_conv2d,
    onnx_outputs,
    portable_trace,
    tflite_outputs,
)

REPO = Path(__file__).resolve().parents[2]

# ----------------------------------------------------------------------------- references


def block_dilations(pattern, cin, cout, groups):
    """SPEC's block D per group: D[o, k] = pattern[(k // (cin_g/t) - o // (cout_g/t)) mod t],
    written out channel by channel (C_out/groups × C_in/groups)."""
    t = len(pattern)
    cin_g, cout_g = cin // groups, cout // groups
    return np.array(
        [
            [pattern[(k // (cin_g // t) - o // (cout_g // t)) % t] for k in range(cin_g)]
            for o in range(cout_g)
        ]
    )


def slot_kernel_to_dense_loops(slots, groups):
    """The documented slot layout, unpacked with plain loops (independent of the layer's code):
    kernel[s, :, :, i, c] with c in input block b of group g feeds output block (b - s) mod t."""
    t, kh, kw, bi, cout = slots.shape
    bo = cout // (groups * t)
    dense = np.zeros((kh, kw, t * bi, cout), slots.dtype)
    for s in range(t):
        for g in range(groups):
            for b in range(t):
                ob = (b - s) % t
                src = slice(g * t * bo + b * bo, g * t * bo + (b + 1) * bo)
                dst = slice(g * t * bo + ob * bo, g * t * bo + (ob + 1) * bo)
                dense[:, :, b * bi : (b + 1) * bi, dst] = slots[s, :, :, :, src]
    return dense


def literal_reference(x, dense, strides, padding, pattern, groups):
    """Eq. 3 with SPEC's block D, one dilated conv per (output block, input block) pair, in
    NumPy float64. Returns y and backward(dy) -> (dx, d dense kernel)."""
    t = len(pattern)
    kh, kw, cin_g, cout = dense.shape
    cout_g = cout // groups
    bi, bo = cin_g // t, cout_g // t
    pieces = []
    for g in range(groups):
        for ob in range(t):
            for kb in range(t):
                r = pattern[(kb - ob) % t]
                extra = 0 if padding == "same" else 1
                pads = (((r - extra) * (kh - 1) // 2,) * 2, ((r - extra) * (kw - 1) // 2,) * 2)
                ci = slice(g * cin_g + kb * bi, g * cin_g + (kb + 1) * bi)
                co = slice(g * cout_g + ob * bo, g * cout_g + (ob + 1) * bo)
                k_in = slice(kb * bi, (kb + 1) * bi)
                y, back = numpy_conv2d(x[..., ci], dense[:, :, k_in, co], strides, r, pads)
                pieces.append((ci, co, k_in, y, back))
    y = np.zeros(pieces[0][3].shape[:3] + (cout,))
    for _, co, _, part, _ in pieces:
        y[..., co] += part

    def backward(dy):
        dx = np.zeros(x.shape)
        dk = np.zeros(dense.shape)
        for ci, co, k_in, _, back in pieces:
            dxi, dki = back(dy[..., co])
            dx[..., ci] += dxi
            dk[:, :, k_in, co] += dki
        return dx, dk

    return y, backward


def dilated_conv_by_taps(x, kernel, dilation):
    """'VALID' dilated convolution written as a sum over the kernel taps of shifted inputs times
    the tap's matrix: plain slices and matmuls, differentiable by every TensorFlow runtime."""
    kh, kw = kernel.shape[:2]
    out_h = x.shape[1] - dilation * (kh - 1)
    out_w = x.shape[2] - dilation * (kw - 1)
    y = 0.0
    for i in range(kh):
        for j in range(kw):
            window = x[:, i * dilation : i * dilation + out_h, j * dilation : j * dilation + out_w]
            y = y + tf.einsum("nhwc,co->nhwo", window, kernel[i, j])
    return y


def tf_literal_reference(layer, x):
    """Differentiable TF version of the literal reference, for the shared harness: one dilated
    conv (a sum over taps) per (output block, input block) pair, stride taken by slicing the
    stride-1 output."""
    t, groups = layer.cyclic_interval, layer.groups
    kernel = tf.cast(layer.kernel, "float32")
    x = tf.cast(x, "float32")
    _, kh, kw, bi, cout = kernel.shape
    bo = cout // (groups * t)
    outputs = [[0.0] * t for _ in range(groups)]
    for s in range(t):
        r = layer.dilation_pattern[s]
        extra = 0 if layer.padding == "same" else 1
        ph, pw = (r - extra) * (kh - 1) // 2, (r - extra) * (kw - 1) // 2
        for g in range(groups):
            for b in range(t):
                xb = x[..., (g * t + b) * bi : (g * t + b + 1) * bi]
                xb = tf.pad(xb, [[0, 0], [ph, ph], [pw, pw], [0, 0]])
                w = kernel[s, :, :, :, (g * t + b) * bo : (g * t + b + 1) * bo]
                y = dilated_conv_by_taps(xb, w, r)
                y = y[:, :: layer.strides[0], :: layer.strides[1], :]
                outputs[g][(b - s) % t] = outputs[g][(b - s) % t] + y
    y = tf.concat([block for group in outputs for block in group], axis=-1)
    if layer.use_bias:
        y = y + layer.bias
    return y


def _cotangent(shape):
    return (np.arange(np.prod(shape)).reshape(shape) % 5 - 2).astype("float64")


def _layer_values_and_grads(layer, x, cot):
    x = tf.constant(x, "float32")
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(y * tf.constant(cot, "float32"))
    dx, dkernel = tape.gradient(loss, [x, layer.kernel])
    return y.numpy(), dx.numpy(), dkernel.numpy()


def ps_layer(*args, formulation=None, **kwargs):
    """A PSConv2D computed with `formulation` (None: the one the layer picks)."""
    layer = PSConv2D(*args, **kwargs)
    layer._formulation = formulation
    return layer


def check_against_literal(shape, filters, kernel_size, strides, padding, pattern, groups, seed=0,
                          formulation=None):
    rng = np.random.default_rng(seed)
    t = len(pattern)
    layer = ps_layer(filters, kernel_size, strides=strides, padding=padding, cyclic_interval=t,
                     dilation_pattern=pattern, groups=groups, formulation=formulation)
    x = rng.standard_normal(shape).astype("float32")
    layer.build(x.shape)
    assert layer._formulation == (formulation or layer._formulation)
    layer.kernel.assign(rng.standard_normal(layer.kernel.shape).astype("float32"))
    dense = slot_kernel_to_dense_loops(layer.kernel.numpy(), groups)
    y_ref, backward = literal_reference(x, dense.astype("float64"), layer.strides, padding,
                                        pattern, groups)
    cot = _cotangent(y_ref.shape)
    y, dx, dslots = _layer_values_and_grads(layer, x, cot)
    dx_ref, ddense_ref = backward(cot)
    assert y.shape == tuple(layer.compute_output_shape(x.shape))
    np.testing.assert_allclose(y, y_ref, atol=1e-5 * max(1.0, np.abs(y_ref).max()), rtol=1e-5)
    np.testing.assert_allclose(dx, dx_ref, atol=1e-5 * max(1.0, np.abs(dx_ref).max()), rtol=1e-5)
    ddense = slot_kernel_to_dense_loops(dslots, groups)
    np.testing.assert_allclose(
        ddense, ddense_ref, atol=1e-5 * max(1.0, np.abs(ddense_ref).max()), rtol=1e-5
    )


# ----------------------------------------------------------------------------- literal reference


@pytest.fixture(params=FORMULATIONS)
def formulation(request):
    """Every formulation: grouped convs per slot, masked dense convs per distinct dilation, and
    ungrouped convs per input block (the layer picks one from the runtime and the block width)."""
    return request.param


@pytest.mark.parametrize(
    "t, pattern, groups",
    [(4, (1, 2, 1, 4), 1), (4, (1, 2, 1, 4), 2), (4, (2, 1, 4, 1), 2), (2, (1, 2), 1),
     (3, (1, 3, 2), 1), (8, (1, 2, 1, 1, 1, 1, 1, 1), 1)],
)
def test_matches_literal_reference(formulation, t, pattern, groups):
    channels = 2 * t * groups
    for strides in (1, 2):
        for padding in ("same", "valid"):
            check_against_literal((2, 9, 8, channels), channels, 3, strides, padding, pattern,
                                  groups, formulation=formulation)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    t=st.sampled_from([2, 3, 4, 8]),
    groups=st.sampled_from([1, 2]),
    in_mult=st.integers(1, 2),
    out_mult=st.integers(1, 2),
    size=st.tuples(st.integers(5, 10), st.integers(5, 10)),
    kernel_size=st.sampled_from([1, 3, 5, (3, 1)]),
    strides=st.sampled_from([1, 2, (2, 1), 3]),
    padding=st.sampled_from(["same", "valid"]),
    data=st.data(),
)
def test_random_configurations_match_literal_reference(
    t, groups, in_mult, out_mult, size, kernel_size, strides, padding, data
):
    pattern = tuple(data.draw(st.lists(st.integers(1, 4), min_size=t, max_size=t)))
    shape = (1, *size, t * groups * in_mult)
    formulation = data.draw(st.sampled_from(FORMULATIONS), label="formulation")
    check_against_literal(shape, t * groups * out_mult, kernel_size, strides, padding, pattern,
                          groups, seed=data.draw(st.integers(0, 100)), formulation=formulation)


def test_large_kernel_small_input_path_matches_literal_reference(formulation):
    """Tiny spatial size, many channels: strided slots of equal dilation are not merged (the
    kernel outweighs the input); the strided cases above take the merged path."""
    check_against_literal((1, 3, 3, 32), 32, 3, 1, "same", (1, 2, 1, 4), 1,
                          formulation=formulation)
    check_against_literal((1, 5, 4, 32), 32, 3, 2, "valid", (1, 2, 1, 4), 2,
                          formulation=formulation)


@pytest.mark.parametrize("onednn", ["0", "1"])
def test_each_onednn_setting_in_a_fresh_process(onednn):
    """TF_ENABLE_ONEDNN_OPTS=0 leaves TF's own CPU kernels, which cannot differentiate grouped or
    dilated convolutions: the layer picks ungrouped convs, stays exact, and warns once (naming
    the setting); with oneDNN it picks grouped convs per slot and does not warn."""
    script = (
        "import warnings\n"
        "from keras_structconv.layers import _conv_ops\n"
        f"assert _conv_ops.NATIVE_GROUPED_DILATED is {onednn == '1'}\n"
        "from tests.layers.test_ps_conv import check_against_literal, ps_layer\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    check_against_literal((2, 9, 8, 16), 16, 3, 2, 'same', (1, 2, 1, 4), 2)\n"
        "    check_against_literal((1, 7, 7, 8), 8, 3, 1, 'valid', (1, 3), 2)\n"
        "    wide = ps_layer(32)\n"
        "    wide.build((None, 8, 8, 32))\n"
        "    narrow = ps_layer(16)\n"
        "    narrow.build((None, 8, 8, 16))\n"
        "messages = [str(w.message) for w in caught if 'PSConv2D' in str(w.message)]\n"
        "print(wide._formulation, narrow._formulation, len(messages))\n"
        "print(*messages)\n"
    )
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=onednn, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary, message = result.stdout.splitlines()[-2:]
    if onednn == "1":
        assert summary == "slots masked 0"
    else:
        assert summary == "split masked 1"
        assert "TF_ENABLE_ONEDNN_OPTS=1" in message and "slower" in message


def test_formulation_follows_the_runtime_and_block_width():
    wide, narrow = ps_layer(32), ps_layer(16, groups=2)
    wide.build((None, 8, 8, 32))
    narrow.build((None, 8, 8, 16))
    assert wide._formulation == ("slots" if onednn_enabled() else "split")
    assert narrow._formulation == "masked"  # 2 input channels per block


def test_none_spatial_inputs_match_static(formulation):
    for padding in ("same", "valid"):
        layer = ps_layer(8, 3, strides=2, padding=padding, groups=2, formulation=formulation)
        dynamic = tf.function(layer, input_signature=[tf.TensorSpec((None, None, None, 8))])
        for size in ((11, 10), (8, 9)):
            x = np.random.default_rng(0).standard_normal((2, *size, 8)).astype("float32")
            np.testing.assert_allclose(dynamic(x).numpy(), layer(x).numpy(), atol=1e-5)


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


# ----------------------------------------------------------------------------- SPEC vectors


def _ones_layer(channels, strides, pattern, formulation):
    return ps_layer(channels, 3, strides=strides, padding="same", cyclic_interval=len(pattern),
                    dilation_pattern=pattern, kernel_initializer="ones", formulation=formulation)


def _channel_constant_input(values):
    return np.broadcast_to(np.asarray(values, "float32"), (1, 8, 8, len(values))).copy()


def test_spec_vector_powers_of_ten_stride_1(formulation):
    layer = _ones_layer(4, 1, (2, 1, 4, 1), formulation)
    y = layer(_channel_constant_input([10.0**c for c in range(4)])).numpy()[0]
    np.testing.assert_array_equal(y[0, 0], [4444] * 4)
    np.testing.assert_array_equal(y[1, 1], [9494, 4949, 9494, 4949])
    np.testing.assert_array_equal(y[2, 2], [9499, 4999, 9994, 9949])
    np.testing.assert_array_equal(y[4, 4], [9499, 4999, 9994, 9949])
    np.testing.assert_array_equal(y[7, 7], [4444] * 4)


def test_spec_vector_powers_of_ten_stride_2(formulation):
    layer = _ones_layer(4, 2, (2, 1, 4, 1), formulation)
    y = layer(_channel_constant_input([10.0**c for c in range(4)])).numpy()[0]
    assert y.shape == (4, 4, 4)
    np.testing.assert_array_equal(y[0, 0], [4444] * 4)  # TF 'SAME' would give 9494, 4949, ...
    np.testing.assert_array_equal(y[1, 1], [9499, 4999, 9994, 9949])
    np.testing.assert_array_equal(y[3, 3], [9494, 4949, 9494, 4949])


def test_spec_vector_powers_of_two_eight_channels(formulation):
    layer = _ones_layer(8, 1, (2, 1, 4, 1), formulation)
    y = layer(_channel_constant_input([2.0**c for c in range(8)])).numpy()[0]
    np.testing.assert_array_equal(y[1, 1], [2040, 2040, 1275, 1275, 2040, 2040, 1275, 1275])
    np.testing.assert_array_equal(y[2, 2], [2055, 2055, 1335, 1335, 2280, 2280, 2235, 2235])


def test_dilation_matrix_and_default_patterns():
    np.testing.assert_array_equal(
        PSConv2D(8, dilation_pattern=(2, 1, 4, 1)).dilation_matrix,
        [[2, 1, 4, 1], [1, 2, 1, 4], [4, 1, 2, 1], [1, 4, 1, 2]],
    )
    assert PSConv2D(8).dilation_pattern == (1, 2, 1, 4)
    assert default_dilation_pattern(2) == (1, 2)
    assert default_dilation_pattern(8) == (1, 2, 1, 1, 1, 1, 1, 1)
    assert PSConv2D(8, cyclic_interval=8).dilation_pattern == (1, 2, 1, 1, 1, 1, 1, 1)


def test_default_pattern_is_the_release_pattern_up_to_an_output_block_roll():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 9, 9, 8)).astype("float32")
    ours = PSConv2D(8, dilation_pattern=(1, 2, 1, 4))
    release = PSConv2D(8, dilation_pattern=(2, 1, 4, 1))
    ours.build(x.shape)
    release.build(x.shape)
    dense = rng.standard_normal((3, 3, 8, 8)).astype("float32")
    # Our output block o is the release's output block o + 1 (SPEC §1).
    release.set_dense_kernel(np.roll(dense, 2, axis=-1))
    ours.set_dense_kernel(dense)
    np.testing.assert_allclose(
        ours(x).numpy(), np.roll(release(x).numpy(), -2, axis=-1), atol=1e-5
    )


# ----------------------------------------------------------------------------- weights


def test_parameter_count_equals_vanilla_conv():
    layer = PSConv2D(64, 3)
    layer.build((None, 56, 56, 64))
    assert layer.count_params() == 36_864
    grouped = PSConv2D(128, 3, groups=32, use_bias=True)
    grouped.build((None, 8, 8, 128))
    assert grouped.count_params() == 3 * 3 * 4 * 128 + 128


def test_dense_and_slot_layouts_round_trip_and_match_the_documented_layout():
    rng = np.random.default_rng(0)
    slots = rng.standard_normal((4, 3, 3, 2, 16)).astype("float32")
    dense = slots_to_dense(slots, groups=2).numpy()
    np.testing.assert_array_equal(dense, slot_kernel_to_dense_loops(slots, 2))
    np.testing.assert_array_equal(dense_to_slots(dense, 4, groups=2).numpy(), slots)
    layer = PSConv2D(16, groups=2)
    layer.build((None, 8, 8, 16))
    layer.set_dense_kernel(dense)
    np.testing.assert_array_equal(layer.dense_kernel(), dense)


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


# ----------------------------------------------------------------------------- export

EXPORT_CASES = [
    # (channels, strides, groups): 4 input channels per block take the masked formulation,
    # 8 the grouped convs per slot (oneDNN) or the convs per input block (no oneDNN).
    (16, 1, 1),
    (16, 2, 1),
    (32, 1, 1),
    (32, 2, 1),
    (64, 2, 2),
]


def exported_layer(channels, strides, groups, formulation=None):
    layer = ps_layer(channels, 3, strides=strides, groups=groups, use_bias=True,
                     formulation=formulation)
    layer.build((None, 9, 9, channels))
    rng = np.random.default_rng(channels + strides)
    layer.set_weights([rng.standard_normal(w.shape).astype("float32") for w in layer.weights])
    return layer


def export_input(channels):
    return np.random.default_rng(7).standard_normal((2, 9, 9, channels)).astype("float32")


@pytest.mark.parametrize("formulation", FORMULATIONS)
@pytest.mark.parametrize("channels, strides, groups", EXPORT_CASES)
def test_portable_trace_equals_training_and_has_no_roll(formulation, channels, strides, groups):
    layer = exported_layer(channels, strides, groups, formulation)
    x = export_input(channels)
    concrete = portable_trace(layer, x.shape)
    assert "Roll" not in {op.type for op in concrete.graph.get_operations()}
    assert_relative_close(concrete(tf.constant(x)), layer(x), 1e-5)


@pytest.mark.parametrize("channels, strides, groups", EXPORT_CASES)
def test_converts_to_tflite_builtin_ops_and_matches(channels, strides, groups):
    layer = exported_layer(channels, strides, groups)
    x = export_input(channels)
    assert_relative_close(tflite_outputs(layer, x), layer(x), 1e-4)


@needs_onnx
@pytest.mark.parametrize("channels, strides, groups", EXPORT_CASES)
def test_converts_to_onnx_and_matches(channels, strides, groups):
    layer = exported_layer(channels, strides, groups)
    x = export_input(channels)
    assert_relative_close(onnx_outputs(layer, x), layer(x), 1e-4)
