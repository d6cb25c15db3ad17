"""SparseUpsampling2D against `UpSampling2D(2)` of the masked dense map."""

import keras
import numpy as np

from keras_structconv.quadtree.sparse import SparseUpsampling2D, densify
from tests.quadtree.sparse.sparse_reference import assert_close, gradients, masked, random_map


def test_upsampling_equals_dense_nearest_upsampling():
    dense, mask, features, indices = random_map(5)
    layer = SparseUpsampling2D()

    def sparse(x):
        out, child_indices = layer(x, indices)
        return densify(out, child_indices, 2, (14, 12))

    def reference(x):
        grid = densify(x, indices, 2, (7, 6))
        up = keras.layers.UpSampling2D(2, interpolation="nearest")(grid)
        up_mask = np.repeat(np.repeat(mask, 2, axis=1), 2, axis=2)
        return masked(up, up_mask)

    ours, ours_grads = gradients(sparse, [features])
    ref, ref_grads = gradients(reference, [features])
    assert_close(ours, ref, what="forward")
    assert_close(ours_grads[0], ref_grads[0], what="d/d features")
    _, child_indices = layer(features, indices)
    up_mask = np.repeat(np.repeat(mask, 2, axis=1), 2, axis=2)
    assert sorted(map(tuple, child_indices.numpy().tolist())) == sorted(
        map(tuple, np.argwhere(up_mask).tolist())
    )
