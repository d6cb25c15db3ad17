"""keras_structconv.training.callbacks and .schedules: the poly-decay schedule against its
formula, and the resumable-run callbacks (time-based checkpoint, accumulated clock, CSV progress,
graceful stop) with a fake clock on a tiny dense model."""

import csv
import json
import os
import signal
import time

import keras
import numpy as np
import pytest

from keras_structconv import training


class FakeClock:
    """Seconds advanced by hand (or by `tick` at every call when set)."""

    def __init__(self, tick=0.0):
        self.now = 0.0
        self.tick = tick

    def __call__(self):
        self.now += self.tick
        return self.now


def tiny_model(total_steps=100):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=training.poly_decay_sgd(total_steps, 0.02), loss="mse")
    return model


DATA = (np.ones((8, 3), "float32"), np.zeros((8, 2), "float32"))


def test_poly_decay_follows_the_paper_formula():
    optimizer = training.poly_decay_sgd(100, initial_learning_rate=0.02, power=0.9)
    assert optimizer.momentum == 0.9
    for step in (0, 1, 37, 99, 100, 150):
        optimizer.iterations.assign(step)
        expected = 0.02 * (1 - min(step, 100) / 100) ** 0.9
        np.testing.assert_allclose(training.current_learning_rate(optimizer), expected, atol=1e-9)
    with pytest.raises(ValueError, match=r"`total_steps` must be an integer >= 1"):
        training.poly_decay_sgd(0)
    with pytest.raises(ValueError, match=r"`power` must be > 0"):
        training.poly_decay_sgd(10, power=0)


def test_clock_accumulates_across_sessions_and_resumes_from_the_backup_time(tmp_path):
    state_path = tmp_path / "state.json"
    model = tiny_model()
    clock = FakeClock(tick=1.0)  # every reading advances 1 s
    callback = training.TrainingClock(state_path, clock=clock)
    history = model.fit(*DATA, batch_size=4, epochs=2, verbose=0, callbacks=[callback])
    first = json.loads(state_path.read_text())
    assert first["epochs_done"] == 2 and first["steps_done"] == 4
    assert first["train_seconds"] == pytest.approx(history.history["train_seconds"][-1])
    assert 0 < first["train_seconds"] <= first["all_sessions_seconds"]
    # A second session continues from the stored total, and records itself.
    second_clock = training.TrainingClock(state_path, clock=FakeClock(tick=1.0))
    model.fit(*DATA, batch_size=4, epochs=1, verbose=0, callbacks=[second_clock])
    second = json.loads(state_path.read_text())
    assert len(second["sessions"]) == 2
    assert second["sessions"][1]["start_step"] == 4 and second["sessions"][1]["end_step"] == 6
    assert second["train_seconds"] > first["train_seconds"]
    assert second["all_sessions_seconds"] == pytest.approx(
        first["all_sessions_seconds"] + second["sessions"][1]["seconds"]
    )
    assert not second["finished"]
    second_clock.mark_finished()
    assert json.loads(state_path.read_text())["finished"]


def test_clock_counts_cpu_seconds_apart_from_wall_seconds_across_sessions(tmp_path):
    state_path = tmp_path / "state.json"
    wall, cpu = FakeClock(), FakeClock()

    class Step(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            wall.now += 10.0  # a step of 10 s on a shared machine...
            cpu.now += 4.0  # ...of which this process ran 4 CPU seconds

    for session in (1, 2):
        callback = training.TrainingClock(state_path, clock=wall, cpu_clock=cpu)
        tiny_model().fit(*DATA, batch_size=4, epochs=1, verbose=0, callbacks=[Step(), callback])
        state = json.loads(state_path.read_text())
        assert state["train_seconds"] == 20.0 * session
        assert state["train_cpu_seconds"] == 8.0 * session
        assert state["all_sessions_cpu_seconds"] == 8.0 * session
        assert state["sessions"][-1]["cpu_seconds"] == 8.0


def test_clock_default_cpu_clock_counts_this_process_work(tmp_path):
    state_path = tmp_path / "state.json"

    class Spin(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            start = time.process_time()
            while time.process_time() - start < 0.1:
                sum(range(1000))

    tiny_model().fit(*DATA, batch_size=4, epochs=1, verbose=0,
                     callbacks=[Spin(), training.TrainingClock(state_path)])
    state = json.loads(state_path.read_text())
    assert state["train_cpu_seconds"] >= 0.2  # two steps of >= 0.1 CPU second each


def test_clock_records_a_session_killed_mid_epoch_to_within_its_save_interval(tmp_path):
    state_path = tmp_path / "state.json"
    clock = FakeClock()
    callback = training.TrainingClock(state_path, clock=clock, session_save_seconds=25)
    seen = []

    class AdvanceAndRead(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            clock.now += 10.0  # 10 s per step
            # What a process killed right after this step would leave behind (read after the
            # clock's own batch-end hook, which runs later in the list: so one step behind).
            seen.append(json.loads(state_path.read_text())["sessions"][-1]["seconds"])

    model = tiny_model()
    model.fit(*DATA, batch_size=1, epochs=1, verbose=0, callbacks=[AdvanceAndRead(), callback])
    # Rewritten after steps 3 and 6 (30 s and 60 s); read one step later each time.
    assert seen == [0.0, 0.0, 0.0, 30.0, 30.0, 30.0, 60.0, 60.0]
    assert json.loads(state_path.read_text())["all_sessions_seconds"] == 80.0
    with pytest.raises(ValueError, match=r"Received: session_save_seconds=0"):
        training.TrainingClock(state_path, session_save_seconds=0)


def test_timed_checkpoint_saves_by_time_atomically(tmp_path):
    clock = FakeClock()
    path = tmp_path / "ckpt.keras"
    callback = training.TimedCheckpoint(path, interval_seconds=10, save_at_end=False, clock=clock)

    class Advance(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            clock.now += 4.0  # 4 s per step: a save every third step

    model = tiny_model()
    model.fit(*DATA, batch_size=1, epochs=1, verbose=0, callbacks=[Advance(), callback])
    assert callback.saves == 2  # after steps 3 and 6 of 8 (12 s and 24 s)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.keras"]
    reloaded = keras.models.load_model(path)
    assert int(reloaded.optimizer.iterations.numpy()) == 6
    with pytest.raises(ValueError, match=r"`filepath` must end in .keras"):
        training.TimedCheckpoint(tmp_path / "x.h5")


def test_progress_csv_appends_rows_across_sessions(tmp_path):
    path = tmp_path / "progress.csv"
    model = tiny_model(total_steps=8)
    for _ in range(2):
        logger = training.ProgressCSVLogger(path, every=3)
        model.fit(*DATA, batch_size=2, epochs=1, verbose=0, callbacks=[logger])
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["step"]) for row in rows] == [3, 6]
    np.testing.assert_allclose(
        [float(row["learning_rate"]) for row in rows],
        [0.02 * (1 - 3 / 8) ** 0.9, 0.02 * (1 - 6 / 8) ** 0.9],
        rtol=1e-6,
    )
    assert "loss" in rows[0]
    epochs = tmp_path / "epochs.csv"
    model.fit(*DATA, batch_size=2, epochs=2, verbose=0,
              callbacks=[training.ProgressCSVLogger(epochs, every="epoch")])
    with epochs.open() as handle:
        assert [row["epoch"] for row in csv.DictReader(handle)] == ["0", "1"]


def test_graceful_stop_on_budget_and_on_signal():
    clock = FakeClock(tick=1.0)
    stop = training.GracefulStop(budget_seconds=1.5, clock=clock)
    model = tiny_model()
    history = model.fit(*DATA, batch_size=8, epochs=10, verbose=0, callbacks=[stop])
    # Clock readings: 1 at the start, then 2, 3 at the epoch ends: 2 s >= 1.5 s after epoch 2.
    assert len(history.history["loss"]) == 2
    assert "time budget" in stop.reason

    previous = signal.getsignal(signal.SIGTERM)

    class Kill(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                os.kill(os.getpid(), signal.SIGTERM)

    stop = training.GracefulStop()
    model = tiny_model()
    model.fit(*DATA, batch_size=1, epochs=3, verbose=0, callbacks=[Kill(), stop])
    assert int(model.optimizer.iterations.numpy()) == 2  # stopped right after that step
    assert stop.reason == "signal SIGTERM"
    assert signal.getsignal(signal.SIGTERM) == previous
