"""Importing the package under a non-TensorFlow Keras backend fails with a clear error."""

import os
import subprocess
import sys

from tests.conftest import REPO


def test_import_under_numpy_backend_raises_a_clear_error():
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    result = subprocess.run(
        [sys.executable, "-c", "import keras_structconv"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode != 0
    assert "ImportError: keras_structconv needs the TensorFlow backend" in result.stderr
    assert "Received: keras.backend.backend()='jax'" in result.stderr
