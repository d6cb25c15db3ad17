"""Searches with the three KerasTuner algorithms, and budgets, on tiny data (seconds a trial)."""

import json
import math
import re
from pathlib import Path

import keras
import keras_tuner
import numpy as np
import pytest

from keras_structconv import datasets, tuning
from keras_structconv.tuning.timing import trainable_parameters
from tests.tuning.tiny_backbone import TINY

# The tiny network's trainable weights, and what TreeAttention(g=2) adds to it: one module of
# 8 channels (8->4->2->1: 16 + 8 + 3 weights) and one of 16 (16->8: 32, then the 8-channel tree).
TINY_TRAINABLE = 5_242
TAM_G2 = (16 + 8 + 3) + (32 + 16 + 8 + 3)


@pytest.fixture(scope="module")
def data():
    (x, y), _ = datasets.load_embedded_cifar10()
    order = np.random.default_rng(0).permutation(len(x))
    train, val = order[:64], order[64:96]
    return x[train], y[train], x[val], y[val]


def _hypermodel(operators="psconv,treeconv,tam", **kwargs):
    options = dict(
        per_stage=False, batch_size=32, timing_warmup_steps=1, timing_steps=1, seed=0
    )
    return tuning.StructconvHyperModel(TINY, operators, **{**options, **kwargs})


def _record(tuner, trial_id):
    return json.loads((Path(tuner.get_trial_dir(trial_id)) / "structconv.json").read_text())


@pytest.mark.parametrize(
    "kind", [pytest.param("random", marks=pytest.mark.traced), "bayesian", "hyperband"]
)
def test_each_tuner_runs_two_trials_and_records_measurements(kind, tmp_path, data):
    x, y, x_val, y_val = data
    hypermodel = _hypermodel(time_vanilla=kind == "random")
    # Bayesian: one random point, then the Gaussian process proposes the second trial over the
    # conditional space. Hyperband (2 epochs at most, factor 2): its first round, 1 epoch each.
    tuner = tuning.make_tuner(
        hypermodel, kind, directory=tmp_path, max_trials=2, max_epochs=2, hyperband_factor=2,
        num_initial_points=1, seed=3,
    )
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=1, verbose=0)
    trials = tuner.oracle.trials
    assert sorted(trials) == ["0", "1"]
    assert [t.status for t in trials.values()] == ["COMPLETED", "COMPLETED"]
    for trial_id, trial in trials.items():
        model = hypermodel.build(trial.hyperparameters.copy())
        assert trial.metrics.get_last_value("params") == trainable_parameters(model)
        assert trial.metrics.get_last_value("train_steps") == 2  # 64 images, batch 32, 1 epoch
        step = trial.metrics.get_last_value("step_time_seconds")
        assert step > 0
        if kind == "random":
            vanilla = trial.metrics.get_last_value("vanilla_step_time_seconds")
            ratio = trial.metrics.get_last_value("step_time_ratio")
            assert ratio == pytest.approx(step / vanilla)
        record = _record(tuner, trial_id)
        assert record["status"] == "COMPLETED" and record["tuner_id"] == "tuner0"
        assert record["measurements"]["params"] == trainable_parameters(model)
    table = tuning.format_table(tuning.trial_rows(tuner))
    assert len(re.findall(r"COMPLETED", table)) == 2


def test_over_budget_trials_fail_with_their_reason_and_the_search_goes_on(tmp_path, data):
    x, y, x_val, y_val = data
    hypermodel = _hypermodel("psconv,tam", max_step_time_ratio=1e-6)  # nothing is that fast
    # Four failures in a row: KerasTuner's default (3) would abort the search.
    tuner = tuning.make_tuner(hypermodel, "random", directory=tmp_path, max_trials=4, seed=1)
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=3, verbose=0)
    assert [t.status for t in tuner.oracle.trials.values()] == ["FAILED"] * 4
    for trial_id, trial in tuner.oracle.trials.items():
        reason = _record(tuner, trial_id)["reason"]
        assert re.fullmatch(
            r"over budget: train step [\d.]+ ms = [\d.]+ x the vanilla TinyResNet's [\d.]+ ms "
            r"> max_step_time_ratio=1e-06",
            reason,
        ), reason
        assert trial.metrics.get_last_value("step_time_ratio") > 1e-6
        # Training stopped once the step was timed: 1 warm-up + 1 timed step of 3 x 2 steps.
        assert trial.metrics.get_last_value("train_steps") == 2
        assert math.isnan(trial.metrics.get_last_value("val_accuracy"))
    rows = tuning.trial_rows(tuner)
    assert all(row.reason.startswith("over budget") for row in rows)


def test_parameter_budget_fails_before_training(data):
    x, y, x_val, y_val = data
    hypermodel = _hypermodel("tam", max_params=TINY_TRAINABLE)
    hp = keras_tuner.HyperParameters()
    hypermodel.declare_hyperparameters(hp)  # default: TAM g=2
    model = hypermodel.build(hp)
    message = f"over budget: {TINY_TRAINABLE + TAM_G2:,} trainable parameters > max_params=5,242"
    with pytest.raises(tuning.BudgetExceededError, match=re.escape(message)):
        hypermodel.fit(hp, model, x, y, validation_data=(x_val, y_val), epochs=1, verbose=0)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 0
    hp.values["attention"] = "none"
    results = hypermodel.fit(
        hp, hypermodel.build(hp), x, y, validation_data=(x_val, y_val), epochs=1, verbose=0
    )
    assert results["params"] == TINY_TRAINABLE
