"""`structconv tune`: a KerasTuner search over the operators' hyper-parameters.

Search PSConv2D's cyclic interval and pattern, TreeConv2D's depth and variant, TreeAttention's
group size (per stage, each stage may keep the vanilla conv), AOGNetCIFAR's N and pruning, with
the learning rate, weight decay and batch size. Every trial records its trainable parameters and
train-step time; budgets turn trials over them into failed trials with the reason.

    structconv tune --backbone ResNet20 --operators psconv,treeconv,tam --tuner hyperband \\
        --epochs 4 --data cifar10 --train-subset 10000 --dir runs/resnet20

Running the same command again continues the search (KerasTuner reloads the project folder).
At the end: the top trials as a table, `<dir>/<project>/results.md` with every trial, the best
model as `<dir>/<project>/best_model.keras` and its accuracy on the test split.

Distributed: one `--chief` (serves the oracle over gRPC) and any number of `--worker`s (run
trials), all with the same arguments and `--oracle HOST:PORT`, sharing `--dir`.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import sys
from pathlib import Path

from keras_structconv.cli._common import add_subcommand, positive_int

DEFAULT_OPERATORS = "psconv,treeconv,tam"
EPILOG = (
    "backbones: ResNet20, ResNet56, CifarResNet18, CifarResNet50, ResNet18, ResNet50, ResNet101, "
    "AOGNetCIFAR, keras.applications.<Name>, or package.module:builder (a builder taking "
    "input_shape=, classes=, conv=, attention=)\n"
    "operators: psconv, treeconv, tam (conv and attention backbones), aog (AOGNetCIFAR)"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_subcommand(
        subparsers, "tune", run, __doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
    )
    search = parser.add_argument_group("search")
    search.add_argument("--backbone", default="ResNet20", help="backbone (default ResNet20)")
    search.add_argument(
        "--operators", default=DEFAULT_OPERATORS,
        help=f"comma-separated operators to search (default {DEFAULT_OPERATORS})",
    )
    search.add_argument(
        "--tuner", choices=["random", "bayesian", "hyperband"], default="random",
        help="search algorithm (default random)",
    )
    search.add_argument("--max-trials", type=positive_int, default=10, help="trials (default 10)")
    search.add_argument(
        "--epochs", type=positive_int, default=3,
        help="epochs per trial (Hyperband: of its longest round) (default 3)",
    )
    search.add_argument(
        "--global", dest="per_stage", action="store_false",
        help="one choice for the whole network instead of one per stage",
    )
    search.add_argument("--batch-size", default="128", help="size, or sizes to search: 64,128")
    search.add_argument(
        "--learning-rate", default="0.1", help="value, or a log range to search: 0.01:0.3"
    )
    search.add_argument(
        "--weight-decay", default="5e-4", help="value (0: none), or a log range: 1e-5:1e-3"
    )
    search.add_argument(
        "--objective", choices=["val_accuracy", "val_loss"], default="val_accuracy"
    )
    search.add_argument("--max-params", type=positive_int, default=None, help="budget")
    search.add_argument(
        "--max-step-time-ratio", type=float, default=None,
        help="budget: train-step time over the vanilla backbone's",
    )
    search.add_argument("--timing-steps", type=positive_int, default=10)
    search.add_argument("--timing-warmup", type=int, default=2)
    search.add_argument("--seed", type=int, default=0, help="oracle and data-order seed")
    search.add_argument(
        "--replicas", type=positive_int, default=1,
        help="train each trial with tf.distribute.MirroredStrategy over N devices (GPUs, or N "
        "logical CPU devices without GPUs)",
    )
    data = parser.add_argument_group("data")
    data.add_argument("--data", choices=["cifar10", "sample"], default="cifar10")
    data.add_argument("--data-dir", default=None, help="CIFAR-10 folder (train.npz, test.npz)")
    data.add_argument("--train-subset", type=positive_int, default=None, help="train images")
    data.add_argument(
        "--val-size", type=positive_int, default=None,
        help="validation images held out of the train split (default 5000; sample: 500)",
    )
    data.add_argument("--data-seed", type=int, default=0, help="seed of the split (default 0)")
    output = parser.add_argument_group("output")
    output.add_argument("--dir", required=True, help="search folder (kept: reruns continue)")
    output.add_argument("--project", default="search", help="project name (default search)")
    output.add_argument("--top", type=positive_int, default=5, help="trials shown (default 5)")
    output.add_argument(
        "--no-test", dest="evaluate_test", action="store_false",
        help="do not evaluate the best model on the test split",
    )
    output.add_argument("--verbose", type=int, choices=[0, 1, 2], default=1)
    distributed = parser.add_argument_group("distributed (KerasTuner chief/worker over gRPC)")
    role = distributed.add_mutually_exclusive_group()
    role.add_argument("--chief", action="store_true", help="serve the oracle")
    role.add_argument("--worker", action="store_true", help="run trials for a chief")
    distributed.add_argument("--oracle", default=None, help="the chief's HOST:PORT")
    distributed.add_argument("--tuner-id", default=None, help="worker id (default worker-<pid>)")
    distributed.add_argument("--lease-seconds", type=float, default=120.0)
    distributed.add_argument("--heartbeat-seconds", type=float, default=10.0)
    distributed.add_argument("--idle-poll-seconds", type=float, default=1.0)
    parser.set_defaults(parser=parser)


def _number_or_range(parser, text, name):
    try:
        if ":" in text:
            low, high = (float(part) for part in text.split(":"))
            return (low, high)
        return float(text)
    except ValueError:
        parser.error(f"--{name} must be a number or LOW:HIGH, got {text!r}")


def _batch_sizes(parser, text):
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        parser.error(f"--batch-size must be integers separated by commas, got {text!r}")
    return sizes[0] if len(sizes) == 1 else sizes


def _configure_distribution(parser, args):
    if not (args.chief or args.worker):
        return
    if args.oracle is None or ":" not in args.oracle:
        parser.error("--chief and --worker need --oracle HOST:PORT")
    from keras_structconv.tuning import distributed_env

    host, port = args.oracle.rsplit(":", 1)
    role = "chief" if args.chief else "worker"
    try:
        os.environ.update(distributed_env(role, host, int(port), args.tuner_id))
    except ValueError as error:
        parser.error(str(error))


def _strategy(replicas):
    if replicas == 1:
        return None
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return tf.distribute.MirroredStrategy([f"/gpu:{i}" for i in range(replicas)])
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * replicas
    )
    return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(replicas)])


def run(args: argparse.Namespace) -> int:
    """Runs (or continues) the search; prints the top trials; returns the exit status."""
    parser = args.parser
    _configure_distribution(parser, args)
    from keras_structconv import tuning
    from keras_structconv.tuning.data import load_search_data

    strategy = _strategy(args.replicas)
    try:
        hypermodel = tuning.StructconvHyperModel(
            args.backbone,
            args.operators,
            per_stage=args.per_stage,
            learning_rate=_number_or_range(parser, args.learning_rate, "learning-rate"),
            weight_decay=_number_or_range(parser, args.weight_decay, "weight-decay"),
            batch_size=_batch_sizes(parser, args.batch_size),
            objective=args.objective,
            max_params=args.max_params,
            max_step_time_ratio=args.max_step_time_ratio,
            timing_warmup_steps=args.timing_warmup,
            timing_steps=args.timing_steps,
            seed=args.seed,
        )
        data = load_search_data(
            args.data, data_dir=args.data_dir, train_subset=args.train_subset,
            val_size=args.val_size, seed=args.data_seed,
        )
    except ValueError as error:
        parser.error(str(error))
    tuner = tuning.make_tuner(
        hypermodel,
        args.tuner,
        directory=args.dir,
        project_name=args.project,
        max_trials=args.max_trials,
        max_epochs=args.epochs,
        seed=args.seed,
        distribution_strategy=strategy,
        lease_seconds=args.lease_seconds,
        heartbeat_seconds=args.heartbeat_seconds,
        idle_poll_seconds=args.idle_poll_seconds,
    )
    tuner.search(
        data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
        epochs=args.epochs, verbose=args.verbose,
    )
    if tuning.distributed_role() == "worker":
        print(f"worker {tuner.tuner_id}: no trials left")
        return 0
    return _report(args, tuner, data)


def _report(args, tuner, data):
    from keras_structconv import tuning

    rows = tuning.trial_rows(tuner)
    direction = tuner.oracle.objective.direction
    project = Path(tuner.project_dir)
    print(f"\nTop {min(args.top, len(rows))} of {len(rows)} trials ({args.objective}):")
    print(tuning.format_table(rows, top=args.top, direction=direction))
    details = [
        "command: `structconv tune " + " ".join(shlex.quote(a) for a in sys.argv[2:]) + "`"
        if sys.argv[1:2] == ["tune"] else f"backbone {args.backbone}, tuner {args.tuner}",
        f"data: {data.description}",
        f"backbone {args.backbone}, operators {args.operators}, "
        f"{'per stage' if args.per_stage else 'whole network'}, tuner {args.tuner}, "
        f"{args.epochs} epochs, objective {args.objective}",
        "budget: " + (", ".join(
            f"{name}={value}" for name, value in (
                ("max_params", args.max_params), ("max_step_time_ratio", args.max_step_time_ratio)
            ) if value is not None
        ) or "none"),
        f"written {datetime.datetime.now().isoformat(timespec='seconds')}, "
        f"load average {os.getloadavg()[0]:.1f}",
    ]
    best = tuning.save_best_model(tuner, project / "best_model.keras")
    if best is not None:
        details.append(f"best model: `{project / 'best_model.keras'}`")
        if args.evaluate_test:
            from keras_structconv.datasets import cifar10_dataset

            _, accuracy = best.evaluate(
                cifar10_dataset(data.x_test, data.y_test, batch_size=256), verbose=0
            )
            details.append(
                f"best model's test accuracy: {accuracy:.4f} ({len(data.x_test):,} images)"
            )
            print(f"\nbest model: {project / 'best_model.keras'}, test accuracy {accuracy:.4f}")
    (project / "results.md").write_text(
        tuning.results_markdown(rows, f"Search {args.project}", details, direction)
    )
    print(f"results: {project / 'results.md'}")
    return 0
