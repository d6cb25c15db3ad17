"""One process of the distributed-training tests: a few steps of a small model with the zoo's
recipe (`keras_structconv.training.cifar`) under a named strategy; writes the final weights and
the per-step losses to an npz file.

    python -m tests.training.distributed_worker OUT.npz --strategy default|mirrored|multiworker
        [--logical-cpus N] [--backup-dir D]

The model has no BatchNormalization: each replica would normalise with its own half-batch's
statistics, and the moving averages would legitimately differ from a single process's.
"""

import argparse
import os
import sys

import numpy as np

GLOBAL_BATCH = 16
IMAGES = 64
EPOCHS = 2
SEED = 7


def small_model():
    import keras

    keras.config.disable_traceback_filtering()

    keras.utils.set_random_seed(SEED)
    images = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255.0)(images)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(images, outputs)


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--strategy", default="default")
    parser.add_argument("--logical-cpus", type=int, default=None)
    parser.add_argument("--backup-dir", default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    if args.logical_cpus:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * args.logical_cpus
        )
    from keras_structconv import training

    strategy = training.make_strategy(args.strategy)
    import keras

    keras.config.disable_traceback_filtering()

    rng = np.random.default_rng(SEED)
    x = rng.integers(0, 256, (IMAGES, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, IMAGES).astype(np.int32)
    steps = training.cifar.steps_per_epoch(IMAGES, GLOBAL_BATCH)
    dataset = training.shard_by_data(
        training.cifar.training_dataset(x, y, seed=SEED, epochs=EPOCHS, batch_size=GLOBAL_BATCH)
    )
    with strategy.scope():
        model = small_model()
        training.cifar.compile_for_cifar(model, epochs=EPOCHS, steps_per_epoch=steps,
                                         warmup_epochs=1)
    training.prepare_fit(model, dataset)
    running_means = []

    class RecordLoss(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            running_means.append((batch, float(logs["loss"])))

    callbacks = [RecordLoss()]
    if args.backup_dir:
        callbacks.append(training.ChiefBackupAndRestore(
            args.backup_dir, chief=training.is_chief(strategy), delete_checkpoint=False))
    model.fit(dataset, epochs=EPOCHS, steps_per_epoch=steps, verbose=0, shuffle=False,
              callbacks=callbacks)
    # Per-step losses from the epochs' running means: l_k = (k + 1) m_k - k m_(k-1).
    losses, previous = [], 0.0
    for batch, mean in running_means:
        losses.append((batch + 1) * mean - batch * (previous if batch else 0.0))
        previous = mean
    weights = {f"weight{i}": np.asarray(w) for i, w in enumerate(model.get_weights())}
    np.savez(args.out, losses=np.array(losses), replicas=strategy.num_replicas_in_sync,
             workers=training.num_workers(strategy), chief=training.is_chief(strategy),
             iterations=int(model.optimizer.iterations.numpy()), **weights)
    return 0


if __name__ == "__main__":
    sys.exit(main())
