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
    # Without the full garbage collection `clear_session` runs by default: in a process that has
    # built hundreds of models it takes 0.3-1 s, a quarter of the suite's time when run before
    # every test (measured: 338 s of the 1,382 s of test time). Python's own collector still runs.
    keras.backend.clear_session(free_memory=False)
    yield
    keras.mixed_precision.set_global_policy("float32")


def _keras_reloads_quadtree_decoders():
    from keras_structconv.quadtree._config import MIN_KERAS_FOR_RELOAD, keras_version

    return keras_version() >= MIN_KERAS_FOR_RELOAD


# For tests that rebuild a QGN or a QuadtreeDecoder from its config (a `.keras` reload): older
# Keras restores the decoder's weights wrongly, so `from_config` refuses there (tested with a
# patched version in tests/models/test_qgn.py and tests/quadtree/test_decoder.py).
needs_quadtree_reload = pytest.mark.skipif(
    not _keras_reloads_quadtree_decoders(),
    reason=f"Keras {keras.__version__} < 3.15 cannot reload a quadtree decoder "
    "(from_config refuses)",
)


def _version(text):
    return tuple(int(part) for part in text.split(".")[:3] if part.isdigit())


def skip_if_saved_by_newer_keras(path):
    """Skips the test when the `.keras` file `path` was saved by a newer Keras than this one.

    Keras reads files saved by its own and older versions only: newer versions add config keys
    (Keras 3.13's initializers write `input_axes`, which Keras 3.12 refuses). The fixtures were
    saved with the Keras of constraints.txt; older Keras versions get a skip with the reason."""
    import json
    import zipfile

    with zipfile.ZipFile(path) as archive:
        saved_by = json.loads(archive.read("metadata.json"))["keras_version"]
    if _version(keras.__version__) < _version(saved_by):
        pytest.skip(f"{Path(path).name} was saved by Keras {saved_by}; Keras "
                    f"{keras.__version__} cannot read newer files")
