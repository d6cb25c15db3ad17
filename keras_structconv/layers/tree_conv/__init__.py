"""Tree convolution (TreeConv), G. Wang et al., KDD 2020.

- `TreeConv2D`: the paper's operator (Eq. 1-5); `ReferenceTreeConv2D`: the authors' released
  variant; `treeconv_factory`: either one for `keras_structconv.convert` and the model builders.
- `geometry`: leaf widths, pooling cells, upsampling; `gates`: the parse as a recurrence on gate
  logits; `kernels`: the fused XLA kernels of the paper variant; `portable`: its plain-op form.
"""

from keras_structconv.layers.tree_conv.factory import VARIANTS, treeconv_factory
from keras_structconv.layers.tree_conv.geometry import leaf_widths, pool_factor
from keras_structconv.layers.tree_conv.layer import MAX_DEPTH, TreeConv2D
from keras_structconv.layers.tree_conv.reference import ReferenceTreeConv2D

__all__ = [
    "MAX_DEPTH",
    "VARIANTS",
    "ReferenceTreeConv2D",
    "TreeConv2D",
    "leaf_widths",
    "pool_factor",
    "treeconv_factory",
]
