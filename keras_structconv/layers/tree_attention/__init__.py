"""TreeAttention (TAM), the tree-structured attention module.

- `levels`: the tree geometry (`tree_levels`);
- `ops`, `kernels`, `fused`: the training formulation, XLA-compiled kernels with a hand-written
  backward pass;
- `portable`: the export formulation (TFLite builtin and ONNX ops only);
- `layer`: the Keras layer.
"""

from keras_structconv.layers.tree_attention.layer import TAM, TreeAttention
from keras_structconv.layers.tree_attention.levels import Level, tree_levels

__all__ = ["TAM", "Level", "TreeAttention", "tree_levels"]
