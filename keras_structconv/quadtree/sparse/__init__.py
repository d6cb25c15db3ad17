"""Sparse feature maps and submanifold operators for the quadtree decoder (QGN).

A sparse feature map over a grid of static size `(H, W)` and a batch of B images is two plain
dense tensors: `features [N, C]` (one row per *active site*) and `indices [N, 3]` int32
`(batch, row, col)` of each row; sites absent from `indices` are inactive. No
`tf.RaggedTensor`/`tf.SparseTensor` crosses a Keras layer boundary (they break `fit`), and no
operator allocates anything of the dense grid's size: memory follows N. Each operator equals the
*masked dense* computation (a dense map that is zero at inactive sites) read at the active sites.

- `maps`: `check_sparse_map`, `sparsify`, `densify`, `gather_dense`, `upsample_indices`,
  `upsample_features`, `upsample_dense`, `all_sites`, `active_mask`.
- `neighbours`: `kernel_offsets`, `lower_bound`, `neighbour_table` (`[N, K*K]`, built once per
  level and shared by every convolution of that level).
- `submanifold`: `SubmanifoldConv2D` and the op `submanifold_conv` (Eq. 10).
- `batch_norm`: `SparseBatchNormalization` (statistics over the active sites only).
- `upsampling`: `SparseUpsampling2D` (Eq. 11). `dense_add`: `SparseDenseAdd` (encoder skips).
- ReLU: any element-wise activation applies to `features` unchanged (`keras.layers.ReLU`).

Reference: K. Chitta, J. M. Alvarez, M. Hebert, "Quadtree Generating Networks: Efficient
Hierarchical Scene Parsing with Sparse Convolutions", WACV 2020 (arXiv:1907.11821), Sec. 3.1
"Sparse activations" (Eq. 9) and Sec. 3.2 (Eq. 10-11); B. Graham, M. Engelcke, L. van der
Maaten, "3D Semantic Segmentation with Submanifold Sparse Convolutional Networks", CVPR 2018.
"""

from keras_structconv.quadtree.sparse.batch_norm import SparseBatchNormalization
from keras_structconv.quadtree.sparse.dense_add import SparseDenseAdd
from keras_structconv.quadtree.sparse.maps import (
    CHILD_OFFSETS,
    active_mask,
    all_sites,
    check_sparse_map,
    densify,
    gather_dense,
    sparsify,
    upsample_dense,
    upsample_features,
    upsample_indices,
)
from keras_structconv.quadtree.sparse.neighbours import kernel_offsets, lower_bound, neighbour_table
from keras_structconv.quadtree.sparse.submanifold import SubmanifoldConv2D, submanifold_conv
from keras_structconv.quadtree.sparse.upsampling import SparseUpsampling2D

__all__ = [
    "CHILD_OFFSETS",
    "SparseBatchNormalization",
    "SparseDenseAdd",
    "SparseUpsampling2D",
    "SubmanifoldConv2D",
    "active_mask",
    "all_sites",
    "check_sparse_map",
    "densify",
    "gather_dense",
    "kernel_offsets",
    "lower_bound",
    "neighbour_table",
    "sparsify",
    "submanifold_conv",
    "upsample_dense",
    "upsample_features",
    "upsample_indices",
]
