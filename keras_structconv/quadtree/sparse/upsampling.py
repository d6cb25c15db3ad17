"""2x2 nearest upsampling of a sparse feature map (QGN Eq. 11).

Every active site `(b, r, c)` becomes its four children `(b, 2r + i, 2c + j)`, `i, j in {0, 1}`,
with the parent's features: `UpSampling2D(2)` of the masked dense map, read at the children of
the active sites.

Reference: K. Chitta, J. M. Alvarez, M. Hebert, "Quadtree Generating Networks: Efficient
Hierarchical Scene Parsing with Sparse Convolutions", WACV 2020, Sec. 3.2, Eq. 11.
"""

import keras
import tensorflow as tf

from keras_structconv.quadtree.sparse.maps import (
    check_indices_rank,
    check_lengths,
    upsample_features,
    upsample_indices,
    with_checks,
)


@keras.saving.register_keras_serializable(package="keras_structconv")
class SparseUpsampling2D(keras.layers.Layer):
    """2x2 nearest upsampling of a sparse map (QGN Eq. 11): every active site `(b, r, c)` becomes
    its four children `(b, 2r + i, 2c + j)`, `i, j in {0, 1}`, with the parent's features.

    The result equals `UpSampling2D(2)` of the masked dense map, restricted to the children of
    the active sites (which are exactly the active sites of the upsampled mask).

    Call arguments: `features [N, C]`, `indices [N, 3]` int32.

    Returns: `(features [4N, C], indices [4N, 3])`, parent by parent in `CHILD_OFFSETS` order.

    Example:
        >>> children, child_indices = SparseUpsampling2D()(features, indices)

    Reference: Chitta et al., "Quadtree Generating Networks", WACV 2020, Eq. 11.
    """

    def call(self, features, indices):
        features = tf.convert_to_tensor(features)
        indices = tf.convert_to_tensor(indices)
        check_indices_rank(indices)
        features = with_checks(features, check_lengths(features, indices))
        return upsample_features(features), upsample_indices(indices)

    def compute_output_shape(self, features_shape, indices_shape):
        rows = None if features_shape[0] is None else 4 * features_shape[0]
        return (rows, features_shape[-1]), (rows, 3)

    def compute_output_spec(self, features, indices):
        features_shape, indices_shape = self.compute_output_shape(features.shape, indices.shape)
        return (
            keras.KerasTensor(features_shape, dtype=self.compute_dtype),
            keras.KerasTensor(indices_shape, dtype="int32"),
        )
