"""`keras_structconv.training.distribute` with real processes: two MultiWorkerMirroredStrategy
workers on 127.0.0.1 and a MirroredStrategy over two logical CPUs each reproduce a single
process's training with the same global batch; a non-chief backup callback restores but never
writes.

The distributed runs use tests/training/distributed_worker.py: a conv-ReLU-GAP-dense model
without BatchNorm (per-replica batch statistics would legitimately differ from a single
process's), 2 epochs of 4 global batches of 16 with the zoo recipe's optimizer.
"""

import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_structconv import training
from tests.conftest import REPO

# Per-step losses: each replica averages its half batch and the halves are averaged again, in
# float32, instead of one mean over the batch: a few ulps of ~2.3 (observed <= 1e-6).
LOSS_RTOL = 1e-5
# Weights after 8 steps: the summed gradients differ from a single process's by the same
# rounding, amplified a little by the steps (observed <= 3e-6).
WEIGHT_ATOL = 1e-5
PROCESS_TIMEOUT = 300


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def start_worker(out, *args, env=None):
    command = [sys.executable, "-m", "tests.training.distributed_worker", str(out), *args]
    environment = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    environment.update(TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    return subprocess.Popen(command, cwd=REPO, env=environment, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(processes):
    outputs = []
    try:
        for process in processes:
            output, _ = process.communicate(timeout=PROCESS_TIMEOUT)
            outputs.append(output)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output[-4000:]


def weights_of(result):
    return [result[f"weight{i}"] for i in range(sum(k.startswith("weight") for k in result))]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Single process, two-CPU mirrored, and two multi-worker processes, all at once."""
    folder = tmp_path_factory.mktemp("distributed")
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes = [
        start_worker(folder / "single.npz"),
        start_worker(folder / "mirrored.npz", "--strategy", "mirrored", "--logical-cpus", "2"),
    ]
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        processes.append(start_worker(
            folder / f"worker{index}.npz", "--strategy", "multiworker",
            "--backup-dir", str(folder / "backup"), env={"TF_CONFIG": tf_config},
        ))
    finish(processes)
    names = ("single", "mirrored", "worker0", "worker1")
    results = {name: dict(np.load(folder / f"{name}.npz")) for name in names}
    results["backup_dir"] = folder / "backup"
    return results


def assert_same_training(result, reference):
    assert int(result["iterations"]) == int(reference["iterations"]) == 8
    np.testing.assert_allclose(result["losses"], reference["losses"], rtol=LOSS_RTOL)
    for got, expected in zip(weights_of(result), weights_of(reference), strict=True):
        np.testing.assert_allclose(got, expected, rtol=0, atol=WEIGHT_ATOL)


def test_two_workers_end_identical_and_match_a_single_process(runs):
    first, second, single = runs["worker0"], runs["worker1"], runs["single"]
    assert (int(first["workers"]), int(first["replicas"])) == (2, 2)
    assert bool(first["chief"]) and not bool(second["chief"])
    # Both workers apply the same all-reduced gradients to the same variables: bit-identical.
    for a, b in zip(weights_of(first), weights_of(second), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first["losses"], second["losses"])
    assert_same_training(first, single)
    # The training moved the weights well beyond the tolerance.
    assert np.max(np.abs(single["losses"][0] - single["losses"][-1])) > 1e-3
    assert json.loads((runs["backup_dir"] / "training_metadata.json").read_text())["epoch"] == 2


def test_mirrored_over_two_logical_cpus_matches_a_single_process(runs):
    mirrored = runs["mirrored"]
    assert (int(mirrored["workers"]), int(mirrored["replicas"])) == (1, 2)
    assert_same_training(mirrored, runs["single"])


def test_a_non_chief_backup_restores_the_chief_state_and_never_writes(tmp_path):
    backup = tmp_path / "backup"
    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    y = np.zeros((8, 1), "float32")

    def model():
        keras.utils.set_random_seed(0)
        net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        net.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        return net

    chief = model()
    chief.fit(x, y, batch_size=4, epochs=2, verbose=0,
              callbacks=[training.ChiefBackupAndRestore(backup, chief=True)])
    assert not backup.exists()  # delete_checkpoint=True by default: the chief deletes it
    chief_callback = training.ChiefBackupAndRestore(backup, delete_checkpoint=False)
    chief = model()
    chief.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[chief_callback])
    files = {path.name: path.read_bytes() for path in backup.iterdir()}
    assert json.loads(files["training_metadata.json"])["epoch"] == 2

    worker = model()
    history = worker.fit(x, y, batch_size=4, epochs=4, verbose=0, callbacks=[
        training.ChiefBackupAndRestore(backup, chief=False)
    ])
    assert len(history.history["loss"]) == 2  # resumed at epoch 2 of 4
    assert int(worker.optimizer.iterations.numpy()) == 8  # 4 restored + 4 new steps
    assert {path.name: path.read_bytes() for path in backup.iterdir()} == files
    with pytest.raises(ValueError, match=r"`save_freq` must be 'epoch'. Received: save_freq=1"):
        training.ChiefBackupAndRestore(backup, save_freq=1)


def test_strategy_names_and_errors(monkeypatch):
    assert training.make_strategy("default") is tf.distribute.get_strategy()
    assert training.num_workers(training.make_strategy("default")) == 1
    assert training.is_chief(training.make_strategy("default"))
    with pytest.raises(ValueError, match=r"Received: name='horovod'"):
        training.make_strategy("horovod")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match=r"needs the environment variable TF_CONFIG.*"
                                         r"Received: name='multiworker', TF_CONFIG=''"):
        training.make_strategy("multiworker")
