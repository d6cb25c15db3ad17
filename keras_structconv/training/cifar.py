"""The CIFAR-10 recipe of the zoo: one recipe for every model, so that comparisons are fair.

- Model (`cifar_model`): a registry backbone (`keras_structconv.models.create_model`) behind a
  `keras.layers.Normalization` holding CIFAR-10's per-channel mean and variance on the 0-255
  scale, so the trained model takes RGB images with values in [0, 255] (uint8 or float) and its
  users need no normalisation constants.
- Optimizer (`cifar_optimizer`): SGD, Nesterov momentum 0.9, batch 128, peak learning rate 0.1
  reached by a linear warm-up over `WARMUP_EPOCHS`, then cosine decay to 0
  (`keras.optimizers.schedules.CosineDecay`); weight decay 5e-4 on convolution and dense
  kernels, none on vectors (`decayed_variables`: BatchNorm gamma and beta, biases, PReLU
  slopes, gate biases). No label smoothing.
- Data (`training_dataset`): pad-4 random crop and horizontal flip (He et al., 2016, Sec. 4.2),
  on raw pixels; every epoch's order and augmentation are a function of `(seed, epoch)` only, so
  a run resumed at epoch k sees exactly the batches an uninterrupted run sees.

Weight decay in Keras is decoupled: after the momentum update, each decayed variable is
multiplied by `1 - lr * wd` (`var -= lr * wd * var`, outside the momentum buffer; Loshchilov and
Hutter, 2019). PyTorch's `SGD(weight_decay=wd)` adds `wd * var` to the gradient, so the decay
goes through the momentum buffer: with momentum 0.9 its steady-state effect is
`1 / (1 - 0.9) = 10` times that of one step, i.e. PyTorch's 5e-4 acts like about 5e-3 here. The
papers' CIFAR recipes (PyTorch or the equivalent coupled L2) therefore regularise about ten
times more strongly than this recipe at the same number: absolute accuracies are not comparable
with theirs; comparisons between our models (one recipe) are.

Example:

```python
from keras_structconv import datasets, training

(x, y) = datasets.load_cifar10_arrays("train")
steps = training.cifar.steps_per_epoch(len(x))
model = training.cifar.cifar_model("ps_resnet20")
training.cifar.compile_for_cifar(model, epochs=21, steps_per_epoch=steps)
model.fit(training.cifar.training_dataset(x, y, seed=0, epochs=21), epochs=21,
          steps_per_epoch=steps)
```
"""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf

from keras_structconv import _validation, datasets, models
from keras_structconv.datasets.cifar10 import random_crop_and_flip

__all__ = [
    "BATCH_SIZE",
    "DEFAULT_EPOCHS",
    "MOMENTUM",
    "PEAK_LEARNING_RATE",
    "WARMUP_EPOCHS",
    "WEIGHT_DECAY",
    "cifar_model",
    "cifar_optimizer",
    "compile_for_cifar",
    "decayed_variables",
    "evaluation_dataset",
    "inference_throughput",
    "steps_per_epoch",
    "training_dataset",
]

BATCH_SIZE = 128
PEAK_LEARNING_RATE = 0.1
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
WARMUP_EPOCHS = 2
# ResNet-20 at batch 128 takes about 0.33 s a step on 2 idle cores with oneDNN (390 steps an
# epoch, about 127 s): 21 epochs are about 45 minutes (zoo/README.md says why 45).
DEFAULT_EPOCHS = 21
NUM_CLASSES = 10


def cifar_model(name: str, *, seed: int | None = None, **kwargs) -> keras.Model:
    """The registry model `name` for CIFAR-10, taking RGB images with values in [0, 255].

    Args:
        name: a `keras_structconv.models.list_models()` name, e.g. `"resnet20"`.
        seed: seed of the initial weights (`keras.utils.set_random_seed`), or None.
        **kwargs: passed to the builder (default `classes=10`, `input_shape=(32, 32, 3)`).

    Returns:
        A functional `keras.Model` called `<name>_cifar10`: `Normalization` (CIFAR-10's mean and
        variance, 0-255 scale), then the backbone; input (B, 32, 32, 3) uint8 or float, output
        (B, 10) class probabilities.

    Example:

    ```python
    model = cifar_model("resnet20", seed=0)
    probabilities = model.predict(uint8_images)
    ```
    """
    if seed is not None:
        keras.utils.set_random_seed(seed)
    kwargs.setdefault("classes", NUM_CLASSES)
    kwargs.setdefault("input_shape", (32, 32, 3))
    backbone = models.create_model(name, **kwargs)
    scale = 255.0
    normalization = keras.layers.Normalization(
        mean=[scale * m for m in datasets.CIFAR10_MEAN],
        variance=[(scale * s) ** 2 for s in datasets.CIFAR10_STD],
        name="cifar10_standardization",
    )
    images = keras.Input(kwargs["input_shape"], name="images")
    outputs = backbone(normalization(images))
    return keras.Model(images, outputs, name=f"{name}_cifar10")


def decayed_variables(model: keras.Model) -> tuple[list, list]:
    """`(decayed, excluded)`: the trainable variables with at least two dimensions larger than 1
    (kernels), and the others: vectors and scalars, whatever their rank, e.g. BatchNorm gamma
    and beta, biases, gate biases, and PReLU slopes, which Keras stores as (1, 1, C) when
    their spatial axes are shared."""
    decayed, excluded = [], []
    for variable in model.trainable_variables:
        wide_dimensions = sum(1 for size in variable.shape if size > 1)
        (decayed if wide_dimensions >= 2 else excluded).append(variable)
    return decayed, excluded


def cifar_optimizer(
    model: keras.Model,
    total_steps: int,
    warmup_steps: int,
    *,
    peak_learning_rate: float = PEAK_LEARNING_RATE,
    momentum: float = MOMENTUM,
    weight_decay: float = WEIGHT_DECAY,
) -> keras.optimizers.SGD:
    """SGD with Nesterov momentum, linear warm-up then cosine decay to 0, and decoupled weight
    decay on `model`'s kernels only (see the module docstring for what decoupled means beside
    PyTorch's coupled L2).

    Args:
        model: the model whose vectors (`decayed_variables`) are excluded from the decay with
            `optimizer.exclude_from_weight_decay(var_list=...)`, before the optimizer is
            built; use the optimizer for this model only (exclusions are per variable).
        total_steps: optimizer steps of the whole run (warm-up included).
        warmup_steps: steps of the linear warm-up from 0 to `peak_learning_rate` (< total_steps).
        peak_learning_rate: the rate at the end of the warm-up.
        momentum: Nesterov momentum.
        weight_decay: decoupled decay coefficient (`var -= lr * wd * var` each step).

    Returns:
        A `keras.optimizers.SGD`, not yet built.

    Example:

    ```python
    model.compile(optimizer=cifar_optimizer(model, 21 * 390, 2 * 390), loss=...)
    ```
    """
    total_steps = _validation.positive_int(total_steps, "total_steps")
    warmup_steps = _validation.int_in_range(warmup_steps, "warmup_steps", 0, total_steps - 1)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=total_steps - warmup_steps,
        alpha=0.0,
        warmup_target=peak_learning_rate,
        warmup_steps=warmup_steps,
    )
    optimizer = keras.optimizers.SGD(
        schedule, momentum=momentum, nesterov=True, weight_decay=weight_decay
    )
    _, excluded = decayed_variables(model)
    if excluded:
        optimizer.exclude_from_weight_decay(var_list=excluded)
    return optimizer


def compile_for_cifar(model: keras.Model, *, epochs: int, steps_per_epoch: int,
                      warmup_epochs: int = WARMUP_EPOCHS, **optimizer_kwargs) -> keras.Model:
    """Compiles `model` with the recipe: `cifar_optimizer` over `epochs * steps_per_epoch` steps
    (warm-up `min(warmup_epochs, epochs - 1)` epochs), sparse categorical cross-entropy on the
    model's probabilities, accuracy. No XLA (`jit_compile=False`): several operators' layers
    choose their own compiled parts. Returns `model`."""
    epochs = _validation.positive_int(epochs, "epochs")
    steps_per_epoch = _validation.positive_int(steps_per_epoch, "steps_per_epoch")
    total_steps = epochs * steps_per_epoch
    warmup_steps = min(warmup_epochs * steps_per_epoch, total_steps - 1)
    model.compile(
        optimizer=cifar_optimizer(model, total_steps, warmup_steps, **optimizer_kwargs),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
        jit_compile=False,
    )
    return model


def steps_per_epoch(num_images: int, batch_size: int = BATCH_SIZE) -> int:
    """Full batches in one pass (the last partial batch is dropped: 390 for 50,000 images)."""
    num_images = _validation.positive_int(num_images, "num_images")
    batch_size = _validation.positive_int(batch_size, "batch_size")
    if num_images < batch_size:
        raise ValueError(
            f"`num_images` must be at least one batch ({batch_size}). "
            f"Received: num_images={num_images}"
        )
    return num_images // batch_size


def training_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    seed: int,
    epochs: int,
    start_epoch: int = 0,
    batch_size: int = BATCH_SIZE,
    augment: bool = True,
) -> tf.data.Dataset:
    """Batches of epochs `start_epoch .. epochs - 1`, each a function of `(seed, epoch)` only.

    Epoch e is a permutation of the images drawn from the stateless seed `(seed, e)`, cut to
    `steps_per_epoch` full batches; each image gets its own pad-4 crop and flip from the
    stateless seed `(seed, e, position)` (`keras_structconv.datasets.cifar10.random_crop_and_flip`,
    the augmentation of `cifar10_dataset`). Unlike `cifar10_dataset`, whose reshuffling stream
    restarts at its first epoch in a new process, this stream can start at any epoch: a run
    resumed from a backup of epoch k reads exactly what an uninterrupted run reads. Augmenting
    per image (not per batch) keeps the images identical when a distribution strategy splits
    batches between replicas.

    Args:
        images: uint8 (N, 32, 32, 3).
        labels: integer (N,).
        seed: integer seed of the orders and augmentations.
        epochs: the run's epoch count (the stream ends after epoch `epochs - 1`).
        start_epoch: first epoch of the stream (`restored_epoch(backup_dir)` when resuming).
        batch_size: images per batch (the global batch under a distribution strategy).
        augment: apply the crop and flip.

    Returns:
        A `tf.data.Dataset` of `(float32 (batch_size, 32, 32, 3) in [0, 255], int32
        (batch_size,))`, `(epochs - start_epoch) * steps_per_epoch(N, batch_size)` batches.

    Example:

    ```python
    stream = training_dataset(x, y, seed=0, epochs=21, start_epoch=restored_epoch("run/backup"))
    ```
    """
    images = np.asarray(images)
    labels = np.asarray(labels).reshape(-1).astype(np.int32)
    if images.ndim != 4 or labels.shape != images.shape[:1]:
        raise ValueError(
            "`images` must be (N, H, W, C) with one label each. "
            f"Received: images.shape={images.shape}, labels.shape={labels.shape}"
        )
    if not _validation.is_int(seed):
        raise ValueError(f"`seed` must be an integer. Received: seed={seed!r}")
    epochs = _validation.positive_int(epochs, "epochs")
    start_epoch = _validation.int_in_range(start_epoch, "start_epoch", 0, epochs)
    count = len(images)
    used = steps_per_epoch(count, batch_size) * batch_size
    image_table = tf.constant(images)
    label_table = tf.constant(labels)

    def epoch_positions(epoch):
        key = tf.stack([tf.constant(seed, tf.int64), epoch])
        order = tf.argsort(tf.random.stateless_uniform([count], seed=key))[:used]
        positions = epoch * used + tf.range(used, dtype=tf.int64)
        return tf.data.Dataset.from_tensor_slices((order, positions))

    def load(index, position):
        image = tf.gather(image_table, index)
        if augment:
            key = tf.stack([tf.constant(seed, tf.int64) + 1, position])
            image = random_crop_and_flip(image[None], key)[0]
        return tf.cast(image, tf.float32), tf.gather(label_table, index)

    stream = tf.data.Dataset.range(start_epoch, epochs).flat_map(epoch_positions)
    stream = stream.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return stream.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def evaluation_dataset(images: np.ndarray, labels: np.ndarray,
                       batch_size: int = 500) -> tf.data.Dataset:
    """Raw-pixel test batches (float32 in [0, 255], no augmentation, in order)."""
    return datasets.cifar10_dataset(images, labels, batch_size=batch_size, normalize=False)


def inference_throughput(model: keras.Model, images: np.ndarray, *, batch_size: int = 500,
                         repeats: int = 1) -> float:
    """Images per second of `model.predict` on `images` (after one warm-up batch), the best of
    `repeats` passes. A measurement of this machine at this moment: record the load with it."""
    model.predict(images[:batch_size], batch_size=batch_size, verbose=0)
    best = float("inf")
    for _ in range(_validation.positive_int(repeats, "repeats")):
        started = time.perf_counter()
        model.predict(images, batch_size=batch_size, verbose=0)
        best = min(best, time.perf_counter() - started)
    return len(images) / best
