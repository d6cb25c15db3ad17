"""Train one zoo model on CIFAR-10 with the zoo's single recipe, resumably.

    python zoo/cifar10/train.py RUN_DIR --model NAME [--seed S] [--epochs E]
        [--strategy default|mirrored|multiworker] [--data-dir D] [--train-subset N]

Run the same command again to resume after a kill: the run options of the first session are
stored in RUN_DIR/config.json (an option given again must have the same value); the session
options (--strategy, --data-dir, --time-budget-minutes, --nice, --verbose) may change.

Recipe (`keras_structconv.training.cifar`, the same for every model): SGD with Nesterov momentum
0.9, batch 128, peak learning rate 0.1 after a 2-epoch linear warm-up, cosine decay to 0,
decoupled weight decay 5e-4 on kernels only (not on BN, biases, slopes), pad-4 crop + flip, no
label smoothing; default 21 epochs (about 45 minutes for ResNet-20 on 2 idle cores;
zoo/README.md says why). The model takes RGB images in [0, 255]: its first layer standardises them.

RUN_DIR contents:
- config.json (run options), state.json (`TrainingClock`: training time across sessions);
- backup/ (`BackupAndRestore`, every epoch; written by the chief only), epochs.csv;
- `<model>_cifar10.keras` (the final model, no optimizer state) and results.json (model,
  parameters, seed, epochs, test accuracy, training time, train and inference img/s on this
  machine, the commands of every session, versions, the oneDNN setting), written once, by the
  chief, when the last epoch is done.

Stopping: `kill PID` (SIGTERM) or Ctrl-C stops after the current step (the partial epoch is
redone on resume); --time-budget-minutes stops at the first epoch end after the budget. A
multi-worker run is stopped by killing every worker; it resumes from the last epoch's backup.

Several machines (`--strategy multiworker`): the same command on every machine, each with its
own TF_CONFIG (see zoo/cifar10/README.md); RUN_DIR must be on a filesystem every worker reads.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

RUN_DEFAULTS = {
    "model": None,
    "seed": 0,
    "epochs": None,  # default: keras_structconv.training.cifar.DEFAULT_EPOCHS
    "batch_size": 128,
    "train_subset": None,
    "test_subset": None,
    "source": "npz",
}
RESULTS = "results.json"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Train a zoo model on CIFAR-10; run again with the same RUN_DIR to resume."
    )
    parser.add_argument("run_dir", type=Path, help="folder of the run (created, or resumed)")
    run = parser.add_argument_group("run options (stored in RUN_DIR/config.json)")
    run.add_argument("--model", help="registry name, e.g. resnet20, ps_resnet20, aognet_cifar")
    run.add_argument("--seed", type=int, help="seed of the weights, order and augmentation (0)")
    run.add_argument("--epochs", type=int, help="epochs (default: the recipe's, 21)")
    run.add_argument("--batch-size", type=int, help="global batch (default 128, the recipe's)")
    run.add_argument("--train-subset", type=int,
                     help="train on a seeded random subset of N images (smoke tests)")
    run.add_argument("--test-subset", type=int,
                     help="evaluate on a seeded random subset of N test images (smoke tests)")
    run.add_argument("--source", choices=("npz", "embedded"),
                     help="npz: the full CIFAR-10 (default); embedded: the package's sample")
    session = parser.add_argument_group("session options (may change between sessions)")
    session.add_argument("--strategy", default="default",
                         choices=("default", "mirrored", "multiworker"),
                         help="tf.distribute strategy; multiworker reads TF_CONFIG")
    session.add_argument("--data-dir", type=Path, default=None,
                         help="folder with CIFAR-10's train.npz and test.npz")
    session.add_argument("--time-budget-minutes", type=float, default=None,
                         help="stop at the first epoch end after this many minutes")
    session.add_argument("--nice", type=int, default=10,
                         help="lower this process's priority to at least this niceness")
    session.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2),
                         help="fit verbosity (default 2: one line per epoch)")
    return parser


def resolve_config(args: argparse.Namespace, stored: dict | None) -> dict:
    """The run options: the stored ones on resume (a conflicting option is an error), else the
    given ones over the defaults."""
    from keras_structconv.training import resolve_run_options

    try:
        config = resolve_run_options(RUN_DEFAULTS, vars(args), stored)
    except ValueError as error:
        raise SystemExit(str(error)) from None
    if config["model"] is None:
        raise SystemExit("--model is required for a new run (e.g. --model resnet20)")
    return config


def load_data(config: dict, data_dir: Path | None):
    """((x_train, y_train), (x_test, y_test)); the train subset is a seeded random draw."""
    import numpy as np

    from keras_structconv import datasets

    if config["source"] == "embedded":
        (x_train, y_train), (x_test, y_test) = datasets.load_embedded_cifar10()
    else:
        x_train, y_train = datasets.load_cifar10_arrays("train", data_dir)
        x_test, y_test = datasets.load_cifar10_arrays("test", data_dir)
    rng = np.random.default_rng(config["seed"])
    if config["train_subset"] is not None:
        keep = np.sort(rng.permutation(len(x_train))[: config["train_subset"]])
        x_train, y_train = x_train[keep], y_train[keep]
    if config["test_subset"] is not None:
        keep = np.sort(rng.permutation(len(x_test))[: config["test_subset"]])
        x_test, y_test = x_test[keep], y_test[keep]
    return (x_train, y_train), (x_test, y_test)


def session_command() -> str:
    return shlex.join([Path(sys.executable).name, *sys.argv])


def environment() -> dict:
    """Versions and the settings that decide speed, recorded with the results."""
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_structconv
    from keras_structconv import _internals

    return {
        "python": platform.python_version(),
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "numpy": np.__version__,
        "keras_structconv": keras_structconv.__version__,
        "TF_ENABLE_ONEDNN_OPTS": _internals.onednn_setting(),
        "onednn_enabled": _internals.onednn_enabled(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "load_average_at_end": list(os.getloadavg()),
    }


def final_results(config, model_path, state, strategy_name, workers, replicas, x_test, y_test,
                  steps_done, train_images):
    """results.json's content: the saved model reloaded and evaluated on the test set."""
    import numpy as np

    from keras_structconv import export, training

    model = export.load_model(model_path, compile=False)
    probabilities = model.predict(x_test, batch_size=500, verbose=0)
    accuracy = float(np.mean(np.argmax(probabilities, axis=-1) == y_test))
    trainable = sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)
    inference = training.cifar.inference_throughput(model, x_test, repeats=2)
    train_seconds = float(state["train_seconds"])
    return {
        "model": config["model"],
        "model_file": model_path.name,
        "dataset": "CIFAR-10" if config["source"] == "npz" else "CIFAR-10 embedded sample",
        "source": config["source"],
        "parameters": {"total": int(model.count_params()), "trainable": trainable},
        "seed": config["seed"],
        "epochs": config["epochs"],
        "steps": steps_done,
        "batch_size": config["batch_size"],
        "train_images": train_images,
        "test_images": int(len(y_test)),
        "test_accuracy": accuracy,
        "training_seconds": train_seconds,
        "all_sessions_seconds": float(state["all_sessions_seconds"]),
        # CPU seconds of the training process (all threads): the figure other jobs on the
        # machine barely change, unlike the wall time above.
        "training_cpu_seconds": float(state["train_cpu_seconds"]),
        "sessions": len(state["sessions"]),
        "train_images_per_second": steps_done * config["batch_size"] / train_seconds,
        "inference_images_per_second": inference,
        "strategy": strategy_name,
        "workers": workers,
        "replicas": replicas,
        "recipe": {
            "optimizer": "SGD, Nesterov momentum",
            "momentum": training.cifar.MOMENTUM,
            "peak_learning_rate": training.cifar.PEAK_LEARNING_RATE,
            "warmup_epochs": min(training.cifar.WARMUP_EPOCHS, config["epochs"] - 1),
            "schedule": "linear warm-up, cosine decay to 0",
            "weight_decay": training.cifar.WEIGHT_DECAY,
            "weight_decay_kind": "decoupled (Keras), kernels only (no BN, biases, slopes)",
            "augmentation": "pad-4 random crop, horizontal flip",
            "label_smoothing": 0.0,
        },
        "commands": state.get("commands", []),
        "environment": environment(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def train(args: argparse.Namespace) -> int:
    # The multi-worker strategy must exist before any other TensorFlow op of the process.
    from keras_structconv import training

    strategy = training.make_strategy(args.strategy)
    chief = training.is_chief(strategy)
    if training.num_workers(strategy) > 1 and args.time_budget_minutes is not None:
        raise SystemExit("--time-budget-minutes works with one worker only: each worker would "
                         "stop on its own clock and leave the others waiting")
    run_dir = args.run_dir
    config_path = run_dir / "config.json"
    stored = json.loads(config_path.read_text()) if config_path.exists() else None
    config = resolve_config(args, stored)
    config["epochs"] = config["epochs"] or training.cifar.DEFAULT_EPOCHS
    if chief and stored is None:
        run_dir.mkdir(parents=True, exist_ok=True)
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True))
    if chief and (run_dir / RESULTS).exists():
        print(f"{run_dir / RESULTS} exists: the run is finished.", flush=True)
        return 0
    training.lower_priority(args.nice)

    import keras

    (x_train, y_train), (x_test, y_test) = load_data(config, args.data_dir)
    steps = training.cifar.steps_per_epoch(len(x_train), config["batch_size"])
    epochs, total_steps = config["epochs"], config["epochs"] * steps
    backup_dir = run_dir / "backup"
    start_epoch = training.restored_epoch(backup_dir)
    model_path = run_dir / f"{config['model']}_cifar10.keras"
    dataset = training.shard_by_data(
        training.cifar.training_dataset(
            x_train, y_train, seed=config["seed"], epochs=epochs, start_epoch=start_epoch,
            batch_size=config["batch_size"],
        )
    )
    with strategy.scope():
        model = training.cifar.cifar_model(config["model"], seed=config["seed"])
        training.cifar.compile_for_cifar(model, epochs=epochs, steps_per_epoch=steps)

    training.prepare_fit(model, dataset)
    callbacks = [
        training.ChiefBackupAndRestore(backup_dir, chief=chief, delete_checkpoint=False)
    ]
    clock = None
    if chief:
        clock = training.TrainingClock(run_dir / "state.json")
        callbacks += [
            clock,  # after the backup: its state describes the backup just written
            training.ProgressCSVLogger(run_dir / "epochs.csv", every="epoch", clock=clock),
        ]
        state = training.TrainingClock.read_state(run_dir / "state.json")
        state.setdefault("commands", []).append(session_command())
        training.write_json_atomically(run_dir / "state.json", state)
    workers = training.num_workers(strategy)
    # One worker stopping alone would leave the others waiting for it in the next all-reduce:
    # a multi-worker run is stopped by killing every worker (the default SIGTERM action) and
    # resumes from the chief's last epoch backup.
    stop = training.GracefulStop(
        None if args.time_budget_minutes is None else 60 * args.time_budget_minutes
    )
    if workers == 1:
        callbacks.append(stop)
    replicas = strategy.num_replicas_in_sync
    if chief:
        print(
            f"{model.name}: epoch {start_epoch + 1}/{epochs}, {steps} steps an epoch of batch "
            f"{config['batch_size']} ({len(x_train)} images), strategy {args.strategy} "
            f"({workers} worker(s), {replicas} replica(s)), run dir {run_dir}",
            flush=True,
        )
    model.fit(dataset, epochs=epochs, steps_per_epoch=steps, callbacks=callbacks,
              verbose=args.verbose if chief else 0, shuffle=False)
    steps_done = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    if steps_done < total_steps:
        if chief:
            state = training.TrainingClock.read_state(run_dir / "state.json")
            print(f"Stopped ({stop.reason or 'stopped'}) at step {steps_done}/{total_steps}; "
                  f"{state['train_seconds'] / 60:.1f} min of training so far. Resume with the "
                  "same command.", flush=True)
        return 0
    if not chief:
        return 0
    # The published model: a fresh copy outside the strategy, without optimizer state.
    inference_model = training.cifar.cifar_model(config["model"])
    inference_model.set_weights(model.get_weights())
    partial = model_path.with_name(model_path.stem + ".partial.keras")
    inference_model.save(partial)
    os.replace(partial, model_path)
    clock.mark_finished()
    state = training.TrainingClock.read_state(run_dir / "state.json")
    results = final_results(config, model_path, state, args.strategy, workers, replicas,
                            x_test, y_test, steps_done, len(x_train))
    training.write_json_atomically(run_dir / RESULTS, results)
    print(f"Finished: test accuracy {results['test_accuracy']:.2%} on {len(y_test)} images, "
          f"{results['training_seconds'] / 60:.1f} min of training over {results['sessions']} "
          f"session(s); {model_path}, {run_dir / RESULTS}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return train(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
