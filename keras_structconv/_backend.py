"""Fail early and clearly when Keras runs on a backend other than TensorFlow.

Every layer of this library calls `tf.nn` directly (grouped / dilated convolutions with
explicit padding, ragged quadtree ops), so the JAX, PyTorch and NumPy backends cannot work.
"""

import keras


def require_tensorflow_backend():
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise ImportError(
            "keras_structconv needs the TensorFlow backend of Keras 3: its layers are written "
            "with tf.nn. Set KERAS_BACKEND=tensorflow before importing keras. "
            f"Received: keras.backend.backend()={backend!r}"
        )
