"""The CIFAR-10 zoo models published in the repository (keras_structconv/hub/manifest.json, with
the archives in zoo/dist/): one loads by handle from the checkout, with no network, and
reproduces its reported accuracy on the 500 test images embedded in the package. Skips while no
model is published (zoo/cifar10/evaluate.py checks every model on the full test set)."""

import numpy as np
import pytest

from keras_structconv import datasets, demo


@pytest.fixture
def packaged_hub(tmp_path, monkeypatch):
    """The packaged manifest (no hub URL), a fresh cache, no offline mode."""
    monkeypatch.delenv("KERAS_STRUCTCONV_HUB_URL", raising=False)
    monkeypatch.delenv("KERAS_STRUCTCONV_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("KERAS_STRUCTCONV_HUB_CACHE", str(tmp_path / "cache"))


def test_a_published_zoo_model_reproduces_its_embedded_accuracy(packaged_hub):
    entries = demo.zoo_models()
    if not entries:
        pytest.skip("no CIFAR-10 zoo model is published in keras_structconv/hub/manifest.json "
                    "yet (zoo/README.md)")
    entry = entries[0]  # the baseline when it is published
    reported = entry["metadata"]["metrics"]["embedded_test_top1"]
    _, (x_test, y_test) = datasets.load_embedded_cifar10()
    measured = demo.zoo_accuracy(entry["handle"], x_test, y_test)
    assert abs(measured - reported) <= demo.ZOO_TOLERANCE, entry["handle"]
    assert np.isclose(entry["metadata"]["preprocessing"]["value_range"], [0, 255]).all()
