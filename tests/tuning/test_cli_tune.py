"""`structconv tune` (keras_structconv/cli/tune.py): a resumed search, its report, errors."""

import json

import keras
import pytest

from keras_structconv import cli
from keras_structconv.tuning.timing import trainable_parameters

TINY = "tests.tuning.tiny_backbone:TINY"
QUICK = [
    "--data", "sample", "--train-subset", "64", "--val-size", "32", "--batch-size", "32",
    "--epochs", "1", "--timing-warmup", "1", "--timing-steps", "1", "--verbose", "0",
]


def test_search_resumes_and_reports_every_trial(tmp_path, capsys):
    argv = ["tune", "--backbone", TINY, "--operators", "psconv,treeconv,tam", "--global",
            "--dir", str(tmp_path), *QUICK]
    assert cli.main([*argv, "--max-trials", "1"]) == 0
    first = capsys.readouterr().out
    assert "Top 1 of 1 trials (val_accuracy)" in first
    # The same command with more trials continues the search: trial 0 is not run again.
    assert cli.main([*argv, "--max-trials", "2"]) == 0
    out = capsys.readouterr().out
    project = tmp_path / "search"
    runs = [json.loads(line) for line in (project / "trial_runs.jsonl").read_text().splitlines()]
    assert [(r["event"], r["trial_id"]) for r in runs] == [
        ("begin", "0"), ("end", "0"), ("begin", "1"), ("end", "1")
    ]
    assert "Top 2 of 2 trials (val_accuracy)" in out and "test accuracy" in out
    results = (project / "results.md").read_text()
    rows = [line for line in results.splitlines() if line.startswith("| ") and "COMPLETED" in line]
    assert sorted(row.split(" | ")[0] for row in rows) == ["| 0", "| 1"]
    assert "data: the embedded CIFAR-10 sample" in results and "64 training images" in results
    # The saved best model is the best trial's: the first row of results.md (best first).
    best = keras.saving.load_model(project / "best_model.keras")
    params = int(rows[0].split(" | ")[5].replace(",", ""))
    assert trainable_parameters(best) == params


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--backbone", "ResNet21"], "Valid names: ResNet20, ResNet56"),
        (["--operators", "psconv,attention"], "among psconv, treeconv, tam, aog"),
        (["--backbone", "AOGNetCIFAR"], "takes the operators aog"),
        (["--chief"], "--chief and --worker need --oracle HOST:PORT"),
        (["--learning-rate", "fast"], "--learning-rate must be a number or LOW:HIGH"),
    ],
)
def test_errors_name_the_valid_choices(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["tune", "--dir", str(tmp_path), *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
