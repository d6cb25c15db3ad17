"""Quadtree labels, statistics, loss and the sparse decoder of the Quadtree Generating Network.

- `labels`: T-pyramid labels and compact quadtrees; `losses`: the quadtree loss; `stats`:
  quadtree statistics of label maps; `assemble`: full-resolution predictions from the levels.
- `sparse`: sparse feature maps and their layers (submanifold convolution, batch normalisation,
  upsampling, dense skip addition); `residual_unit`, `decoder`: the decoder; `propagation`: which
  sites each level passes on.

Reference: K. Chitta, J. M. Alvarez, M. Hebert, "Quadtree Generating Networks: Efficient
Hierarchical Scene Parsing with Sparse Convolutions", WACV 2020 (arXiv:1907.11821).
"""

from keras_structconv.quadtree.assemble import assemble_prediction
from keras_structconv.quadtree.decoder import QuadtreeDecoder
from keras_structconv.quadtree.labels import (
    COMPOSITE,
    NOT_SUPERVISED,
    CompactQuadtree,
    decode_quadtree,
    encode_quadtree,
    pad_to_multiple,
    quadtree_cell_counts,
    quadtree_cell_masks,
    tpyramid_labels,
)
from keras_structconv.quadtree.losses import (
    QuadtreeLossWeights,
    fixed_level_weights,
    level_cross_entropy,
    quadtree_level_losses,
)
from keras_structconv.quadtree.propagation import composite_masks_from_labels, sparse_level_labels
from keras_structconv.quadtree.residual_unit import SparseResidualUnit
from keras_structconv.quadtree.sparse import (
    SparseBatchNormalization,
    SparseDenseAdd,
    SparseUpsampling2D,
    SubmanifoldConv2D,
    check_sparse_map,
    densify,
    gather_dense,
    neighbour_table,
    sparsify,
    upsample_features,
    upsample_indices,
)
from keras_structconv.quadtree.stats import (
    QuadtreeStatistics,
    load_camvid_label_maps,
    quadtree_statistics,
)

__all__ = [
    "COMPOSITE",
    "NOT_SUPERVISED",
    "CompactQuadtree",
    "QuadtreeDecoder",
    "QuadtreeLossWeights",
    "QuadtreeStatistics",
    "SparseBatchNormalization",
    "SparseDenseAdd",
    "SparseResidualUnit",
    "SparseUpsampling2D",
    "SubmanifoldConv2D",
    "assemble_prediction",
    "check_sparse_map",
    "composite_masks_from_labels",
    "decode_quadtree",
    "densify",
    "encode_quadtree",
    "fixed_level_weights",
    "gather_dense",
    "level_cross_entropy",
    "load_camvid_label_maps",
    "neighbour_table",
    "pad_to_multiple",
    "quadtree_cell_counts",
    "quadtree_cell_masks",
    "quadtree_level_losses",
    "quadtree_statistics",
    "sparse_level_labels",
    "sparsify",
    "tpyramid_labels",
    "upsample_features",
    "upsample_indices",
]
