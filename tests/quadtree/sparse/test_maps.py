"""Sparse maps: sparsify/densify round trips, upsampled indices and the range and length checks
(eager ValueError, graph-mode assertions) of every op."""

import numpy as np
import pytest
import tensorflow as tf

from keras_structconv.quadtree.sparse import (
    SparseDenseAdd,
    SparseUpsampling2D,
    SubmanifoldConv2D,
    check_sparse_map,
    densify,
    gather_dense,
    neighbour_table,
    sparsify,
    upsample_indices,
)
from tests.quadtree.sparse.sparse_reference import random_map


def test_sparsify_densify_round_trip():
    dense, mask, _, _ = random_map(0, shuffle=False)
    features, indices = sparsify(dense, mask)
    np.testing.assert_array_equal(indices.numpy(), np.argwhere(mask))
    np.testing.assert_array_equal(features.numpy(), dense[mask])
    np.testing.assert_array_equal(densify(features, indices, 2, (7, 6)).numpy(), dense)
    # Any site order densifies to the same map.
    _, _, shuffled_features, shuffled_indices = random_map(0)
    np.testing.assert_array_equal(
        densify(shuffled_features, shuffled_indices, 2, (7, 6)).numpy(), dense
    )

def test_upsample_indices_children():
    children = upsample_indices(tf.constant([[1, 2, 3]], tf.int32)).numpy()
    np.testing.assert_array_equal(children, [[1, 4, 6], [1, 4, 7], [1, 5, 6], [1, 5, 7]])

def test_errors_out_of_range_and_length_mismatch():
    features = tf.zeros([2, 3])
    with pytest.raises(ValueError, match="indices.*grid"):
        densify(features, tf.constant([[0, 0, 0], [0, 7, 0]]), 1, (7, 6))
    with pytest.raises(ValueError, match="indices.*grid"):
        densify(features, tf.constant([[0, 0, 0], [1, 0, 0]]), 1, (7, 6))  # batch 1 >= 1
    with pytest.raises(ValueError, match="indices.*grid"):
        neighbour_table(tf.constant([[0, 0, -1]]), (7, 6))
    with pytest.raises(ValueError, match="same number of rows"):
        densify(features, tf.constant([[0, 0, 0]]), 1, (7, 6))
    with pytest.raises(ValueError, match="same number of rows"):
        SparseUpsampling2D()(features, tf.constant([[0, 0, 0]]))
    with pytest.raises(ValueError, match="same number of rows"):
        SubmanifoldConv2D(2, 3)(features, tf.zeros([3, 9], tf.int32))
    with pytest.raises(ValueError, match="indices.*grid"):
        gather_dense(tf.zeros([1, 4, 4, 3]), tf.constant([[0, 4, 0]]))
    with pytest.raises(ValueError, match="same channels"):
        SparseDenseAdd()(features, tf.constant([[0, 0, 0], [0, 1, 1]]), tf.zeros([1, 4, 4, 5]))
    with pytest.raises(ValueError, match="neighbour table"):
        SubmanifoldConv2D(2, 3)(features)
    with pytest.raises(ValueError, match="odd"):
        SubmanifoldConv2D(2, 2)
    with pytest.raises(ValueError, match="shape \\(N, 3\\)"):
        check_sparse_map(None, tf.zeros([2, 2], tf.int32), (4, 4))

def test_graph_mode_range_check_raises_at_run_time():
    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.int32)])
    def to_dense(indices):
        return densify(tf.ones([tf.shape(indices)[0], 1]), indices, 1, (4, 4))

    assert float(tf.reduce_sum(to_dense(tf.constant([[0, 3, 3]])))) == 1.0
    with pytest.raises(tf.errors.InvalidArgumentError, match="grid"):
        to_dense(tf.constant([[0, 4, 0]]))
