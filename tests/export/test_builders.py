"""keras_structconv.export on whole networks: the zoo's PS-ResNet-20 (rolls become slices) and
TAM-ResNet-20 (the gate's complex ops become real ones) convert to TFLite (and ONNX) with the
Keras outputs, and `zoo/export_check.py` prints its table.

Every other layer is converted by its own test (tests/layers/, tests/export/), and
`python zoo/export_check.py` checks every builder (docs/deploying.md has its table), which CI
time does not allow here.
"""

import json

import pytest

import keras_structconv as ksc
from tests.export.export_testing import HAS_ONNX, TOLERANCE, export_check

BUILDER_FAMILIES = ["PSResNet20", "TAMResNet20"]


@pytest.mark.slow
@pytest.mark.parametrize("name", BUILDER_FAMILIES)
def test_builder_converts_and_matches(name, tmp_path):
    assert name in export_check.builders()  # the script checks it too
    builder = getattr(ksc.models, name)
    row = export_check.check_builder(name, builder, tmp_path, with_onnx=HAS_ONNX)
    assert row["tflite"] == "ok", row
    assert row["tflite_error"] <= TOLERANCE
    if HAS_ONNX:
        assert row["onnx"] == "ok", row


@pytest.mark.slow
def test_export_check_script_prints_the_table(tmp_path, capsys):
    """The script end to end on ResNet-20: one passing row, Markdown and JSON."""
    options = [] if HAS_ONNX else ["--no-onnx"]
    status = export_check.main(
        ["--only", "resnet20", "--no-qgn", "--json", str(tmp_path / "rows.json"), *options]
    )
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert status == 0, rows
    assert [row["model"] for row in rows] == ["ResNet20"]
    assert rows[0]["tflite_error"] <= TOLERANCE
    assert "| ResNet20 | 271,098 | 32x32x3 | ok |" in capsys.readouterr().out
