"""The operators, one per module. Each module starts with its paper reference and definition."""

__all__ = []

from keras_structconv.layers.aog_block import AOGBlock  # noqa: E402

__all__ += ["AOGBlock"]
from keras_structconv.layers.tree_attention import TAM, TreeAttention  # noqa: E402

__all__ += ["TAM", "TreeAttention"]
from keras_structconv.layers.ps_conv import PSConv2D, psconv_factory  # noqa: E402

__all__ += ["PSConv2D", "psconv_factory"]
from keras_structconv.layers.tree_conv import TreeConv2D, treeconv_factory  # noqa: E402

__all__ += ["TreeConv2D", "treeconv_factory"]
from keras_structconv.layers.grouped_conv import GroupedConv2D  # noqa: E402

__all__ += ["GroupedConv2D"]
