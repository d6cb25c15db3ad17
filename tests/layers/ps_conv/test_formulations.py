"""PSConv2D's formulations (grouped convs per slot, masked dense convs, ungrouped convs per input
block): each against a literal block-D reference in values and gradients, in both oneDNN settings
and on the PSConv authors' test vectors; the rule that picks one per layer."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_structconv._internals import onednn_enabled
from keras_structconv.layers.ps_conv import FORMULATIONS
from tests.layers.ps_conv.ps_conv_references import check_against_literal, ps_layer

REPO = Path(__file__).resolve().parents[3]


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


# Sets both oneDNN settings itself: `make test-onednn-other` need not run it again.
@pytest.mark.onednn_neutral
@pytest.mark.parametrize("onednn", ["0", "1"])
def test_each_onednn_setting_in_a_fresh_process(onednn):
    """TF_ENABLE_ONEDNN_OPTS=0 leaves TF's own CPU kernels, which cannot differentiate grouped or
    dilated convolutions: the layer picks ungrouped convs, stays exact, and warns once (naming
    the setting); with oneDNN it picks grouped convs per slot and does not warn."""
    script = (
        "import warnings\n"
        "from keras_structconv.layers import _conv_ops\n"
        f"assert _conv_ops.NATIVE_GROUPED_DILATED is {onednn == '1'}\n"
        "from tests.layers.ps_conv.ps_conv_references import check_against_literal, ps_layer\n"
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
