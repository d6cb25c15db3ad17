"""`structconv aog-draw` (keras_structconv/cli/aog_draw.py)."""

from keras_structconv import cli


def test_aog_draw_writes_the_grammar_and_prints_its_counts(tmp_path, capsys):
    output = tmp_path / "g.png"
    assert cli.main(["aog-draw", "4", "--prune", "1", "-o", str(output)]) == 0
    out = capsys.readouterr().out
    # SPEC: pruned N=4 has 8 terminal / 5 AND / 8 OR nodes and 23 child edges.
    assert "8 terminal / 5 and / 8 or nodes, 23 child edges" in out
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
