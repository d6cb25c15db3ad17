"""The AND-OR grammar (AOG) of an AOG building block (AOGNets, Li, Song, Wu, CVPR 2019,
Section 3 and Algorithm 1).

- `grammar`: the definition: `build_grammar`, `AOGGrammar`, `Node`, node kinds;
- `drawing`: DOT text and pictures (Graphviz or matplotlib).

Example:

>>> g = build_grammar(4, prune=1)
>>> g.counts()
{'terminal': 8, 'and': 5, 'or': 8}
"""

from keras_structconv.aog.drawing import draw, graphviz_available, to_dot
from keras_structconv.aog.grammar import (
    AND,
    KINDS,
    OR,
    PRUNE_MODES,
    TERMINAL,
    AOGGrammar,
    Node,
    build_grammar,
)

__all__ = [
    "AND",
    "KINDS",
    "OR",
    "PRUNE_MODES",
    "TERMINAL",
    "AOGGrammar",
    "Node",
    "build_grammar",
    "draw",
    "graphviz_available",
    "to_dot",
]
