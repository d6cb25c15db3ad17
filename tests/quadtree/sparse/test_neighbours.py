"""The neighbour table against brute force, and `lower_bound` (searchsorted and its portable
binary search) against NumPy."""

import numpy as np
import pytest
import tensorflow as tf

from keras_structconv.layers import portable_ops
from keras_structconv.quadtree.sparse import kernel_offsets, lower_bound, neighbour_table
from tests.quadtree.sparse.sparse_reference import random_map

# Left out of `make test-onednn-other`: index search on integer coordinates: no convolution,
# matmul or pooling kernel.
pytestmark = pytest.mark.onednn_neutral


@pytest.mark.parametrize("kernel_size", [3, 5])
def test_neighbour_table_matches_brute_force(kernel_size):
    _, _, _, indices = random_map(1, shape=(3, 6, 5, 1), density=0.6)
    table = neighbour_table(indices, (6, 5), kernel_size).numpy()
    sites = {tuple(site): row for row, site in enumerate(indices.numpy().tolist())}
    expected = np.full((len(sites), kernel_size**2), len(sites))
    for row, (b, r, c) in enumerate(indices.numpy().tolist()):
        for tap, (dr, dc) in enumerate(kernel_offsets(kernel_size)):
            expected[row, tap] = sites.get((b, r + dr, c + dc), len(sites))
    np.testing.assert_array_equal(table, expected)

@pytest.mark.parametrize("portable", [False, True], ids=["searchsorted", "portable"])
@pytest.mark.parametrize("length", [0, 1, 2, 7, 64, 1000])
def test_lower_bound_equals_numpy_searchsorted(length, portable):
    """Sorted values with repeats, queries below, between, on and above them."""
    rng = np.random.default_rng(length)
    values = np.sort(rng.integers(-50, 50, length)).astype("int64")
    queries = rng.integers(-60, 60, 300).astype("int64")
    expected = np.searchsorted(values, queries, side="left")
    spec = tf.TensorSpec([None], tf.int64)
    with portable_ops(portable):
        eager = lower_bound(tf.constant(values), tf.constant(queries))
        # Unknown length: the portable search runs its full number of steps.
        traced = tf.function(lower_bound, input_signature=[spec, spec])(values, queries)
    np.testing.assert_array_equal(eager.numpy(), expected)
    np.testing.assert_array_equal(traced.numpy(), expected)
    assert eager.dtype == tf.int32

def test_portable_lower_bound_has_no_lowerbound_op():
    spec = tf.TensorSpec([None], tf.int64)
    with portable_ops():
        graph = tf.function(lower_bound).get_concrete_function(spec, spec).graph
    op_types = {op.type for op in graph.get_operations()}
    assert "LowerBound" not in op_types
    assert {"GatherV2", "SelectV2"} <= op_types

@pytest.mark.parametrize("kernel_size", [3, 5])
def test_neighbour_table_is_the_same_in_portable_ops(kernel_size):
    _, _, _, indices = random_map(4, shape=(2, 9, 8, 1), density=0.4)
    with portable_ops():
        portable = neighbour_table(indices, (9, 8), kernel_size)
    np.testing.assert_array_equal(portable, neighbour_table(indices, (9, 8), kernel_size))

def test_neighbour_table_of_no_site():
    table = neighbour_table(tf.zeros([0, 3], tf.int32), (4, 4), 3)
    assert table.shape == (0, 9)
