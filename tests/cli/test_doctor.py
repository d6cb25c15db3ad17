"""`structconv doctor` (keras_structconv/cli/doctor.py)."""

import json

from keras_structconv import _internals, cli


def test_json_facts_match_the_process(capsys):
    assert cli.main(["doctor", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["onednn"] is _internals.onednn_enabled()
    assert set(facts["cpu_flags"]) >= {"avx2", "avx512f", "amx_tile"}


def test_table_lists_facts_and_advice(capsys):
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("python")
    assert "onednn" in out and "advice" in out
