"""zoo/cifar10: train.py (a 2-epoch run stopped after epoch 1 and resumed ends with the weights
of an uninterrupted run of the same seed; the clock counts both sessions; results.json is written
once, at the end, from the saved model), then publish.py and evaluate.py on that run: the model
loads by handle from a hub folder and reproduces its reported accuracy."""

import json

import keras
import numpy as np
import pytest

from keras_structconv import datasets, export, hub, training
from tests.zoo.zoo_scripts import SESSION, TINY_RUN, load_script

# Both runs execute the same ops on the same batches from the same initial weights; only the
# order of multi-threaded float32 reductions may differ between them (oneDNN and Eigen split
# work by thread), which moves weights by a few ulps per step. 4 SGD steps stay far below 1e-5.
WEIGHT_TOLERANCE = 1e-5


def final_weights(run):
    model = export.load_model(next(run.glob("*_cifar10.keras")), compile=False)
    return model.get_weights()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """A finished tiny run (2 epochs of 2 steps, one session)."""
    run = tmp_path_factory.mktemp("zoo") / "uninterrupted"
    assert load_script("cifar10", "train").main([str(run), *TINY_RUN, *SESSION]) == 0
    return run


def test_a_killed_run_resumes_to_the_uninterrupted_weights(uninterrupted, tmp_path):
    train = load_script("cifar10", "train")
    resumed = tmp_path / "resumed"

    # Session 1: the time budget stops it at the end of epoch 1 (right after its backup).
    assert train.main([str(resumed), *TINY_RUN, *SESSION, "--time-budget-minutes", "1e-6"]) == 0
    state = json.loads((resumed / "state.json").read_text())
    assert state["epochs_done"] == 1 and state["steps_done"] == 2 and not state["finished"]
    assert json.loads((resumed / "backup" / "training_metadata.json").read_text())["epoch"] == 1
    assert not (resumed / train.RESULTS).exists()
    assert not list(resumed.glob("*_cifar10.keras"))
    first_seconds = state["train_seconds"]

    with pytest.raises(SystemExit, match="--seed: stored 0, given 1"):
        train.main([str(resumed), "--seed", "1", *SESSION])

    # Session 2: the same command without the run options resumes at epoch 2.
    keras.backend.clear_session()
    assert train.main([str(resumed), *SESSION]) == 0
    state = json.loads((resumed / "state.json").read_text())
    assert state["finished"] and state["steps_done"] == 4
    assert [s["start_step"] for s in state["sessions"]] == [0, 2]
    results = json.loads((resumed / train.RESULTS).read_text())
    assert results["sessions"] == 2 and len(results["commands"]) == 2
    assert results["training_seconds"] == pytest.approx(state["train_seconds"])
    assert first_seconds < results["training_seconds"] <= results["all_sessions_seconds"]
    assert 0 < results["training_cpu_seconds"] == pytest.approx(state["train_cpu_seconds"])
    assert results["steps"] == 4 and results["train_images"] == 64 and results["test_images"] == 100
    assert results["parameters"]["total"] == 271_098  # ResNet-20 (+0 for the Normalization)

    for got, expected in zip(final_weights(resumed), final_weights(uninterrupted), strict=True):
        np.testing.assert_allclose(got, expected, rtol=0, atol=WEIGHT_TOLERANCE)
    # The weights did move (the comparison is not between two initialisations).
    fresh = training.cifar.cifar_model("resnet20", seed=0).get_weights()
    moved = zip(final_weights(resumed), fresh, strict=True)
    assert max(np.max(np.abs(a - b)) for a, b in moved) > 1e-3

    # results.json is written once: a third call finds the run finished and changes nothing.
    written = (resumed / train.RESULTS).read_bytes()
    assert train.main([str(resumed), *SESSION]) == 0
    assert (resumed / train.RESULTS).read_bytes() == written
    assert len(json.loads((resumed / "state.json").read_text())["sessions"]) == 2

    # The reported accuracy is the saved model's on the same test images.
    x_test, y_test = train.load_data(json.loads((resumed / "config.json").read_text()), None)[1]
    model = export.load_model(resumed / results["model_file"], compile=False)
    accuracy = np.mean(np.argmax(model.predict(x_test, verbose=0), axis=-1) == y_test)
    assert results["test_accuracy"] == pytest.approx(accuracy)


def test_publish_then_load_by_handle_and_check_the_reported_accuracy(
    uninterrupted, tmp_path, monkeypatch, capsys
):
    publish, evaluate = load_script("cifar10", "publish"), load_script("cifar10", "evaluate")
    dist = tmp_path / "dist"
    packaged = publish.PACKAGE_MANIFEST.read_bytes()
    with pytest.raises(SystemExit, match="--allow-sample"):
        publish.main([str(uninterrupted), "--out", str(dist)])
    assert publish.main([str(uninterrupted), "--out", str(dist), "--allow-sample"]) == 0
    assert publish.PACKAGE_MANIFEST.read_bytes() == packaged  # only the default --out adds to it

    monkeypatch.setenv("KERAS_STRUCTCONV_HUB_URL", dist.as_uri() + "/")
    monkeypatch.setenv("KERAS_STRUCTCONV_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("KERAS_STRUCTCONV_HUB_OFFLINE", raising=False)
    handle = "keras_structconv/resnet20_cifar10/1"
    model = hub.load(handle, progress=False)
    for got, expected in zip(model.get_weights(), final_weights(uninterrupted), strict=True):
        np.testing.assert_array_equal(got, expected)
    results = json.loads((uninterrupted / "results.json").read_text())
    metadata = hub.info(handle)["metadata"]
    assert metadata["metrics"]["top1"] == results["test_accuracy"]
    assert metadata["metrics"]["training_cpu_seconds"] == results["training_cpu_seconds"]
    assert metadata["labels"][:2] == ["airplane", "automobile"]
    assert metadata["preprocessing"]["value_range"] == [0, 255]
    _, (x_test, y_test) = datasets.load_embedded_cifar10()
    accuracy = np.mean(np.argmax(model.predict(x_test, verbose=0), axis=-1) == y_test)
    assert metadata["metrics"]["embedded_test_top1"] == pytest.approx(accuracy)

    capsys.readouterr()
    assert evaluate.main(["--source", "embedded"]) == 0
    out = capsys.readouterr().out
    assert handle in out and "OK" in out and "MISMATCH" not in out

    # A manifest reporting another accuracy fails the check.
    manifest = json.loads((dist / "manifest.json").read_text())
    manifest["models"][0]["metadata"]["metrics"]["embedded_test_top1"] = accuracy + 0.01
    (dist / "manifest.json").write_text(json.dumps(manifest))
    assert evaluate.main(["--source", "embedded"]) == 1
    assert "MISMATCH" in capsys.readouterr().out
