"""Shared fixtures: where the real datasets live, and a clean Keras state per test."""

import os
from pathlib import Path

# Allocator statistics in either oneDNN setting (TensorFlow's default CPU allocator keeps them
# only with oneDNN on); must be set before TensorFlow is imported.
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")

import keras  # noqa: E402
import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def dataset_root():
    """The data folder: $KERAS_STRUCTCONV_DATA, else ../shared/data beside the repo, else None."""
    env = os.environ.get("KERAS_STRUCTCONV_DATA")
    if env:
        return Path(env)
    default = REPO.parent / "shared" / "data"
    return default if default.exists() else None


def require_dataset(name):
    """Path of dataset `name` (e.g. "cifar10"); skips with a reason, or fails when CI=true."""
    root = dataset_root()
    path = None if root is None else root / name
    if path is None or not path.is_dir():
        reason = (
            f"dataset {name!r} not found (set KERAS_STRUCTCONV_DATA to the folder holding "
            f"{name}/; looked in {root or REPO.parent / 'shared' / 'data'})"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and {reason}")
        pytest.skip(reason)
    return path


@pytest.fixture
def cifar10_dir():
    return require_dataset("cifar10")


@pytest.fixture
def camvid_dir():
    return require_dataset("camvid")


@pytest.fixture(autouse=True)
def _float32_policy_and_fresh_names():
    """Every test starts under float32 with fresh layer names, whatever the previous one did."""
    keras.mixed_precision.set_global_policy("float32")
    keras.backend.clear_session()
    yield
    keras.mixed_precision.set_global_policy("float32")
