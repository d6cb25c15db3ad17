"""Distributed search: KerasTuner's chief/worker mode over gRPC on 127.0.0.1 with real
processes (`structconv tune --chief / --worker`), a worker killed mid-trial; and
`tf.distribute` inside trials on two logical CPU devices."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 300  # seconds: a bound on every wait, far above the few seconds a tiny trial takes


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _tune(directory, *extra):
    return [
        sys.executable, "-m", "keras_structconv.cli", "tune",
        "--backbone", "tests.tuning.tiny_backbone:TINY", "--operators", "psconv,tam", "--global",
        "--data", "sample", "--train-subset", "64", "--val-size", "32", "--batch-size", "32",
        "--epochs", "1", "--timing-warmup", "1", "--timing-steps", "1", "--verbose", "0",
        "--no-test", "--dir", str(directory), *extra,
    ]


def _start(argv, log):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def _events(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _wait(process, name, logs):
    try:
        return process.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError(f"{name} did not finish:\n{logs[name].read_text()[-3000:]}") from None


def test_chief_and_two_workers_finish_when_a_worker_dies_mid_trial(tmp_path):
    port = _free_port()
    common = _tune(
        tmp_path / "search_dir", "--max-trials", "4", "--oracle", f"127.0.0.1:{port}",
        "--lease-seconds", "4", "--heartbeat-seconds", "0.5", "--idle-poll-seconds", "0.2",
    )
    logs = {name: tmp_path / f"{name}.log" for name in ("chief", "w1", "w2")}
    handles = {name: path.open("w") for name, path in logs.items()}
    processes = {"chief": _start([*common, "--chief"], handles["chief"])}
    processes["w2"] = _start([*common, "--worker", "--tuner-id", "w2"], handles["w2"])
    processes["w1"] = _start([*common, "--worker", "--tuner-id", "w1"], handles["w1"])
    runs = tmp_path / "search_dir" / "search" / "trial_runs.jsonl"
    try:
        # Kill w2 once it has finished a trial and begun the next one.
        deadline = time.monotonic() + TIMEOUT
        while True:
            w2 = [e for e in _events(runs) if e["tuner_id"] == "w2"]
            if [e["event"] for e in w2][:3] == ["begin", "end", "begin"]:
                break
            assert time.monotonic() < deadline, logs["w2"].read_text()[-3000:]
            assert processes["w2"].poll() is None, logs["w2"].read_text()[-3000:]
            time.sleep(0.1)
        processes["w2"].kill()
        killed_trial = w2[2]["trial_id"]
        assert _wait(processes["w1"], "w1", logs) == 0
        assert _wait(processes["chief"], "chief", logs) == 0
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
        for handle in handles.values():
            handle.close()

    events = _events(runs)
    ends = [e for e in events if e["event"] == "end"]
    # Every trial ran to its end exactly once, all completed; the killed worker's trial was
    # handed back and finished by w1; both workers completed trials.
    assert sorted(e["trial_id"] for e in ends) == ["0", "1", "2", "3"]
    assert {e["status"] for e in ends} == {"COMPLETED"}
    assert [e["tuner_id"] for e in ends if e["trial_id"] == killed_trial] == ["w1"]
    assert {e["tuner_id"] for e in ends} == {"w1", "w2"}
    assert [e["tuner_id"] for e in events if e["event"] == "begin"].count("w2") == 2
    # The chief's oracle agrees, and its report lists the four trials.
    project = tmp_path / "search_dir" / "search"
    for trial_id in "0123":
        trial = json.loads((project / f"trial_{trial_id}" / "trial.json").read_text())
        assert trial["status"] == "COMPLETED"
    results = (project / "results.md").read_text()
    assert results.count("| COMPLETED |") == 4
    assert f"Trial {killed_trial}: worker w2 lost" in logs["chief"].read_text()


def test_trials_train_under_tf_distribute_on_two_logical_cpus(tmp_path):
    log = tmp_path / "replicas.log"
    with log.open("w") as handle:
        process = _start(_tune(tmp_path, "--max-trials", "1", "--replicas", "2"), handle)
        status = process.wait(timeout=TIMEOUT)
    assert status == 0, log.read_text()[-3000:]
    trial = json.loads((tmp_path / "search" / "trial_0" / "trial.json").read_text())
    assert trial["status"] == "COMPLETED"
    replicas = trial["metrics"]["metrics"]["replicas"]["observations"][0]["value"]
    assert replicas == [2.0]


def test_the_oracle_hands_back_a_lost_trial_and_keeps_idle_workers_waiting(tmp_path):
    """The chief's oracle alone (no process, no training): what it answers two workers."""
    from keras_tuner.engine.trial import Trial, TrialStatus

    from keras_structconv import tuning
    from tests.tuning.tiny_backbone import TINY

    hypermodel = tuning.StructconvHyperModel(TINY, "psconv,tam", per_stage=False)
    oracle = tuning.make_tuner(
        hypermodel, "random", directory=tmp_path, max_trials=2, lease_seconds=60,
        heartbeat_seconds=1,
    ).oracle
    first, second = oracle.create_trial("a"), oracle.create_trial("b")
    assert (first.trial_id, second.trial_id) == ("0", "1")
    first.status = TrialStatus.COMPLETED
    oracle.update_trial("0", {"val_accuracy": 0.5})
    oracle.end_trial(first)
    # No trial left, but b's may come back: a waits instead of stopping.
    assert oracle.create_trial("a").status == TrialStatus.IDLE
    oracle.get_trial("1")  # b's heartbeat
    assert oracle.reclaim_expired() == []  # b was heard from just now
    # b falls silent for longer than the lease: its trial goes back to the queue, to a.
    assert oracle.reclaim_expired(now=time.monotonic() + 61) == ["1"]
    assert "b" not in oracle.tuner_ids
    retried = oracle.create_trial("a")
    assert (retried.trial_id, retried.status) == ("1", TrialStatus.RUNNING)
    retried.status = TrialStatus.COMPLETED
    oracle.update_trial("1", {"val_accuracy": 0.25})
    oracle.end_trial(retried)
    assert oracle.get_trial("1").status == TrialStatus.COMPLETED
    # The first result of a trial counts: a second one (b was alive after all) is ignored.
    late = Trial(oracle.get_space(), trial_id="1", status=TrialStatus.FAILED)
    oracle.end_trial(late)
    assert oracle.get_trial("1").status == TrialStatus.COMPLETED
    assert oracle.end_order == ["0", "1"]
    assert oracle.create_trial("a").status == TrialStatus.STOPPED
    assert not oracle.ongoing_trials and not oracle.tuner_ids
