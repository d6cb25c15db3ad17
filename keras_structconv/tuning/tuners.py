"""KerasTuner tuners for `StructconvHyperModel`: random search, Bayesian optimization, Hyperband.

`make_tuner(hypermodel, "random" | "bayesian" | "hyperband", ...)` returns a KerasTuner tuner
whose oracle and trial loop add what a long or distributed search needs:

- the search space is declared without building models (`declare_hyperparameters`), and every
  trial writes `trial_<id>/structconv.json` (status, reason of a failure, measurements, which
  tuner ran it) and a line per start/end to `<project>/trial_runs.jsonl`;
- a trial over budget is FAILED with its reason and its measurements reported as metrics, and
  the search goes on (`max_consecutive_failed_trials=None`: no limit by default);
- distributed search on KerasTuner's chief/worker mode (`KERASTUNER_TUNER_ID`,
  `KERASTUNER_ORACLE_IP`, `KERASTUNER_ORACLE_PORT`, see `distributed_env`). KerasTuner alone
  never finishes a search whose worker died mid-trial: the oracle keeps that trial RUNNING in
  `ongoing_trials` and the worker in `tuner_ids`, and the chief waits for both to empty. Here
  workers send a heartbeat (`get_trial` every `heartbeat_seconds`) while they train, and the
  chief's oracle hands a trial whose worker has been silent for `lease_seconds` back to the
  queue (it counts as one failed run, retried `max_retries_per_trial` times, default 1) and
  forgets that worker. Workers with nothing to do while other trials run are told to wait
  (IDLE) rather than to stop, so that a trial handed back always finds a taker. The first
  result of a trial counts (a worker thought lost may still deliver it); a later one is ignored.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from pathlib import Path

import keras_tuner
from keras_tuner.engine.trial import Trial, TrialStatus

from keras_structconv.tuning.hypermodel import BudgetExceededError, StructconvHyperModel

__all__ = [
    "TUNERS",
    "StructconvHyperband",
    "StructconvTuner",
    "distributed_env",
    "distributed_role",
    "make_tuner",
]

TUNERS = ("random", "bayesian", "hyperband")
LOGGER = logging.getLogger(__name__)
RUN_LOG = "trial_runs.jsonl"
TRIAL_RECORD = "structconv.json"


def distributed_env(role: str, host: str, port: int, tuner_id: str | None = None) -> dict:
    """The environment variables of KerasTuner's chief/worker mode for one process.

    Args:
        role: "chief" (runs the oracle's gRPC server) or "worker" (runs trials).
        host, port: where the chief listens (e.g. "127.0.0.1", 8000).
        tuner_id: a worker's id (default `worker-<pid>`); a worker restarted with the same id
            resumes the trial it was running.

    Example:

    >>> distributed_env("chief", "127.0.0.1", 8000)["KERASTUNER_TUNER_ID"]
    'chief'
    """
    if role not in ("chief", "worker"):
        raise ValueError(f"`role` must be 'chief' or 'worker'. Received: role={role!r}")
    if role == "chief":
        tuner_id = "chief"
    elif tuner_id is None:
        tuner_id = f"worker-{os.getpid()}"
    elif "chief" in tuner_id:
        raise ValueError(f"A worker's id must not contain 'chief'. Received: {tuner_id=}")
    return {
        "KERASTUNER_TUNER_ID": tuner_id,
        "KERASTUNER_ORACLE_IP": str(host),
        "KERASTUNER_ORACLE_PORT": str(port),
    }


def distributed_role() -> str | None:
    """"chief", "worker" or None (not distributed), from the KerasTuner environment variables."""
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return None
    return "chief" if "chief" in os.environ.get("KERASTUNER_TUNER_ID", "") else "worker"


# ----------------------------------------------------------------------------------- oracle
class _LeasedOracle:
    """Oracle mixin: heartbeats, lease expiry and wait-instead-of-stop (see the module doc)."""

    lease_seconds: float = 120.0

    def _leases(self) -> dict[str, float]:
        if not hasattr(self, "_last_contact"):
            self._last_contact = {}
            if distributed_role() == "chief":
                threading.Thread(target=self._reap_forever, daemon=True).start()
        return self._last_contact

    def _touch(self, tuner_id):
        if tuner_id is not None:
            self._leases()[tuner_id] = time.monotonic()

    def _runner_of(self, trial_id):
        for tuner_id, trial in self.ongoing_trials.items():
            if trial.trial_id == trial_id:
                return tuner_id
        return None

    def _reap_forever(self):
        while True:
            time.sleep(min(1.0, self.lease_seconds / 4))
            self.reclaim_expired()

    @keras_tuner.synchronized
    def reclaim_expired(self, now: float | None = None) -> list[str]:
        """Hands back the trials of workers silent for `lease_seconds`; forgets idle silent
        workers. Returns the ids of the trials handed back."""
        now = time.monotonic() if now is None else now
        contacts = self._leases()
        expired = [t for t, seen in contacts.items() if now - seen > self.lease_seconds]
        reclaimed = []
        for tuner_id in expired:
            trial = self.ongoing_trials.get(tuner_id)
            if trial is not None:
                trial.status = TrialStatus.INVALID
                trial.message = (
                    f"worker {tuner_id} lost: no contact for {now - contacts[tuner_id]:.0f} s "
                    f"(lease {self.lease_seconds:g} s)"
                )
                LOGGER.warning("Trial %s: %s; handing it back", trial.trial_id, trial.message)
                super().end_trial(trial)
                reclaimed.append(trial.trial_id)
            self.tuner_ids.discard(tuner_id)
            del contacts[tuner_id]
        return reclaimed

    @keras_tuner.synchronized
    def create_trial(self, tuner_id):
        self._touch(tuner_id)
        trial = super().create_trial(tuner_id)
        others_running = any(other != tuner_id for other in self.ongoing_trials)
        if trial.status == TrialStatus.STOPPED and others_running:
            # A running trial may still come back (its worker may die): wait, do not stop.
            self.tuner_ids.add(tuner_id)
            return Trial(self.get_space(), trial_id="idle", status=TrialStatus.IDLE)
        return trial

    @keras_tuner.synchronized
    def update_trial(self, trial_id, metrics, step=0):
        self._touch(self._runner_of(trial_id))
        return super().update_trial(trial_id, metrics, step=step)

    @keras_tuner.synchronized
    def get_trial(self, trial_id):
        self._touch(self._runner_of(trial_id))
        return super().get_trial(trial_id)

    @keras_tuner.synchronized
    def end_trial(self, trial):
        runner = self._runner_of(trial.trial_id)
        if runner is None:
            LOGGER.warning(
                "Trial %s: late result from a worker that lost it; ignored", trial.trial_id
            )
            return
        self._touch(runner)
        super().end_trial(trial)


class _RandomSearchOracle(_LeasedOracle, keras_tuner.oracles.RandomSearchOracle):
    """RandomSearch's oracle with trial leases (a dead worker's trial goes back to the queue)."""


class _BayesianOptimizationOracle(_LeasedOracle, keras_tuner.oracles.BayesianOptimizationOracle):
    """BayesianOptimization's oracle with trial leases."""


class _HyperbandOracle(_LeasedOracle, keras_tuner.oracles.HyperbandOracle):
    """Hyperband's oracle with trial leases."""


# ------------------------------------------------------------------------------------ tuners
class _TrialBookkeeping:
    """Tuner mixin: cheap space declaration, trial records, heartbeats, idle waits."""

    heartbeat_seconds: float = 10.0
    idle_poll_seconds: float = 1.0

    def _populate_initial_space(self):
        # One declaration registers every conditional branch: no model is built for it.
        hp = self.oracle.get_space()
        self.hypermodel.declare_hyperparameters(hp)
        self.oracle.update_space(hp)

    def pre_create_trial(self):
        requests = getattr(self, "_requests_without_trial", 0)
        if requests:  # the oracle answered IDLE: wait before asking again
            time.sleep(self.idle_poll_seconds)
        self._requests_without_trial = requests + 1

    def on_trial_begin(self, trial):
        self._requests_without_trial = 0
        self._trial_error = None
        self.hypermodel.last_measurements = {}
        self._log_run(trial, "begin")
        self._heartbeat = None
        if distributed_role() == "worker":
            self._heartbeat = _Heartbeat(self.oracle, trial.trial_id, self.heartbeat_seconds)
        super().on_trial_begin(trial)

    def run_trial(self, trial, *args, **kwargs):
        try:
            return super().run_trial(trial, *args, **kwargs)
        except BudgetExceededError as error:
            self._trial_error = error.reason
            metrics = {self.oracle.objective.name: math.nan, **error.measurements}
            self.oracle.update_trial(trial.trial_id, metrics)
            raise
        except Exception as error:
            self._trial_error = f"{type(error).__name__}: {error}".strip()
            raise

    def on_trial_end(self, trial):
        heartbeat = getattr(self, "_heartbeat", None)
        if heartbeat is not None:
            heartbeat.stop()
        self._write_trial_record(trial)
        self._log_run(trial, "end")
        super().on_trial_end(trial)

    def _write_trial_record(self, trial):
        record = {
            "trial_id": trial.trial_id,
            "status": trial.status,
            "reason": getattr(self, "_trial_error", None),
            "tuner_id": self.tuner_id,
            "measurements": dict(self.hypermodel.last_measurements),
        }
        path = Path(self.get_trial_dir(trial.trial_id)) / TRIAL_RECORD
        path.write_text(json.dumps(record, indent=2, sort_keys=True))

    def _log_run(self, trial, event):
        entry = {
            "event": event,
            "trial_id": trial.trial_id,
            "tuner_id": self.tuner_id,
            "pid": os.getpid(),
            "time": time.time(),
        }
        if event == "end":
            entry["status"] = trial.status
        # One short O_APPEND write per line: lines from several processes do not interleave.
        with open(Path(self.project_dir) / RUN_LOG, "a") as handle:
            handle.write(json.dumps(entry) + "\n")


class _Heartbeat:
    """Calls `oracle.get_trial(trial_id)` every `interval` seconds until stopped."""

    def __init__(self, oracle, trial_id, interval):
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(oracle, trial_id, interval), daemon=True
        )
        self._thread.start()

    def _run(self, oracle, trial_id, interval):
        while not self._stop.wait(interval):
            try:
                oracle.get_trial(trial_id)
            except Exception:  # the chief is busy or gone: the next beat retries
                continue

    def stop(self):
        self._stop.set()


class StructconvTuner(_TrialBookkeeping, keras_tuner.Tuner):
    """A `keras_tuner.Tuner` with the trial records and distributed recovery (random search and
    Bayesian optimization)."""


class StructconvHyperband(_TrialBookkeeping, keras_tuner.Hyperband):
    """KerasTuner's Hyperband (epochs per round, weights carried over) on a given oracle."""

    def __init__(self, oracle, hypermodel, **kwargs):
        keras_tuner.Tuner.__init__(self, oracle=oracle, hypermodel=hypermodel, **kwargs)


def make_tuner(
    hypermodel: StructconvHyperModel,
    tuner: str = "random",
    *,
    directory: str | os.PathLike,
    project_name: str = "search",
    max_trials: int | None = 10,
    max_epochs: int = 3,
    hyperband_factor: int = 3,
    hyperband_iterations: int = 1,
    num_initial_points: int | None = None,
    seed: int | None = None,
    distribution_strategy=None,
    overwrite: bool = False,
    max_retries_per_trial: int = 1,
    max_consecutive_failed_trials: int | None = None,
    lease_seconds: float = 120.0,
    heartbeat_seconds: float = 10.0,
    idle_poll_seconds: float = 1.0,
):
    """A KerasTuner tuner searching `hypermodel`.

    Args:
        hypermodel: a `StructconvHyperModel` (its objective is the tuner's).
        tuner: "random", "bayesian" or "hyperband".
        directory: folder of the search (a project folder inside); kept between runs, so the
            same call continues the search (unless `overwrite`).
        project_name: the project folder's name.
        max_trials: number of trials (Hyperband: a cap on its own schedule; None for none).
        max_epochs: Hyperband's epochs of the longest round.
        hyperband_factor, hyperband_iterations: Hyperband's reduction factor and iterations.
        num_initial_points: Bayesian optimization's random trials before the Gaussian process.
        seed: the oracle's random seed.
        distribution_strategy: a `tf.distribute` strategy each trial trains under.
        overwrite: start afresh, deleting the project folder.
        max_retries_per_trial: reruns of a crashed trial or one lost with its worker.
        max_consecutive_failed_trials: stop after this many failures in a row (None: never;
            over-budget trials are failures).
        lease_seconds: chief: hand back a trial whose worker has been silent this long.
        heartbeat_seconds: worker: interval of the heartbeats while training.
        idle_poll_seconds: worker: wait before asking again after an IDLE answer.

    Returns:
        A `StructconvTuner` or `StructconvHyperband`; call `search(x, y,
        validation_data=(x_val, y_val), epochs=...)` (Hyperband sets the epochs itself).

    Example:

    ```python
    tuner = make_tuner(StructconvHyperModel("ResNet20", "tam"), "bayesian", max_trials=20,
                       directory="runs/tam")
    ```
    """
    if tuner not in TUNERS:
        raise ValueError(f"`tuner` must be one of {', '.join(TUNERS)}. Received: tuner={tuner!r}")
    if not isinstance(hypermodel, StructconvHyperModel):
        raise ValueError(
            f"`hypermodel` must be a StructconvHyperModel. Received: {type(hypermodel).__name__}"
        )
    if not lease_seconds > heartbeat_seconds > 0:
        raise ValueError(
            "`lease_seconds` must exceed `heartbeat_seconds` > 0. "
            f"Received: lease_seconds={lease_seconds}, heartbeat_seconds={heartbeat_seconds}"
        )
    common = dict(
        objective=hypermodel.objective,
        seed=seed,
        max_retries_per_trial=max_retries_per_trial,
        max_consecutive_failed_trials=max_consecutive_failed_trials,
    )
    if tuner == "random":
        oracle = _RandomSearchOracle(max_trials=max_trials, **common)
    elif tuner == "bayesian":
        oracle = _BayesianOptimizationOracle(
            max_trials=max_trials, num_initial_points=num_initial_points, **common
        )
    else:
        oracle = _HyperbandOracle(
            max_epochs=max_epochs, factor=hyperband_factor,
            hyperband_iterations=hyperband_iterations, **common,
        )
        oracle.max_trials = max_trials
    oracle.lease_seconds = float(lease_seconds)
    tuner_class = StructconvHyperband if tuner == "hyperband" else StructconvTuner
    instance = tuner_class(
        oracle=oracle,
        hypermodel=hypermodel,
        directory=str(directory),
        project_name=project_name,
        overwrite=overwrite,
        distribution_strategy=distribution_strategy,
    )
    instance.heartbeat_seconds = float(heartbeat_seconds)
    instance.idle_poll_seconds = float(idle_poll_seconds)
    return instance
