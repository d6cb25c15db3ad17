"""The AND-OR grammar (AOG) of an AOG building block: construction, pruning, laterals.

Reference: Li, Song, Wu, "AOGNets: Compositional Grammatical Architectures for Deep Learning",
CVPR 2019 (arXiv:1711.05847), Section 3 and Algorithm 1.

Definition. The channels of a feature map are split into a "sentence" of `N` primitives (words)
0..N-1. Every interval `[i, j]` of words is a non-terminal symbol with three rules:

- termination `S_ij -> t_ij`: a Terminal node reading the channel slices i..j of the block input;
- binary decomposition `S_ij(m) -> [L_{i,i+m} . R_{i+m+1,j}]`, `0 <= m < j - i`: an AND node whose
  input concatenates the outputs of its two child OR nodes;
- alternatives `S_ij -> S_ij(0) | ... | S_ij(j-i-1)` (and `t_ij`): an OR node whose input sums the
  outputs of its children.

Algorithm 1 unfolds these rules breadth-first from the root OR node `[0, N-1]`, creating each node
once (the graph is a DAG: an OR node may have several AND parents). Node ids are the creation order
of that breadth-first search (root OR = 0).

Pruning of syntactically symmetric splits (Section 3.3) is applied inside the breadth-first
search, so only nodes reachable top-down from the root through kept splits exist: mode 1 keeps the
splits whose left part is not longer than the right part (`m + 1 <= k - m - 1` for an interval of
length `k`), mode 2 those whose left part is not shorter. For N=4 this gives 8/5/8
Terminal/AND/OR nodes (applying the rule to every interval instead would leave 7 AND nodes).

Lateral connections (dependency grammar, Section 3.1): OR nodes of the same length `k < N`, sorted
by start index, form a chain flowing left to right (each OR node receives its left neighbour as
lateral child); AND nodes of the same length, sorted by the start indexes of their two children,
form a chain flowing right to left (each AND node receives its right neighbour). The two kinds flow
in opposite directions, as the paper asks; the paper does not say which kind goes which way, so
this choice is ours.

`npaths(v)` counts the root-to-v paths over syntactic edges (laterals excluded); the AOG block uses
`npaths(parent) / npaths(child)` to undo double counting on its residual paths. `parents` lists
syntactic parents first, then the lateral parent (the node receiving this one as lateral child).

Determinism: AND children are always ordered left then right. The authors' release keeps some
child lists in Python sets, so a few of its AND nodes concatenate right-then-left; that order is
not reproduced (it changes no parameter count, only which channels of an AND node come first).

`AOGGrammar.draw(path)` and `AOGGrammar.to_dot()` render the graph (`keras_structconv.aog.drawing`).

This module imports neither Keras nor TensorFlow.
"""

from __future__ import annotations

import collections
import dataclasses

from keras_structconv._validation import int_in_range

TERMINAL = "terminal"
AND = "and"
OR = "or"
KINDS = (TERMINAL, AND, OR)
PRUNE_MODES = (None, 0, 1, 2)


@dataclasses.dataclass(eq=False)
class Node:
    """One node of the grammar.

    Attributes:
        id: creation order in Algorithm 1 (root OR node = 0).
        kind: `"terminal"`, `"and"` or `"or"`.
        start, end: the interval of primitives covered, inclusive.
        split: for AND nodes, `m` of `A_{start,end}(m)`: the left child covers `start..start+m`.
        children: syntactic children; OR: its Terminal node then its AND nodes by split;
            AND: left child, right child.
        lateral: id of the lateral child (same kind and length), or None.
        parents: syntactic parents, then the lateral parent if any.
        npaths: number of root-to-node paths over syntactic edges.
    """

    id: int
    kind: str
    start: int
    end: int
    split: int | None = None
    children: list = dataclasses.field(default_factory=list)
    lateral: int | None = None
    parents: list = dataclasses.field(default_factory=list)
    npaths: int = 0

    @property
    def length(self):
        """Number of primitives covered."""
        return self.end - self.start + 1

    @property
    def label(self):
        """Short readable name, e.g. `OR[0,3]`, `AND[0|1,3]`, `T[2]`."""
        if self.kind == AND:
            cut = self.start + self.split
            return f"AND[{_span(self.start, cut)}|{_span(cut + 1, self.end)}]"
        prefix = "OR" if self.kind == OR else "T"
        return f"{prefix}[{_span(self.start, self.end)}]"

    def __repr__(self):
        return f"Node({self.id}, {self.label}, npaths={self.npaths})"


def _span(a, b):
    return str(a) if a == b else f"{a},{b}"


def _check_arguments(prune, lateral):
    if isinstance(prune, bool) or prune not in PRUNE_MODES:
        raise ValueError(
            "`prune` must be None (full grammar), 1 (keep splits with left <= right) or 2 (keep "
            f"splits with left >= right); 0 also means no pruning. Received: prune={prune!r}"
        )
    if not isinstance(lateral, bool):
        raise ValueError(f"`lateral` must be True or False. Received: lateral={lateral!r}")


def _keeps_split(prune, split, length):
    """Whether pruning mode `prune` keeps split `m` of an interval of `length` primitives."""
    left, right = split + 1, length - split - 1
    if prune == 1:
        return left <= right
    if prune == 2:
        return left >= right
    return True


class AOGGrammar:
    """The AND-OR graph of an AOG building block; build it with `build_grammar`.

    Attributes:
        num_primitives: N, the number of channel groups ("words").
        prune: None (full), 1 or 2 (see the module docstring).
        lateral: whether lateral connections were added.
        nodes: list of `Node`, indexed by id.
        root: the root OR node (id 0).
    """

    def __init__(self, num_primitives, prune=None, lateral=True):
        num_primitives = int_in_range(num_primitives, "num_primitives", 1)
        _check_arguments(prune, lateral)
        self.num_primitives = num_primitives
        self.prune = None if prune == 0 else prune
        self.lateral = lateral
        self.nodes = []
        self._build_syntactic_graph()
        if lateral:
            self._add_lateral_connections()
        self._count_paths()
        self._order = self._children_first_order()

    # ------------------------------------------------------------------ construction

    def _new_node(self, kind, start, end, split=None):
        node = Node(len(self.nodes), kind, start, end, split)
        self.nodes.append(node)
        return node

    @staticmethod
    def _link(parent, child):
        parent.children.append(child.id)
        child.parents.append(parent.id)

    def _build_syntactic_graph(self):
        """Algorithm 1 with pruning folded in: breadth-first from the root, nodes created once."""
        root = self._new_node(OR, 0, self.num_primitives - 1)
        or_nodes = {(root.start, root.end): root}
        queue = collections.deque([root])
        while queue:
            node = queue.popleft()
            if node.kind == OR:
                self._link(node, self._new_node(TERMINAL, node.start, node.end))
                for split in range(node.length - 1):
                    if _keeps_split(self.prune, split, node.length):
                        and_node = self._new_node(AND, node.start, node.end, split)
                        self._link(node, and_node)
                        queue.append(and_node)
                continue
            cut = node.start + node.split
            for interval in ((node.start, cut), (cut + 1, node.end)):
                child = or_nodes.get(interval)
                if child is None:
                    child = or_nodes[interval] = self._new_node(OR, *interval)
                    queue.append(child)
                self._link(node, child)

    def _add_lateral_connections(self):
        """Chains of same-length OR nodes (left to right) and AND nodes (right to left)."""
        by_length = collections.defaultdict(list)
        for node in self.nodes:
            if node.kind == OR and node.length < self.num_primitives:
                by_length[OR, node.length].append(node)
            elif node.kind == AND:
                by_length[AND, node.length].append(node)
        for (kind, _), group in sorted(by_length.items()):
            if kind == OR:
                group.sort(key=lambda n: n.start)
                pairs = zip(group[1:], group[:-1], strict=True)  # (receiver, lateral child)
            else:
                group.sort(key=lambda n: (n.start, n.start + n.split + 1))
                pairs = zip(group[:-1], group[1:], strict=True)
            for receiver, child in pairs:
                receiver.lateral = child.id
                child.parents.append(receiver.id)

    def _count_paths(self):
        """npaths over syntactic edges; parents precede children when sorted by length, OR first."""
        rank = {OR: 0, AND: 1, TERMINAL: 2}
        self.root.npaths = 1
        for node in sorted(self.nodes, key=lambda n: (-n.length, rank[n.kind], n.id)):
            for child_id in node.children:
                self.nodes[child_id].npaths += node.npaths

    def _children_first_order(self):
        """Depth-first post-order from the root over children then the lateral child."""
        order, seen = [], set()

        def visit(node_id):
            if node_id in seen:
                return
            seen.add(node_id)
            node = self.nodes[node_id]
            for child_id in node.children:
                visit(child_id)
            if node.lateral is not None:
                visit(node.lateral)
            order.append(node_id)

        visit(self.root.id)
        return order

    # ------------------------------------------------------------------ queries

    @property
    def root(self):
        return self.nodes[0]

    def __len__(self):
        return len(self.nodes)

    def __iter__(self):
        return iter(self.nodes)

    def counts(self):
        """Number of nodes per kind: `{"terminal": ..., "and": ..., "or": ...}`."""
        counter = collections.Counter(node.kind for node in self.nodes)
        return {kind: counter[kind] for kind in KINDS}

    def edges(self, lateral=True):
        """(parent id, child id) pairs: syntactic edges, then lateral edges when `lateral`."""
        pairs = [(node.id, child) for node in self.nodes for child in node.children]
        if lateral:
            pairs += self.lateral_edges()
        return pairs

    def lateral_edges(self):
        """(receiver id, lateral child id) pairs."""
        return [(node.id, node.lateral) for node in self.nodes if node.lateral is not None]

    def num_edges(self, lateral=True):
        return len(self.edges(lateral=lateral))

    def topological_order(self):
        """Node ids with every child (lateral children included) before its parents."""
        return list(self._order)

    def double_counting_weight(self, parent_id, child_id):
        """`npaths(parent) / npaths(child)`: the child's weight on the parent's residual path."""
        return self.nodes[parent_id].npaths / self.nodes[child_id].npaths

    def shares_parent(self, a, b):
        """Whether nodes `a` and `b` (ids) have a common parent."""
        return bool(set(self.nodes[a].parents) & set(self.nodes[b].parents))

    def find(self, label):
        """The node with `label` (e.g. `"AND[0|1,2]"`)."""
        for node in self.nodes:
            if node.label == label:
                return node
        raise KeyError(f"no node labelled {label!r} in {self!r}")

    def __repr__(self):
        c = self.counts()
        return (
            f"AOGGrammar(num_primitives={self.num_primitives}, prune={self.prune}, "
            f"lateral={self.lateral}: {c[TERMINAL]} terminal / {c[AND]} and / {c[OR]} or nodes, "
            f"{self.num_edges(lateral=False)} child edges, {len(self.lateral_edges())} lateral)"
        )

    # ------------------------------------------------------------------ drawing

    def to_dot(self):
        """The graph in Graphviz DOT language (`keras_structconv.aog.drawing.to_dot`)."""
        from keras_structconv.aog import drawing  # drawing imports this module

        return drawing.to_dot(self)

    def draw(self, path, backend="auto"):
        """Renders the graph to `path` (`keras_structconv.aog.drawing.draw`).

        Args:
            path: output file; its suffix gives the format (`.png`, `.pdf`, `.svg`).
            backend: `"graphviz"`, `"matplotlib"` or `"auto"` (Graphviz when available).

        Returns:
            The output path as a `pathlib.Path`.
        """
        from keras_structconv.aog import drawing  # drawing imports this module

        return drawing.draw(self, path, backend=backend)


def build_grammar(num_primitives, prune=None, lateral=True):
    """Builds the AND-OR grammar of an AOG building block (Algorithm 1 of the AOGNet paper).

    Args:
        num_primitives: N >= 1, the number of channel groups.
        prune: None (full structure), 1 (keep splits with left part <= right part) or 2 (left
            >= right); pruned grammars keep only nodes reachable from the root. 0 means None, as
            in the authors' configuration files.
        lateral: add lateral connections between same-length AND nodes and same-length OR nodes.

    Returns:
        An `AOGGrammar`.

    Example:

    >>> g = build_grammar(4, prune=1)
    >>> g.counts()
    {'terminal': 8, 'and': 5, 'or': 8}
    >>> g.num_edges(lateral=False), g.num_edges()
    (23, 29)
    """
    return AOGGrammar(num_primitives, prune=prune, lateral=lateral)
