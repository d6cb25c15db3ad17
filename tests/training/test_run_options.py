"""Run options of resumable runs (keras_structconv/training/run_options.py)."""

import os

import pytest

from keras_structconv.training.run_options import lower_priority, resolve_run_options

DEFAULTS = {"model": None, "seed": 0, "crop": [384, 480], "batch_size": 128}


def test_new_run_takes_the_given_options_over_the_defaults():
    given = {"model": "resnet20", "seed": None, "crop": (352, 480), "batch_size": None}
    assert resolve_run_options(DEFAULTS, given) == {
        "model": "resnet20", "seed": 0, "crop": [352, 480], "batch_size": 128,
    }


def test_resume_keeps_the_stored_options_and_accepts_equal_ones():
    stored = {"model": "resnet20", "seed": 3, "crop": [352, 480], "batch_size": 64, "epochs": 9}
    given = {"model": "resnet20", "seed": None, "crop": (352, 480), "batch_size": None}
    assert resolve_run_options(DEFAULTS, given, stored) == stored
    assert resolve_run_options(DEFAULTS, {}, stored) == stored


def test_resume_with_other_options_lists_every_conflict():
    stored = {"model": "resnet20", "seed": 3, "crop": [352, 480], "batch_size": 64}
    given = {"model": "resnet20", "seed": 4, "crop": (384, 480), "batch_size": 64}
    with pytest.raises(ValueError) as info:
        resolve_run_options(DEFAULTS, given, stored)
    assert str(info.value) == (
        "The run folder holds a run with other options (resume without them, or use a new "
        "folder): --seed: stored 3, given 4; --crop: stored [352, 480], given [384, 480]"
    )


def test_lower_priority_never_lowers_the_niceness():
    current = os.nice(0)
    lower_priority(current - 1)
    assert os.nice(0) == current
    if current < 19:  # a real change (this test process keeps the raised niceness; harmless)
        lower_priority(current + 1)
        assert os.nice(0) == current + 1
