"""The AND-OR grammar (AOG) of an AOG building block: construction, pruning, laterals, drawing.

Reference: Li, Song, Wu, Xue, "AOGNets: Compositional Grammatical Architectures for Deep Learning",
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

`AOGGrammar.draw(path)` renders the graph with Graphviz (the `graphviz` Python package and the `dot`
binary, when both are present) or else matplotlib; Terminal, AND and OR nodes get distinct shapes
and colours, lateral edges are dashed.

This module is pure Python (matplotlib/graphviz are imported only when drawing).
"""

from __future__ import annotations

import collections
import dataclasses
import importlib.util
import shutil
from pathlib import Path

TERMINAL = "terminal"
AND = "and"
OR = "or"
KINDS = (TERMINAL, AND, OR)
PRUNE_MODES = (None, 0, 1, 2)

# Shapes and colours shared by both drawing back ends.
_STYLE = {
    OR: {"dot_shape": "ellipse", "marker": "o", "color": "#9ecae1", "name": "OR node"},
    AND: {"dot_shape": "box", "marker": "s", "color": "#fdae6b", "name": "AND node"},
    TERMINAL: {"dot_shape": "triangle", "marker": "^", "color": "#a1d99b", "name": "Terminal node"},
}
_LATERAL_COLOR = "#d62728"


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


def _check_arguments(num_primitives, prune, lateral):
    is_int = isinstance(num_primitives, int) and not isinstance(num_primitives, bool)
    if not is_int or num_primitives < 1:
        raise ValueError(
            f"`num_primitives` must be an integer >= 1. Received: num_primitives={num_primitives!r}"
        )
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
        _check_arguments(num_primitives, prune, lateral)
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
        """The graph in Graphviz DOT language (solid child edges, dashed red lateral edges)."""
        lines = [
            "digraph AOG {",
            "  rankdir=TB;",
            '  node [fontsize=10, style=filled, fontname="Helvetica"];',
        ]
        for node in self.nodes:
            style = _STYLE[node.kind]
            lines.append(
                f'  n{node.id} [label="{node.id}\\n{node.label}", shape={style["dot_shape"]}, '
                f'fillcolor="{style["color"]}"];'
            )
        for parent, child in self.edges(lateral=False):
            lines.append(f"  n{parent} -> n{child};")
        for receiver, child in self.lateral_edges():
            lines.append(
                f'  n{child} -> n{receiver} [style=dashed, color="{_LATERAL_COLOR}", '
                "constraint=false];"
            )
        for row in self._rows():
            lines.append("  {rank=same; " + " ".join(f"n{n.id};" for n in row) + "}")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def _rows(self):
        """Drawing rows, top to bottom: per length (long first) the OR row, then T and AND nodes."""
        rows = []
        for length in range(self.num_primitives, 0, -1):
            ors = sorted(
                (n for n in self.nodes if n.kind == OR and n.length == length),
                key=lambda n: n.start,
            )
            below = sorted(
                (n for n in self.nodes if n.kind != OR and n.length == length),
                key=lambda n: (n.start, n.kind != TERMINAL, n.split or 0),
            )
            rows += [row for row in (ors, below) if row]
        return rows

    def draw(self, path, backend="auto"):
        """Renders the graph to `path` (format from its suffix, e.g. `.png`, `.pdf`, `.svg`).

        Args:
            path: output file.
            backend: `"graphviz"` (needs the `graphviz` package and the `dot` binary),
                `"matplotlib"`, or `"auto"` (Graphviz when available, else matplotlib).

        Returns:
            The output path as a `pathlib.Path`.
        """
        path = Path(path)
        if backend not in ("auto", "graphviz", "matplotlib"):
            raise ValueError(
                "`backend` must be 'auto', 'graphviz' or 'matplotlib'. "
                f"Received: backend={backend!r}"
            )
        if backend == "graphviz" and not graphviz_available():
            raise ValueError(
                "`backend='graphviz'` needs the `graphviz` Python package and the `dot` binary "
                "on PATH. Received: backend='graphviz'"
            )
        if backend == "graphviz" or (backend == "auto" and graphviz_available()):
            return self._draw_graphviz(path)
        return self._draw_matplotlib(path)

    def _draw_graphviz(self, path):
        import graphviz

        fmt = path.suffix.lstrip(".") or "png"
        rendered = graphviz.Source(self.to_dot()).render(
            outfile=str(path), format=fmt, cleanup=True, quiet=True
        )
        return Path(rendered)

    def _draw_matplotlib(self, path):
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
        from matplotlib.patches import FancyArrowPatch

        rows = self._rows()
        positions = {}
        for depth, row in enumerate(rows):
            for index, node in enumerate(row):
                positions[node.id] = (index - (len(row) - 1) / 2, -depth)
        widest = max(len(row) for row in rows)
        fig = Figure(figsize=(max(4.0, 1.1 * widest + 1), max(3.0, 1.0 * len(rows) + 1)))
        ax = fig.add_subplot()
        for parent, child in self.edges(lateral=False):
            ax.add_patch(
                FancyArrowPatch(
                    positions[parent], positions[child], arrowstyle="-|>", mutation_scale=8,
                    color="0.55", linewidth=0.8, shrinkA=9, shrinkB=9,
                )
            )
        for receiver, child in self.lateral_edges():
            ax.add_patch(
                FancyArrowPatch(
                    positions[child], positions[receiver], arrowstyle="-|>", mutation_scale=8,
                    color=_LATERAL_COLOR, linestyle="--", linewidth=1.0, shrinkA=9, shrinkB=9,
                    connectionstyle="arc3,rad=-0.35",
                )
            )
        for kind in KINDS:
            members = [n for n in self.nodes if n.kind == kind]
            if not members:
                continue
            xs, ys = zip(*(positions[n.id] for n in members), strict=True)
            ax.scatter(
                xs, ys, s=420, marker=_STYLE[kind]["marker"], c=_STYLE[kind]["color"],
                edgecolors="0.2", linewidths=0.8, zorder=3,
            )
            for node in members:
                x, y = positions[node.id]
                ax.text(x, y, str(node.id), ha="center", va="center", fontsize=7, zorder=4)
                ax.text(x, y - 0.3, node.label, ha="center", va="top", fontsize=6, zorder=4)
        handles = [
            Line2D([], [], marker=_STYLE[k]["marker"], color="w",
                   markerfacecolor=_STYLE[k]["color"], markeredgecolor="0.2", markersize=10,
                   label=_STYLE[k]["name"])
            for k in (OR, AND, TERMINAL)
        ]
        handles.append(Line2D([], [], color=_LATERAL_COLOR, linestyle="--", label="lateral"))
        ax.legend(handles=handles, loc="upper left", fontsize=7, frameon=False)
        ax.set_title(
            f"AOG N={self.num_primitives}, prune={self.prune}, lateral={self.lateral}", fontsize=9
        )
        ax.set_xlim(-widest / 2 - 0.5, widest / 2 + 0.5)
        ax.set_ylim(-len(rows) + 0.3, 0.8)
        ax.set_axis_off()
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        return path


def graphviz_available():
    """Whether the `graphviz` Python package and the `dot` binary are both present."""
    return importlib.util.find_spec("graphviz") is not None and shutil.which("dot") is not None


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
