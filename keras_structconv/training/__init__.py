"""Training helpers: resumable `fit` runs, the zoo's CIFAR-10 recipe, `tf.distribute`.

- `callbacks`: `TrainingClock` (training time across resumed sessions), `TimedCheckpoint`,
  `ProgressCSVLogger`, `GracefulStop` (SIGTERM / time budget), `EpochCompletion` (whether an
  ending epoch ran all its steps).
- `schedules`: `poly_decay_sgd` (QGN's polynomial decay), `current_learning_rate`, `epochs_for`.
- `cifar`: the one CIFAR-10 recipe of the zoo (model with its own standardisation, SGD Nesterov,
  warm-up + cosine, decoupled weight decay on kernels only, a data stream resumable at any epoch).
- `run_options`: `resolve_run_options` (the options stored by a run's first session win; a
  different given option is an error), `lower_priority` (nice the process).
- `distribute`: strategies by name (`default`, `mirrored`, `multiworker` from `TF_CONFIG`),
  `shard_by_data`, `ChiefBackupAndRestore` (every worker restores, the chief writes),
  `restored_epoch` (where a resumed data stream starts), `prepare_fit` (Keras 3's `fit` under
  `MultiWorkerMirroredStrategy`).

See `zoo/cifar10/train.py` and `zoo/qgn_camvid/train.py` for complete resumable runs.
"""

from keras_structconv.training import callbacks, cifar, distribute, run_options, schedules
from keras_structconv.training.callbacks import (
    EpochCompletion,
    GracefulStop,
    ProgressCSVLogger,
    TimedCheckpoint,
    TrainingClock,
    write_json_atomically,
)
from keras_structconv.training.distribute import (
    STRATEGIES,
    ChiefBackupAndRestore,
    is_chief,
    make_strategy,
    num_workers,
    prepare_fit,
    restored_epoch,
    shard_by_data,
)
from keras_structconv.training.run_options import lower_priority, resolve_run_options
from keras_structconv.training.schedules import current_learning_rate, epochs_for, poly_decay_sgd

__all__ = [
    "STRATEGIES",
    "ChiefBackupAndRestore",
    "EpochCompletion",
    "GracefulStop",
    "ProgressCSVLogger",
    "TimedCheckpoint",
    "TrainingClock",
    "callbacks",
    "cifar",
    "current_learning_rate",
    "distribute",
    "epochs_for",
    "is_chief",
    "lower_priority",
    "make_strategy",
    "num_workers",
    "poly_decay_sgd",
    "prepare_fit",
    "resolve_run_options",
    "restored_epoch",
    "run_options",
    "schedules",
    "shard_by_data",
    "write_json_atomically",
]
