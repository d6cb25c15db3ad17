"""Drawing the grammar (`keras_structconv.aog.drawing`): DOT text, matplotlib and Graphviz
back ends, the back-end choice and its errors."""

import sys
import types

import pytest

from keras_structconv.aog import build_grammar, drawing


def test_to_dot_lists_nodes_styles_and_dashed_laterals():
    g = build_grammar(4, prune=1)
    dot = g.to_dot()
    assert dot.startswith("digraph AOG {") and dot.rstrip().endswith("}")
    assert dot.count("shape=ellipse") == 8
    assert dot.count("shape=box") == 5
    assert dot.count("shape=triangle") == 8
    assert dot.count("style=dashed") == len(g.lateral_edges()) == 6
    assert dot.count(" -> ") == 29


def _is_png(path):
    data = path.read_bytes()
    return len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"


def test_draw_matplotlib_writes_a_png(tmp_path):
    path = build_grammar(4, prune=1).draw(tmp_path / "g.png", backend="matplotlib")
    assert _is_png(path)


def test_draw_auto_falls_back_to_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setattr(drawing, "graphviz_available", lambda: False)
    path = build_grammar(3).draw(tmp_path / "g.png")
    assert _is_png(path)


def test_draw_uses_graphviz_when_available(tmp_path, monkeypatch):
    calls = []

    class Source:
        def __init__(self, source):
            calls.append(("source", source))

        def render(self, **kwargs):
            calls.append(("render", kwargs))
            return kwargs["outfile"]

    monkeypatch.setitem(sys.modules, "graphviz", types.SimpleNamespace(Source=Source))
    monkeypatch.setattr(drawing, "graphviz_available", lambda: True)
    g = build_grammar(4, prune=1)
    out = g.draw(tmp_path / "g.svg")
    assert out == tmp_path / "g.svg"
    assert calls[0] == ("source", g.to_dot())
    assert calls[1][1]["format"] == "svg" and calls[1][1]["outfile"] == str(tmp_path / "g.svg")


def test_draw_graphviz_requested_but_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(drawing, "graphviz_available", lambda: False)
    with pytest.raises(ValueError, match="Received: backend='graphviz'"):
        build_grammar(2).draw(tmp_path / "g.png", backend="graphviz")
    with pytest.raises(ValueError, match="Received: backend='svgwrite'"):
        build_grammar(2).draw(tmp_path / "g.png", backend="svgwrite")
