"""SparseDenseAdd against the masked dense sum (values and both gradients)."""

import numpy as np
import tensorflow as tf

from keras_structconv.quadtree.sparse import SparseDenseAdd, densify
from tests.quadtree.sparse.sparse_reference import (
    assert_close,
    at_sites,
    gradients,
    masked,
    random_map,
)


def test_sparse_dense_add_values_and_gradients():
    dense, mask, features, indices = random_map(6)
    skip = tf.constant(np.random.default_rng(9).standard_normal((2, 7, 6, 4)), "float32")
    layer = SparseDenseAdd()
    ours, ours_grads = gradients(lambda x, s: layer(x, indices, s), [features, skip])
    ref, ref_grads = gradients(
        lambda x, s: at_sites(masked(densify(x, indices, 2, (7, 6)) + s, mask), indices),
        [features, skip],
    )
    assert_close(ours, ref, what="forward")
    assert_close(ours_grads[0], ref_grads[0], what="d/d features")
    assert_close(ours_grads[1], ref_grads[1], what="d/d dense (zero at inactive sites)")
