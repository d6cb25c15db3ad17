"""Bridge to TensorFlow Datasets for users who are online.

TFDS name used: `"cifar10"` (the original CIFAR-10 pixels; downloaded on first use, ~160 MB).
TFDS has no CamVid, so `load_camvid` reads the npz copy only.
"""

import tensorflow as tf

TFDS_NAMES = {"cifar10": "cifar10"}


def load_cifar10_pairs(split, data_dir=None):
    """Unbatched dataset of (uint8 (32, 32, 3), int32 label) from `tfds.load("cifar10")`.

    Raises ImportError when tensorflow_datasets is not installed and RuntimeError (chained to
    the TFDS error) when TFDS cannot provide the data, typically because it is offline.
    """
    tfds = _import_tfds()
    name = TFDS_NAMES["cifar10"]
    try:
        pairs = tfds.load(
            name, split=split, as_supervised=True, data_dir=data_dir, shuffle_files=False
        )
    except Exception as error:  # TFDS raises many types (download, checksum, not-found errors).
        raise RuntimeError(
            f"tensorflow_datasets could not load {name!r} (it downloads the data on first use, "
            "which needs network access). Use source='npz' with the JPEG npz copy instead "
            f"(data_dir=... or $KERAS_STRUCTCONV_DATA). Received: split={split!r}, "
            f"data_dir={data_dir!r}, error={type(error).__name__}: {error}"
        ) from error
    return pairs.map(
        lambda image, label: (tf.cast(image, tf.uint8), tf.cast(label, tf.int32)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )


def _import_tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise ImportError(
            "source='tfds' needs the tensorflow-datasets package (pip install "
            "tensorflow-datasets); source='npz' reads the JPEG npz copy without it."
        ) from error
    return tfds
