"""`tf.distribute` for the zoo recipes: strategies by name, per-worker data, chief-only backups.

- `make_strategy(name)`: `"default"` (one process, TensorFlow's default strategy), `"mirrored"`
  (`tf.distribute.MirroredStrategy` over this machine's GPUs, else over its logical CPU devices)
  or `"multiworker"` (`tf.distribute.MultiWorkerMirroredStrategy`, the cluster and this process's
  role read from the `TF_CONFIG` environment variable).
- `shard_by_data(dataset)`: auto-shard policy `DATA` (see its docstring for why).
- `is_chief(strategy)`: whether this process writes checkpoints, logs and results.
- `ChiefBackupAndRestore`: `keras.callbacks.BackupAndRestore` for several workers: every worker
  restores from the chief's backup, only the chief writes it, and only after a complete epoch
  (a run stopped mid-epoch redoes that epoch); `restored_epoch(backup_dir)`: the
  epoch a resumed run starts at (to start its data stream there).
- `prepare_fit(model, dataset)`: what Keras 3's `fit` needs under `MultiWorkerMirroredStrategy`.

Multi-worker training runs the same command on every machine, each with its own `TF_CONFIG`:

```python
os.environ["TF_CONFIG"] = json.dumps({
    "cluster": {"worker": ["host0:12345", "host1:12345"]},
    "task": {"type": "worker", "index": 0},  # 1 on the second machine
})
strategy = make_strategy("multiworker")  # before any other TensorFlow op
with strategy.scope():
    model = build_and_compile()
dataset = shard_by_data(dataset)
prepare_fit(model, dataset)
model.fit(dataset, callbacks=[ChiefBackupAndRestore("run/backup", chief=is_chief(strategy))])
```

Reference: TensorFlow's guide "Multi-worker training with Keras" (`tf.distribute`).
"""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf

from keras_structconv import _internals, _validation
from keras_structconv.training.callbacks import EpochCompletion

__all__ = [
    "STRATEGIES",
    "ChiefBackupAndRestore",
    "is_chief",
    "make_strategy",
    "num_workers",
    "prepare_fit",
    "restored_epoch",
    "shard_by_data",
]

STRATEGIES = ("default", "mirrored", "multiworker")


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The `tf.distribute.Strategy` called `name` (one of `STRATEGIES`).

    `"multiworker"` must be created before any other TensorFlow operation of the process (it
    starts the process's gRPC server) and blocks until every worker of `TF_CONFIG` has started.

    Args:
        name: `"default"`, `"mirrored"` or `"multiworker"`.

    Returns:
        The strategy; build and compile the model inside `strategy.scope()`.

    Raises:
        ValueError: unknown name, or `"multiworker"` without a `TF_CONFIG` naming this task.

    Example:

    ```python
    strategy = make_strategy("mirrored")
    with strategy.scope():
        model = keras_structconv.models.create_model("resnet20")
        model.compile(...)
    ```
    """
    _validation.one_of(name, "name", STRATEGIES)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = gpus or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy(devices=[device.name for device in devices])
    config = os.environ.get("TF_CONFIG", "")
    task = json.loads(config).get("task", {}) if config.strip() else {}
    if "type" not in task or "index" not in task:
        raise ValueError(
            "`name='multiworker'` needs the environment variable TF_CONFIG with the cluster and "
            'this process\'s task, e.g. {"cluster": {"worker": ["host0:12345", "host1:12345"]}, '
            '"task": {"type": "worker", "index": 0}}. '
            f"Received: name={name!r}, TF_CONFIG={config!r}"
        )
    return tf.distribute.MultiWorkerMirroredStrategy()


def num_workers(strategy: tf.distribute.Strategy) -> int:
    """Number of worker processes taking part in `strategy` (1 unless multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    spec = resolver.cluster_spec().as_dict()
    return max(1, len(spec.get("worker", [])) + len(spec.get("chief", [])))


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True in the process that writes checkpoints, logs, the final model and results: every
    single-process strategy, and the chief of a multi-worker one (task "chief", or worker 0
    when the cluster has no "chief" task)."""
    return bool(strategy.extended.should_checkpoint)


def prepare_fit(model: keras.Model, dataset: tf.data.Dataset) -> None:
    """Makes `model.fit(dataset)` work under `MultiWorkerMirroredStrategy` (no-op otherwise).

    Keras 3's `fit` has two gaps there (keras-team/keras#20585): it builds the optimizer's
    variables from the first batch averaged across replicas with a `strategy.reduce` the
    multi-worker strategy rejects, and it averages each step's logs across workers with
    `strategy.reduce("MEAN", value, axis=0)`, which fails on scalars. So the variables are built
    from the first batch of `dataset` (undistributed; only its shapes matter) before `fit`, and
    the training step returns its logs as (1,) tensors (averaged to the same scalars).
    """
    strategy = model.distribute_strategy
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    first_batch = next(iter(dataset.take(1)))
    _internals.prebuild_for_multiworker(model, first_batch)
    train_step = model.train_step

    def train_step_with_reducible_logs(data):
        return {name: tf.reshape(value, [1]) for name, value in train_step(data).items()}

    model.train_step = train_step_with_reducible_logs


def shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` with auto-shard policy `DATA`, for `MultiWorkerMirroredStrategy`.

    Every worker runs the whole (seeded, hence identical) pipeline and keeps its share of each
    global batch: the distribution layer splits each batch of the global size into one slice per
    replica and worker i keeps its replicas' slices. So the workers together see exactly the
    batches a single process would. The default policy (`AUTO`) would try `FILE` first, which
    shards by input files, and an in-memory dataset (arrays in a `from_tensor_slices`) has none:
    `AUTO` then falls back to `DATA` with a warning; we ask for it explicitly.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


class ChiefBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` where only the chief writes the backup, and only
    after a complete epoch.

    Keras 3's callback has no multi-worker logic: every worker would write the same files into
    `backup_dir` at every epoch end (racing on a shared filesystem). Here every worker restores
    from the chief's backup at the start of `fit` (so all resume with the same weights, optimizer
    state and epoch; `backup_dir` must be readable by every worker, e.g. on a shared filesystem)
    and only the chief writes and deletes it.

    Keras' callback also backs up an epoch that a stop cut short (`on_epoch_end` runs for it):
    the backup then records the epoch as done, and the resumed run skips its remaining steps. A
    per-epoch backup here is written only when the epoch ran all its steps (`EpochCompletion`),
    so a run stopped mid-epoch resumes from the previous epoch's end and redoes the epoch. Use it
    for single-process runs too (`chief=True`, the default).

    Args:
        backup_dir: the chief's backup folder.
        chief: whether this process is the chief (`is_chief(strategy)`).
        **kwargs: passed to `keras.callbacks.BackupAndRestore`.

    Example:

    ```python
    backup = ChiefBackupAndRestore("run/backup", chief=is_chief(strategy),
                                   delete_checkpoint=False)
    ```
    """

    def __init__(self, backup_dir, chief: bool = True, **kwargs):
        save_freq = kwargs.get("save_freq", "epoch")
        if save_freq != "epoch":
            # Keras 3 resumes at an epoch start only: a backup made inside an epoch would be
            # resumed by redoing the whole epoch on weights that have already seen part of it.
            raise ValueError(
                "ChiefBackupAndRestore backs up complete epochs only: `save_freq` must be "
                f"'epoch'. Received: save_freq={save_freq!r}"
            )
        super().__init__(backup_dir, **kwargs)
        self.chief = bool(chief)
        self._epochs = EpochCompletion()

    def on_epoch_begin(self, epoch, logs=None):
        self._epochs.epoch_begin()

    # Every write of the parent happens in these three hooks; a non-chief worker skips them
    # (its restore, in on_train_begin, is inherited).
    def on_epoch_end(self, epoch, logs=None):
        if self.chief and self._epochs.completed(self.params, self.model):
            super().on_epoch_end(epoch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._epochs.step_end(batch)
        if self.chief:
            super().on_train_batch_end(batch, logs)

    def on_train_end(self, logs=None):
        if self.chief:
            super().on_train_end(logs)


def restored_epoch(backup_dir: str | os.PathLike) -> int:
    """The epoch a `BackupAndRestore` of `backup_dir` resumes from (0 when there is no backup):
    the data stream of a resumed run starts there, before `fit` restores the weights."""
    path = os.path.join(os.fspath(backup_dir), "training_metadata.json")
    if not os.path.isfile(path):
        return 0
    with open(path, encoding="utf-8") as handle:
        return int(json.load(handle)["epoch"])
