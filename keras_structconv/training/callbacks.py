"""Callbacks for long, resumable `fit` runs (the zoo recipes).

- `TrainingClock`: wall-clock and CPU training time accumulated across resumed sessions, kept in
  a JSON state file next to the run (`train_seconds`: the time that produced the last per-epoch
  backup; `all_sessions_seconds`: every session's time, work lost to interruptions included;
  `train_cpu_seconds`: the process's CPU time, which other jobs on the machine barely change).
- `TimedCheckpoint`: a `ModelCheckpoint` by time: saves the whole model (`.keras`, optimizer
  included) every `interval_seconds`, atomically (a crash never leaves a half-written file).
- `ProgressCSVLogger`: one CSV row every `every` steps or every epoch (step, epoch, training time,
  learning rate and the running metrics of the epoch), appended across resumes.
- `GracefulStop`: stops `fit` cleanly on SIGTERM/SIGINT (at the end of the current step) or once
  a time budget is spent (at the end of the epoch, right after the epoch's backup, so nothing is
  lost).
- `EpochCompletion`: whether the epoch `fit` just ended ran all its steps. Keras calls
  `on_epoch_end` for an epoch cut short by a stop too; the per-epoch writers here (the clock's
  completed time, the epoch log, `ChiefBackupAndRestore`) leave such an epoch out, so that a
  resumed run redoes it instead of skipping its remaining steps.

Use with `keras_structconv.training.ChiefBackupAndRestore` (per-epoch backups,
`delete_checkpoint=False`; Keras' own `BackupAndRestore` would back up a partial epoch as done):
put the backup callback before `TrainingClock` so that the clock's state is written after the
backup it describes. See `zoo/qgn_camvid/train.py` and `zoo/cifar10/train.py`.
"""

import csv
import json
import os
import signal
import time
from pathlib import Path

import keras
import numpy as np

from keras_structconv.training.schedules import current_learning_rate

__all__ = [
    "EpochCompletion",
    "GracefulStop",
    "ProgressCSVLogger",
    "TimedCheckpoint",
    "TrainingClock",
    "write_json_atomically",
]


def write_json_atomically(path, data):
    """Writes `data` as JSON into `path` through a temporary file renamed into place (a crash
    never leaves a half-written file)."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(temporary, path)


class EpochCompletion:
    """Tells a callback whether the epoch `fit` just ended ran all its steps.

    Keras' `fit` calls `on_epoch_end` also when a callback stopped it in the middle of an epoch
    (`model.stop_training` set at a step end, as `GracefulStop` does on a signal). Whatever a
    callback writes as "epoch done" then (a backup, a completed time, a log row) describes a
    partial epoch, and a run resumed from it skips the epoch's remaining steps. The owning
    callback calls `epoch_begin()` and `step_end(batch)` from its hooks and asks `completed(...)`
    in `on_epoch_end`.

    An epoch is partial when `fit` was told to stop (`model.stop_training`) before the last of
    its `params["steps"]` steps. When that length is unknown (a dataset of unknown cardinality
    runs until exhausted), any requested stop counts as partial, which also leaves out an epoch
    stopped at its end by an earlier callback (one backup behind, never one ahead).

    Example:

    ```python
    class EpochLog(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epochs = EpochCompletion()

        def on_epoch_begin(self, epoch, logs=None):
            self.epochs.epoch_begin()

        def on_train_batch_end(self, batch, logs=None):
            self.epochs.step_end(batch)

        def on_epoch_end(self, epoch, logs=None):
            if self.epochs.completed(self.params, self.model):
                print("epoch", epoch, "done")
    ```
    """

    def __init__(self):
        self._last_batch = None

    def epoch_begin(self):
        self._last_batch = None

    def step_end(self, batch):
        # `batch` is the index of the last step run (with steps_per_execution > 1, the last of
        # the group).
        self._last_batch = int(batch)

    def completed(self, params, model) -> bool:
        # An epoch is partial only when `fit` was told to stop before its last step. (An epoch
        # whose data ran out early, which Keras only warns about, still counts as done.)
        if not model.stop_training:
            return True
        steps = (params or {}).get("steps")
        return steps is not None and self._last_batch is not None and self._last_batch + 1 >= steps


class TrainingClock(keras.callbacks.Callback):
    """Training time accumulated across resumed `fit` sessions (a JSON file).

    The state file holds `train_seconds` (wall time up to the end of the last completed epoch,
    which matches a per-epoch `BackupAndRestore` backup: a resumed run starts from that time),
    `all_sessions_seconds` (the time of every session, partial epochs lost to interruptions
    included), `train_cpu_seconds` and `all_sessions_cpu_seconds` (the same in CPU seconds of the
    process, all its threads: wall time grows when other jobs share the machine, CPU time much
    less), `sessions` (one record per session: start time, seconds, CPU seconds, steps) and
    `finished`.
    `logs["train_seconds"]` is added at every epoch end (for `CSVLogger`). The session record is
    also rewritten every `session_save_seconds` between epochs, so that a session killed without
    warning (the end of a CI or notebook session) still counts to within that time.

    Args:
        state_path: JSON file (created if absent).
        clock: function returning seconds (tests inject a fake clock).
        cpu_clock: function returning the process's CPU seconds (`time.process_time`).
        session_save_seconds: how often the session record is rewritten between epoch ends.

    Example:

    ```python
    clock = TrainingClock("run/state.json")
    model.fit(dataset, epochs=10, callbacks=[ChiefBackupAndRestore("run/backup"), clock])
    print(TrainingClock.read_state("run/state.json")["train_seconds"])
    ```
    """

    def __init__(self, state_path, clock=time.monotonic, cpu_clock=time.process_time,
                 session_save_seconds=30.0):
        super().__init__()
        if session_save_seconds <= 0:
            raise ValueError(
                "`session_save_seconds` must be positive. "
                f"Received: session_save_seconds={session_save_seconds}"
            )
        self.state_path = Path(state_path)
        self.clock = clock
        self.cpu_clock = cpu_clock
        self.session_save_seconds = session_save_seconds
        self._last_session_save = None
        self.state = self.read_state(self.state_path)
        self._started = self._cpu_started = None
        self._base_train = self._base_all = self._base_train_cpu = self._base_all_cpu = 0.0
        self._start_step = 0
        self._epochs = EpochCompletion()

    @staticmethod
    def read_state(state_path):
        """The state dict of `state_path` (defaults when the file does not exist)."""
        state_path = Path(state_path)
        state = {"train_seconds": 0.0, "all_sessions_seconds": 0.0, "train_cpu_seconds": 0.0,
                 "all_sessions_cpu_seconds": 0.0, "sessions": [], "finished": False}
        if state_path.exists():
            state.update(json.loads(state_path.read_text()))
        return state

    def elapsed(self):
        """Training seconds so far: the resumed total plus this session's time."""
        if self._started is None:
            return self.state["train_seconds"]
        return self._base_train + (self.clock() - self._started)

    def elapsed_cpu(self):
        """Training CPU seconds so far: the resumed total plus this session's."""
        if self._cpu_started is None:
            return self.state["train_cpu_seconds"]
        return self._base_train_cpu + (self.cpu_clock() - self._cpu_started)

    def _step(self):
        return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def on_train_begin(self, logs=None):
        self.state = self.read_state(self.state_path)
        self._base_train = float(self.state["train_seconds"])
        self._base_all = float(self.state["all_sessions_seconds"])
        self._base_train_cpu = float(self.state["train_cpu_seconds"])
        self._base_all_cpu = float(self.state["all_sessions_cpu_seconds"])
        self._started = self.clock()
        self._cpu_started = self.cpu_clock()
        self._start_step = self._step()
        self.state["sessions"].append(
            {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "seconds": 0.0, "cpu_seconds": 0.0,
             "start_step": self._start_step, "end_step": self._start_step}
        )
        self.state["finished"] = False
        self._save()

    def on_epoch_begin(self, epoch, logs=None):
        self._epochs.epoch_begin()

    def on_train_batch_end(self, batch, logs=None):
        self._epochs.step_end(batch)
        if self.clock() - self._last_session_save >= self.session_save_seconds:
            self._update()
            self._save()

    def _update(self):
        session = self.clock() - self._started
        session_cpu = self.cpu_clock() - self._cpu_started
        self.state["all_sessions_seconds"] = self._base_all + session
        self.state["all_sessions_cpu_seconds"] = self._base_all_cpu + session_cpu
        self.state["sessions"][-1]["seconds"] = session
        self.state["sessions"][-1]["cpu_seconds"] = session_cpu
        self.state["sessions"][-1]["end_step"] = self._step()

    def _save(self):
        self._last_session_save = self.clock()
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomically(self.state_path, self.state)

    def on_epoch_end(self, epoch, logs=None):
        if not self._epochs.completed(self.params, self.model):
            # A partial epoch (a stop mid-epoch) is redone on resume: only the session counts it.
            self._update()
            self._save()
            return
        self.state["train_seconds"] = self.elapsed()
        self.state["train_cpu_seconds"] = self.elapsed_cpu()
        self.state["epochs_done"] = epoch + 1
        self.state["steps_done"] = self._step()
        self._update()
        self._save()
        if logs is not None:
            logs["train_seconds"] = self.state["train_seconds"]

    def on_train_end(self, logs=None):
        self._update()
        self._save()
        self._started = self._cpu_started = None

    def mark_finished(self):
        """Record that the run reached its last step."""
        self.state = self.read_state(self.state_path)
        self.state["finished"] = True
        self._save()


class TimedCheckpoint(keras.callbacks.Callback):
    """Save the whole model (`.keras`) every `interval_seconds` of training, and at the end.

    The file is written next to its destination and renamed (atomic on POSIX), so a crash
    never leaves a half-written checkpoint. Loading it gives the model and its optimizer state.

    Args:
        filepath: destination, ending in `.keras`.
        interval_seconds: time between saves (checked after every step).
        save_at_end: also save when `fit` ends (finished or stopped).
        clock: function returning seconds (tests inject a fake clock).
    """

    def __init__(self, filepath, interval_seconds=600, save_at_end=True, clock=time.monotonic):
        super().__init__()
        self.filepath = Path(filepath)
        if self.filepath.suffix != ".keras":
            raise ValueError(
                f"`filepath` must end in .keras. Received: filepath={str(filepath)!r}"
            )
        if not interval_seconds > 0:
            raise ValueError(
                f"`interval_seconds` must be > 0. Received: interval_seconds={interval_seconds!r}"
            )
        self.interval_seconds = float(interval_seconds)
        self.save_at_end = save_at_end
        self.clock = clock
        self.saves = 0
        self._last = None

    def on_train_begin(self, logs=None):
        self._last = self.clock()

    def on_train_batch_end(self, batch, logs=None):
        if self.clock() - self._last >= self.interval_seconds:
            self.save()

    def on_train_end(self, logs=None):
        if self.save_at_end:
            self.save()

    def save(self):
        self.filepath.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.filepath.with_name(self.filepath.stem + ".partial.keras")
        self.model.save(temporary)
        os.replace(temporary, self.filepath)
        self.saves += 1
        self._last = self.clock()


class ProgressCSVLogger(keras.callbacks.Callback):
    """Append a CSV row every `every` optimizer steps (or at every epoch end): step, epoch,
    train_seconds, learning_rate and the logs (batch end: running means over the epoch).

    Unlike `keras.callbacks.CSVLogger`, no `val_*` columns are invented, and the training time
    comes from a `TrainingClock`, so rows continue across resumed sessions. The file is a log of
    every session: with `every=N`, the steps of an epoch cut short by a stop are logged again
    when the resumed run redoes them (same step numbers, later rows); with `every="epoch"`, an
    epoch cut short gets no row.

    Args:
        filepath: CSV file; the header is written when the file is new, rows are appended.
        every: steps between rows, or "epoch".
        clock: a `TrainingClock` for the `train_seconds` column (else seconds of this session).
    """

    def __init__(self, filepath, every=10, clock=None):
        super().__init__()
        if every != "epoch" and (
            isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1
        ):
            raise ValueError(
                f"`every` must be an integer >= 1 or 'epoch'. Received: every={every!r}"
            )
        self.filepath = Path(filepath)
        self.every = every if every == "epoch" else int(every)
        self.clock = clock
        self._epoch = 0
        self._keys = None
        self._session_start = None
        self._epochs = EpochCompletion()

    def on_train_begin(self, logs=None):
        self._session_start = time.monotonic()
        self._keys = None
        if self.filepath.exists() and self.filepath.stat().st_size:
            with self.filepath.open(newline="") as handle:
                self._keys = next(csv.reader(handle), None)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epochs.epoch_begin()

    def on_train_batch_end(self, batch, logs=None):
        self._epochs.step_end(batch)
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        if self.every != "epoch" and step % self.every == 0:
            self._log(step, logs)

    def on_epoch_end(self, epoch, logs=None):
        # A partial epoch (a stop mid-epoch) gets no row: the resumed run redoes it and logs it.
        if self.every == "epoch" and self._epochs.completed(self.params, self.model):
            self._log(int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)), logs)

    def _log(self, step, logs):
        seconds = (
            self.clock.elapsed() if self.clock is not None
            else time.monotonic() - self._session_start
        )
        row = {
            "step": step,
            "epoch": self._epoch,
            "train_seconds": round(seconds, 1),
            "learning_rate": current_learning_rate(self.model.optimizer),
        }
        for key, value in (logs or {}).items():
            row[key] = float(np.asarray(value))
        self._write(row)

    def _write(self, row):
        new_file = self._keys is None
        if new_file:
            self._keys = list(row)
            self.filepath.parent.mkdir(parents=True, exist_ok=True)
        with self.filepath.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self._keys, extrasaction="ignore")
            if new_file:
                writer.writeheader()
            writer.writerow({key: row.get(key, "") for key in self._keys})


class GracefulStop(keras.callbacks.Callback):
    """Stop `fit` cleanly: on a signal (SIGTERM, SIGINT) at the end of the current step, or at
    the first epoch end after `budget_seconds` of this session.

    Either way `fit` returns normally, so `on_train_end` callbacks run (final checkpoint, clock).
    A second signal while stopping raises `KeyboardInterrupt` as usual. The previous signal
    handlers are restored when `fit` ends.

    Args:
        budget_seconds: None (no budget) or seconds of training in this session.
        signals: signals that request a stop (only installable from the main thread).
        clock: function returning seconds.
    """

    def __init__(self, budget_seconds=None, signals=(signal.SIGTERM, signal.SIGINT),
                 clock=time.monotonic):
        super().__init__()
        if budget_seconds is not None and not budget_seconds > 0:
            raise ValueError(
                f"`budget_seconds` must be None or > 0. Received: {budget_seconds!r}"
            )
        self.budget_seconds = budget_seconds
        self.signals = tuple(signals)
        self.clock = clock
        self.reason = None
        self._previous = {}
        self._started = None

    def _request_stop(self, signum, frame):
        if self.reason is not None:
            raise KeyboardInterrupt
        self.reason = f"signal {signal.Signals(signum).name}"
        print(f"\n{self.reason}: stopping after this step (send it again to abort)", flush=True)

    def on_train_begin(self, logs=None):
        self.reason = None
        self._started = self.clock()
        for signum in self.signals:
            try:
                self._previous[signum] = signal.signal(signum, self._request_stop)
            except ValueError:  # not the main thread: no signal handling
                break

    def on_train_batch_end(self, batch, logs=None):
        if self.reason is not None and self.reason.startswith("signal"):
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.budget_seconds is not None and self.clock() - self._started >= self.budget_seconds:
            self.reason = self.reason or f"time budget of {self.budget_seconds:.0f} s spent"
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
