"""Quadtree labels, statistics and loss for the Quadtree Generating Network (QGN).

Reference: K. Chitta, J. M. Alvarez, M. Hebert, "Quadtree Generating Networks: Efficient
Hierarchical Scene Parsing with Sparse Convolutions", WACV 2020 (arXiv:1907.11821).
"""

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
from keras_structconv.quadtree.stats import (
    QuadtreeStatistics,
    load_camvid_label_maps,
    quadtree_statistics,
)

__all__ = [
    "COMPOSITE",
    "NOT_SUPERVISED",
    "CompactQuadtree",
    "QuadtreeLossWeights",
    "QuadtreeStatistics",
    "decode_quadtree",
    "encode_quadtree",
    "fixed_level_weights",
    "level_cross_entropy",
    "load_camvid_label_maps",
    "pad_to_multiple",
    "quadtree_cell_counts",
    "quadtree_cell_masks",
    "quadtree_level_losses",
    "quadtree_statistics",
    "tpyramid_labels",
]

from keras_structconv.quadtree.assemble import assemble_prediction  # noqa: E402
from keras_structconv.quadtree.decoder import (  # noqa: E402
    QuadtreeDecoder,
    SparseResidualUnit,
    composite_masks_from_labels,
    sparse_level_labels,
)
from keras_structconv.quadtree.sparse import (  # noqa: E402
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

__all__ += [
    "QuadtreeDecoder",
    "SparseBatchNormalization",
    "SparseDenseAdd",
    "SparseResidualUnit",
    "SparseUpsampling2D",
    "SubmanifoldConv2D",
    "assemble_prediction",
    "check_sparse_map",
    "composite_masks_from_labels",
    "densify",
    "gather_dense",
    "neighbour_table",
    "sparse_level_labels",
    "sparsify",
    "upsample_features",
    "upsample_indices",
]
