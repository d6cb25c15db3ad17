"""Fail early and clearly when Keras runs on a backend other than TensorFlow.

Every layer of this library calls `tf.nn` directly (grouped / dilated convolutions with
explicit padding, ragged quadtree ops), so the JAX, PyTorch and NumPy backends cannot work.
"""

import os


def _backend_error(backend):
    return ImportError(
        "keras_structconv needs the TensorFlow backend of Keras 3: its layers are written "
        "with tf.nn. Set KERAS_BACKEND=tensorflow before importing keras. "
        f"Received: keras.backend.backend()={backend!r}"
    )


def require_tensorflow_backend():
    # Checked before `import keras` too: some backends fail inside keras' own import (the NumPy
    # backend needs SciPy), which would hide the reason behind an unrelated error.
    requested = os.environ.get("KERAS_BACKEND")
    if requested and requested != "tensorflow":
        raise _backend_error(requested)
    import keras

    if keras.backend.backend() != "tensorflow":
        raise _backend_error(keras.backend.backend())
