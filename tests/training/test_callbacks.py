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


class KillAt(keras.callbacks.Callback):
    """Sends this process SIGTERM at the end of step `batch` of epoch `epoch`."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.epoch, self.batch, self._current = epoch, batch, None

    def on_epoch_begin(self, epoch, logs=None):
        self._current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self._current, batch) == (self.epoch, self.batch):
            os.kill(os.getpid(), signal.SIGTERM)


def run_callbacks(run_dir):
    """The zoo's callbacks, in the zoo's order: backup, clock, epoch log."""
    clock = training.TrainingClock(run_dir / "state.json")
    return [
        training.ChiefBackupAndRestore(run_dir / "backup", delete_checkpoint=False),
        clock,
        training.ProgressCSVLogger(run_dir / "epochs.csv", every="epoch", clock=clock),
    ]


def test_a_signal_mid_epoch_leaves_that_epoch_out_and_the_resumed_run_redoes_it(tmp_path):
    # 8 different samples, batch 2, no shuffling: 4 different steps an epoch, the same each
    # epoch, so a resumed run that skipped steps would end with other weights.
    x = np.random.default_rng(0).standard_normal((8, 3)).astype("float32")
    y = np.random.default_rng(1).standard_normal((8, 2)).astype("float32")
    fit = dict(batch_size=2, epochs=3, verbose=0, shuffle=False)
    uninterrupted = tiny_model()
    uninterrupted.fit(x, y, **fit)

    run = tmp_path / "run"
    model = tiny_model()
    stop = training.GracefulStop()
    # SIGTERM after the second step of the second epoch: 6 steps done, 4 of them in full epochs.
    model.fit(x, y, **fit, callbacks=[*run_callbacks(run), KillAt(1, 1), stop])
    assert stop.reason == "signal SIGTERM" and int(model.optimizer.iterations.numpy()) == 6
    metadata = json.loads((run / "backup" / "training_metadata.json").read_text())
    assert metadata["epoch"] == 1  # the backup is epoch 1's end, not the partial epoch 2
    state = json.loads((run / "state.json").read_text())
    assert state["epochs_done"] == 1 and state["steps_done"] == 4
    assert state["sessions"][-1]["end_step"] == 6  # the session itself still counts its work
    with (run / "epochs.csv").open() as handle:
        assert [row["step"] for row in csv.DictReader(handle)] == ["4"]

    keras.backend.clear_session(free_memory=False)
    resumed = tiny_model()
    resumed.fit(x, y, **fit, callbacks=run_callbacks(run))
    assert int(resumed.optimizer.iterations.numpy()) == 12
    for got, expected in zip(resumed.get_weights(), uninterrupted.get_weights(), strict=True):
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    with (run / "epochs.csv").open() as handle:
        assert [row["epoch"] for row in csv.DictReader(handle)] == ["0", "1", "2"]
    assert json.loads((run / "state.json").read_text())["steps_done"] == 12


# An epoch of a dataset of unknown length ends when the data runs out, which Keras warns about.
@pytest.mark.filterwarnings("ignore:Your input ran out of data:UserWarning")
def test_a_dataset_of_unknown_length_backs_up_full_epochs_only(tmp_path):
    import tensorflow as tf

    x = np.random.default_rng(0).standard_normal((8, 3)).astype("float32")
    y = np.zeros((8, 2), "float32")
    # `filter` hides the cardinality: `fit` learns the epoch length only by exhausting it.
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).filter(lambda a, b: True).batch(2)
    assert int(dataset.cardinality()) == tf.data.UNKNOWN_CARDINALITY

    def backed_up_epoch(run, extra):
        model = tiny_model()
        model.fit(dataset, epochs=3, verbose=0, shuffle=False,
                  callbacks=[*run_callbacks(run), *extra])
        return training.restored_epoch(run / "backup")

    assert backed_up_epoch(tmp_path / "full", []) == 3
    # A stop in the first epoch, whose length `fit` does not know yet, and in the second.
    for epoch in (0, 1):
        stopped = backed_up_epoch(tmp_path / f"stopped{epoch}", [KillAt(epoch, 1),
                                                                 training.GracefulStop()])
        assert stopped == epoch


def test_an_epoch_whose_data_runs_out_early_still_counts_as_done(tmp_path):
    import tensorflow as tf

    # 3 batches for steps_per_epoch=4: Keras warns and ends each epoch after 3 steps; no stop
    # was requested, so the epochs are complete (as Keras' own backup would record them).
    x = np.random.default_rng(0).standard_normal((6, 3)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((x, np.zeros((6, 2), "float32"))).batch(2)
    model = tiny_model()
    with pytest.warns(UserWarning, match="ran out of data"):
        model.fit(dataset, epochs=2, steps_per_epoch=4, verbose=0, shuffle=False,
                  callbacks=run_callbacks(tmp_path / "run"))
    assert training.restored_epoch(tmp_path / "run" / "backup") == 2
    assert json.loads((tmp_path / "run" / "state.json").read_text())["epochs_done"] == 2
