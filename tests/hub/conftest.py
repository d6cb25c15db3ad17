"""Fixtures of the hub tests: an isolated cache, a scripted server, a tiny published model."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_structconv import hub
from tests.hub.hub_testing import HubServer


@pytest.fixture(autouse=True)
def _float32_policy_and_fresh_names():
    """Overrides the suite's fixture of that name without its `keras.backend.clear_session()`,
    whose garbage collection costs about 0.5 s per test once TensorFlow is loaded; no hub test
    depends on layer names."""
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture
def hub_env(tmp_path, monkeypatch):
    """An empty cache under tmp_path and no hub variables from the outside."""
    for name in ("KERAS_STRUCTCONV_HUB_URL", "KERAS_STRUCTCONV_HUB_OFFLINE",
                 "KERAS_STRUCTCONV_HUB_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    cache = tmp_path / "cache"
    monkeypatch.setenv("KERAS_STRUCTCONV_HUB_CACHE", str(cache))
    return cache


@pytest.fixture
def server(tmp_path, monkeypatch, hub_env):
    """A scripted server over tmp_path/dist, set as the hub (KERAS_STRUCTCONV_HUB_URL)."""
    hub_server = HubServer(tmp_path / "dist")
    monkeypatch.setenv("KERAS_STRUCTCONV_HUB_URL", hub_server.url)
    yield hub_server
    hub_server.stop()


@pytest.fixture(scope="session")
def tiny_model_files(tmp_path_factory):
    """A small Sequential with a PSConv2D trained for a few steps on random 0-255 images, saved as
    .keras and published into a hub folder; with the inputs and the trained model's outputs."""
    import keras_structconv as ksc

    folder = tmp_path_factory.mktemp("tiny")
    keras.utils.set_random_seed(1)
    model = keras.Sequential([
        keras.Input((8, 8, 3), name="images"),  # named: auto names count up per process
        keras.layers.Rescaling(1 / 255.0),
        keras.layers.Conv2D(8, 3, padding="same"),
        ksc.PSConv2D(8, 3, cyclic_interval=2),
        keras.layers.ReLU(),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(3),
    ])
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 255, (32, 8, 8, 3)).astype("float32")
    labels = rng.integers(0, 3, 32)
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    initial = model.predict(images, verbose=0)
    model.fit(images, labels, batch_size=8, epochs=1, verbose=0)  # 4 steps
    outputs = model.predict(images, verbose=0)
    assert np.max(np.abs(outputs - initial)) > 1e-4, "training changed nothing"
    model_path = folder / "tiny.keras"
    model.save(model_path)
    dist = folder / "dist"
    entry = hub.publish(model_path, name="tiny_psconv", version=1, out_dir=dist,
                        metrics={"loss": 1.0}, paper="PSConv (Li, Yao, Chen)", license="MIT")
    return {"model_path": model_path, "dist": dist, "entry": entry, "images": images,
            "outputs": outputs}
