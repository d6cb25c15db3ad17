"""The QGN CamVid recipe (zoo/qgn_camvid): two steps on a 32x32 crop of real CamVid, stopped by
its time budget after the first and resumed for the second; then the evaluation script on one
test frame (one mode: each mode costs a trace; the modes share the code path)."""

import csv
import importlib.util
import json
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.conftest import needs_quadtree_reload

ZOO = Path(__file__).resolve().parents[1] / "zoo" / "qgn_camvid"
# 4 levels (the encoder stops at stride 8) halve the tracing time of the 6-level default; the
# code is level-generic and tests/models/test_qgn.py builds the 6-level encoders.
TINY_RUN = [
    "--crop", "32", "32", "--batch-size", "2", "--steps", "2", "--steps-per-epoch", "1",
    "--limit", "4", "--levels", "4", "--decoder-filters", "8", "8", "8",
    "--decoder-units", "1", "1", "1", "--top-filters", "16",
]
SESSION = ["--log-every", "1", "--nice", "0", "--verbose", "0"]


def load_script(name):
    spec = importlib.util.spec_from_file_location(f"zoo_qgn_camvid_{name}", ZOO / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_quadtree_reload
def test_recipe_trains_resumes_and_evaluates(camvid_dir, tmp_path):
    train = load_script("train")
    run = tmp_path / "run"
    data = ["--data-dir", str(camvid_dir)]

    # Session 1: the time budget stops it at the end of the first epoch (one step).
    assert train.main([str(run), *TINY_RUN, *data, *SESSION, "--time-budget-minutes", "1e-4"]) == 0
    state = json.loads((run / "state.json").read_text())
    assert state["steps_done"] == 1 and not state["finished"]
    assert (run / "checkpoint.keras").exists() and (run / "backup").is_dir()
    assert not (run / train.FINAL_MODEL).exists()
    first_seconds = state["train_seconds"]

    with pytest.raises(SystemExit, match="--batch-size: stored 2, given 4"):
        train.main([str(run), "--batch-size", "4", *data, *SESSION])

    # Session 2: resumes from the backup (step 1) and does the last step.
    assert train.main([str(run), *data, *SESSION]) == 0
    state = json.loads((run / "state.json").read_text())
    assert state["finished"] and state["steps_done"] == 2
    assert [s["start_step"] for s in state["sessions"]] == [0, 1]
    assert state["train_seconds"] > first_seconds
    final = keras.models.load_model(run / train.FINAL_MODEL)
    assert int(final.optimizer.iterations.numpy()) == 2
    beta = final.quadtree_loss_weights.beta.numpy()
    assert beta[0] == 1.0 and np.all(beta[1:] != 1.0)  # moved by the two steps
    with (run / "progress.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == [1, 2]
    # Poly decay over the 2 steps, continued across the resume: lr after step i.
    np.testing.assert_allclose(
        [float(r["learning_rate"]) for r in rows], [0.02 * 0.5**0.9, 0.0], atol=1e-9
    )
    with (run / "epochs.csv").open() as handle:
        assert [r["epoch"] for r in csv.DictReader(handle)] == ["0", "1"]

    evaluate = load_script("evaluate")
    output = tmp_path / "results.md"
    argv = [str(run / train.FINAL_MODEL), *data, "--limit", "1", "--batch-size", "1",
            "--modes", "pred", "--run-dir", str(run), "--output", str(output), "--nice", "0"]
    assert evaluate.main(argv) == 0
    results = json.loads(output.with_suffix(".json").read_text())["results"]
    assert list(results) == ["pred"]
    result = results["pred"]
    assert 0.0 <= result["pixel_accuracy"] <= 1.0
    # Keras' MeanIoU and the per-class IoU of the confusion matrix agree.
    np.testing.assert_allclose(result["mean_iou"], np.nanmean(result["class_iou"]), rtol=1e-5)
    assert 0.0 < result["site_fraction"] <= 1.0
    text = output.read_text()
    assert text.count("\n| pred |") == 1 and "| sky |" in text
    assert "Training: 2 steps" in text and "Command: `python zoo/qgn_camvid/train.py" in text
