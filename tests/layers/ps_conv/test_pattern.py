"""The dilation pattern and the kernel layouts of PSConv2D: the block dilation matrix, the
default patterns, the authors' release pattern, and the slot layout against its documented form."""

import numpy as np
import pytest

from keras_structconv.layers.ps_conv import (
    PSConv2D,
    default_dilation_pattern,
    dense_to_slots,
    slots_to_dense,
)
from tests.layers.ps_conv.ps_conv_references import block_dilations, slot_kernel_to_dense_loops

# Left out of `make test-onednn-other`: dilation patterns and kernel layouts in NumPy: no
# TensorFlow kernel.
pytestmark = pytest.mark.onednn_neutral


def test_dilation_matrix_and_default_patterns():
    matrix = PSConv2D(8, dilation_pattern=(2, 1, 4, 1)).dilation_matrix
    np.testing.assert_array_equal(
        matrix, [[2, 1, 4, 1], [1, 2, 1, 4], [4, 1, 2, 1], [1, 4, 1, 2]]
    )
    # Channel by channel (2 channels per block), it is SPEC's block D.
    np.testing.assert_array_equal(
        np.kron(matrix, np.ones((2, 2), "int64")), block_dilations((2, 1, 4, 1), 8, 8, 1)
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
