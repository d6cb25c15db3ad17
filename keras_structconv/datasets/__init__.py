"""Real datasets as NumPy arrays or batched `tf.data` pipelines.

- CIFAR-10: `load_cifar10` (sources: the JPEG npz copy, the sample embedded in the package, or
  TensorFlow Datasets when online), `load_cifar10_arrays`, `load_embedded_cifar10`, and
  `cifar10_dataset` (the one pipeline: shuffle, batch, pad-4 crop + flip, standardise).
- CamVid (11 classes, void -> 255): `load_camvid`, `load_camvid_arrays`, `camvid_dataset`.

Data folders: the `data_dir` argument, else `$KERAS_STRUCTCONV_DATA/<name>`, else
`<repo>/../shared/data/<name>`; the format is described in `shared/data/README.md`.
"""

from keras_structconv.datasets import camvid, cifar10
from keras_structconv.datasets._npz import DATA_ENV_VAR
from keras_structconv.datasets.camvid import camvid_dataset, load_camvid, load_camvid_arrays
from keras_structconv.datasets.cifar10 import (
    cifar10_dataset,
    load_cifar10,
    load_cifar10_arrays,
    load_embedded_cifar10,
)

CIFAR10_CLASS_NAMES = cifar10.CLASS_NAMES
CIFAR10_MEAN = cifar10.MEAN
CIFAR10_STD = cifar10.STD
CAMVID_CLASS_NAMES = camvid.CLASS_NAMES
CAMVID_IGNORE_LABEL = camvid.IGNORE_LABEL

__all__ = [
    "CAMVID_CLASS_NAMES",
    "CAMVID_IGNORE_LABEL",
    "CIFAR10_CLASS_NAMES",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "DATA_ENV_VAR",
    "camvid",
    "camvid_dataset",
    "cifar10",
    "cifar10_dataset",
    "load_camvid",
    "load_camvid_arrays",
    "load_cifar10",
    "load_cifar10_arrays",
    "load_embedded_cifar10",
]
