"""Sparse + dense addition: `features + dense[indices]`, the quadtree decoder's encoder skip.

Only the N active rows of the dense map are read; the gradient with respect to the dense map is
dense, zero at the inactive sites.

Reference: K. Chitta, J. M. Alvarez, M. Hebert, "Quadtree Generating Networks: Efficient
Hierarchical Scene Parsing with Sparse Convolutions", WACV 2020, Sec. 3.2 "Skip connections".
"""

import keras
import tensorflow as tf

from keras_structconv.quadtree.sparse.maps import (
    check_indices_rank,
    check_lengths,
    gather_dense,
    with_checks,
)


@keras.saving.register_keras_serializable(package="keras_structconv")
class SparseDenseAdd(keras.layers.Layer):
    """Sparse + dense addition: `features + dense[indices]` (the decoder's encoder skip).

    Only the N active rows of the dense map are read; the gradient with respect to `dense` is
    dense, zero at the inactive sites. To add a 1x1 convolution of the dense map, gather first
    (`gather_dense`) and apply `SubmanifoldConv2D(filters, 1)` to the N rows: the projection then
    costs N rows, not the whole grid.

    Call arguments: `features [N, C]`, `indices [N, 3]` int32, `dense [B, H, W, C]` (static H, W).

    Output shape: `(N, C)`.

    Raises:
        ValueError: indices outside the dense map, row-count or channel mismatch.

    Example:
        >>> outputs = SparseDenseAdd()(features, indices, encoder_map)   # (N, C)

    Reference: Chitta et al., "Quadtree Generating Networks", WACV 2020, Sec. 3.2 "Skip
    connections".
    """

    def call(self, features, indices, dense):
        features = tf.cast(features, self.compute_dtype)
        dense = tf.cast(dense, self.compute_dtype)
        indices = tf.convert_to_tensor(indices)
        check_indices_rank(indices)
        if features.shape[-1] is not None and dense.shape[-1] is not None:
            if features.shape[-1] != dense.shape[-1]:
                raise ValueError(
                    "`features` and `dense` must have the same channels. Received: "
                    f"features.shape={features.shape}, dense.shape={dense.shape}"
                )
        features = with_checks(features, check_lengths(features, indices))
        return features + gather_dense(dense, indices)

    def compute_output_shape(self, features_shape, indices_shape, dense_shape):
        return tuple(features_shape)
