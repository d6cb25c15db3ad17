"""Drawing an AND-OR grammar: Graphviz DOT text, and a picture via Graphviz or matplotlib.

The grammar of Section 3 of the AOGNet paper (Li, Song, Wu, CVPR 2019, arXiv:1711.05847;
compare its Fig. 1) as a picture: Terminal, AND and OR nodes get distinct shapes and colours,
lateral edges are dashed, and rows run top to bottom by interval length, so a node sits above the
nodes its interval decomposes into.

`graphviz` and `matplotlib` are imported only when a picture is drawn.

Example:

```python
grammar = build_grammar(4, prune=1)
grammar.draw("aog.png")          # same as drawing.draw(grammar, "aog.png")
print(drawing.to_dot(grammar))   # DOT text for any Graphviz tool
```
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from keras_structconv.aog.grammar import AND, KINDS, OR, TERMINAL

__all__ = ["draw", "graphviz_available", "rows", "to_dot"]

BACKENDS = ("auto", "graphviz", "matplotlib")
# Shapes and colours shared by both drawing back ends.
_STYLE = {
    OR: {"dot_shape": "ellipse", "marker": "o", "color": "#9ecae1", "name": "OR node"},
    AND: {"dot_shape": "box", "marker": "s", "color": "#fdae6b", "name": "AND node"},
    TERMINAL: {"dot_shape": "triangle", "marker": "^", "color": "#a1d99b", "name": "Terminal node"},
}
_LATERAL_COLOR = "#d62728"


def graphviz_available() -> bool:
    """Whether the `graphviz` Python package and the `dot` binary are both present."""
    return importlib.util.find_spec("graphviz") is not None and shutil.which("dot") is not None


def to_dot(grammar) -> str:
    """The graph in Graphviz DOT language (solid child edges, dashed red lateral edges)."""
    lines = [
        "digraph AOG {",
        "  rankdir=TB;",
        '  node [fontsize=10, style=filled, fontname="Helvetica"];',
    ]
    for node in grammar.nodes:
        style = _STYLE[node.kind]
        lines.append(
            f'  n{node.id} [label="{node.id}\\n{node.label}", shape={style["dot_shape"]}, '
            f'fillcolor="{style["color"]}"];'
        )
    for parent, child in grammar.edges(lateral=False):
        lines.append(f"  n{parent} -> n{child};")
    for receiver, child in grammar.lateral_edges():
        lines.append(
            f'  n{child} -> n{receiver} [style=dashed, color="{_LATERAL_COLOR}", '
            "constraint=false];"
        )
    for row in rows(grammar):
        lines.append("  {rank=same; " + " ".join(f"n{n.id};" for n in row) + "}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def rows(grammar) -> list:
    """Drawing rows, top to bottom: per length (long first) the OR row, then T and AND nodes."""
    result = []
    for length in range(grammar.num_primitives, 0, -1):
        ors = sorted(
            (n for n in grammar.nodes if n.kind == OR and n.length == length),
            key=lambda n: n.start,
        )
        below = sorted(
            (n for n in grammar.nodes if n.kind != OR and n.length == length),
            key=lambda n: (n.start, n.kind != TERMINAL, n.split or 0),
        )
        result += [row for row in (ors, below) if row]
    return result


def draw(grammar, path, backend: str = "auto") -> Path:
    """Renders the graph to `path` (format from its suffix, e.g. `.png`, `.pdf`, `.svg`).

    Args:
        grammar: an `AOGGrammar`.
        path: output file.
        backend: `"graphviz"` (needs the `graphviz` package and the `dot` binary),
            `"matplotlib"`, or `"auto"` (Graphviz when available, else matplotlib).

    Returns:
        The output path as a `pathlib.Path`.
    """
    path = Path(path)
    if backend not in BACKENDS:
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
        return _draw_graphviz(grammar, path)
    return _draw_matplotlib(grammar, path)


def _draw_graphviz(grammar, path):
    import graphviz

    fmt = path.suffix.lstrip(".") or "png"
    rendered = graphviz.Source(to_dot(grammar)).render(
        outfile=str(path), format=fmt, cleanup=True, quiet=True
    )
    return Path(rendered)


def _draw_matplotlib(grammar, path):
    from matplotlib.figure import Figure

    grid = rows(grammar)
    positions = {}
    for depth, row in enumerate(grid):
        for index, node in enumerate(row):
            positions[node.id] = (index - (len(row) - 1) / 2, -depth)
    widest = max(len(row) for row in grid)
    fig = Figure(figsize=(max(4.0, 1.1 * widest + 1), max(3.0, 1.0 * len(grid) + 1)))
    ax = fig.add_subplot()
    _draw_edges(ax, grammar, positions)
    _draw_nodes(ax, grammar, positions)
    _add_legend(ax)
    ax.set_title(
        f"AOG N={grammar.num_primitives}, prune={grammar.prune}, lateral={grammar.lateral}",
        fontsize=9,
    )
    ax.set_xlim(-widest / 2 - 0.5, widest / 2 + 0.5)
    ax.set_ylim(-len(grid) + 0.3, 0.8)
    ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def _draw_edges(ax, grammar, positions):
    """Grey arrows parent -> child; dashed red arcs lateral child -> receiver."""
    from matplotlib.patches import FancyArrowPatch

    def arrow(start, end, **style):
        ax.add_patch(
            FancyArrowPatch(
                positions[start], positions[end], arrowstyle="-|>", mutation_scale=8,
                shrinkA=9, shrinkB=9, **style,
            )
        )

    for parent, child in grammar.edges(lateral=False):
        arrow(parent, child, color="0.55", linewidth=0.8)
    for receiver, child in grammar.lateral_edges():
        arrow(
            child, receiver, color=_LATERAL_COLOR, linestyle="--", linewidth=1.0,
            connectionstyle="arc3,rad=-0.35",
        )


def _draw_nodes(ax, grammar, positions):
    """One marker per node (shape and colour by kind), its id inside, its label below."""
    for kind in KINDS:
        members = [n for n in grammar.nodes if n.kind == kind]
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


def _add_legend(ax):
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], marker=_STYLE[k]["marker"], color="w",
               markerfacecolor=_STYLE[k]["color"], markeredgecolor="0.2", markersize=10,
               label=_STYLE[k]["name"])
        for k in (OR, AND, TERMINAL)
    ]
    handles.append(Line2D([], [], color=_LATERAL_COLOR, linestyle="--", label="lateral"))
    ax.legend(handles=handles, loc="upper left", fontsize=7, frameon=False)
