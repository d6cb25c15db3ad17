"""Train a QGN (Chitta et al., WACV 2020) on CamVid, resumably, in the background.

    python zoo/qgn_camvid/train.py RUN_DIR [--encoder resnet18] [--steps N] [...]

Run it again with the same RUN_DIR to resume: the options of the first session are stored in
RUN_DIR/config.json and reused (an option given again must have the same value; the session
options --data-dir, --checkpoint-minutes, --time-budget-minutes, --nice, --log-every,
--verbose may change).

Recipe (QGN appendix, unless marked ours):
- CamVid train (367 frames, 11 classes, void ignored), the foundation loader's augmentation:
  random scale in [0.5, 2], random crop (default 384x480 = the frame padded to a multiple of 32,
  i.e. full-resolution training as in the paper), horizontal flip; ImageNet standardisation.
- Model: `keras_structconv.models.QGN`, ResNet-18 encoder from scratch (ours: no ImageNet weights
  can be downloaded here), decoder of Table 7, adaptive level weights, propagation "gt".
- SGD, lr_0 = 0.02, polynomial decay (1 - i / i_max)^0.9 over the whole run (paper); momentum
  0.9 and weight decay 1e-4 (ours: the paper gives neither). Batch 4 (ours). The paper's class
  re-weighting (twice the loss for the classes below the median IoU) is not used.

RUN_DIR contents:
- config.json: the run's options; state.json: training time accumulated across sessions
  (`train_seconds`, `all_sessions_seconds`), sessions, steps done, `finished`;
- backup/: `training.ChiefBackupAndRestore` state (weights, optimizer, epoch), every epoch;
- checkpoint.keras: the whole model, every --checkpoint-minutes (default 10) and at the end of
  every session; qgn_camvid.keras: the final model, written when the last step is done;
- epochs.csv (one row per epoch), progress.csv (one row every --log-every steps).

Stopping: `kill PID` (SIGTERM) or Ctrl-C stops after the current step (the partial epoch is
redone on resume); --time-budget-minutes stops at the first epoch end after the budget (no
work lost). The process lowers its own priority (--nice, default 10).
"""

import argparse
import json
import os
import sys
from pathlib import Path

DATASET_CLASSES = 11
PAD_MULTIPLE = 32
# Options that define the run (stored in config.json and fixed across sessions), with defaults.
RUN_DEFAULTS = {
    "encoder": "resnet18",
    "levels": 6,
    "batch_size": 4,
    "crop": [384, 480],
    "scale_range": [0.5, 2.0],
    "steps": 2000,
    "steps_per_epoch": None,  # default: one pass over the training images
    "learning_rate": 0.02,
    "power": 0.9,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "decoder_filters": None,  # default: Table 7
    "decoder_units": None,
    "top_filters": 512,
    "loss_weighting": "adaptive",
    "propagation": "gt",
    "seed": 0,
    "limit": None,  # use only the first N training images (smoke tests)
}
FINAL_MODEL = "qgn_camvid.keras"
CHECKPOINT = "checkpoint.keras"


def build_parser():
    parser = argparse.ArgumentParser(
        description="Train a QGN on CamVid; run again with the same RUN_DIR to resume.",
    )
    parser.add_argument("run_dir", type=Path, help="folder of the run (created, or resumed)")
    run = parser.add_argument_group("run options (stored in RUN_DIR/config.json)")
    run.add_argument("--encoder", choices=("resnet18", "resnet50"))
    run.add_argument("--levels", type=int, help="quadtree levels (default 6)")
    run.add_argument("--batch-size", type=int, help="default 4")
    run.add_argument("--crop", type=int, nargs=2, metavar=("H", "W"),
                     help="random crop size (default 384 480); the model input is the crop "
                          "padded to a multiple of 32")
    run.add_argument("--scale-range", type=float, nargs=2, metavar=("MIN", "MAX"),
                     help="random scale range (default 0.5 2.0)")
    run.add_argument("--steps", type=int, help="total optimizer steps i_max (default 2000)")
    run.add_argument("--steps-per-epoch", type=int,
                     help="steps between backups/CSV rows (default: one pass over the images)")
    run.add_argument("--learning-rate", type=float, help="lr_0 (default 0.02)")
    run.add_argument("--power", type=float, help="poly decay exponent (default 0.9)")
    run.add_argument("--momentum", type=float, help="SGD momentum (default 0.9)")
    run.add_argument("--weight-decay", type=float, help="decoupled weight decay (default 1e-4)")
    run.add_argument("--decoder-filters", type=int, nargs="+", help="per level 0..L-2")
    run.add_argument("--decoder-units", type=int, nargs="+", help="per level 0..L-2")
    run.add_argument("--top-filters", type=int, help="default 512")
    run.add_argument("--loss-weighting", choices=("adaptive", "fixed"))
    run.add_argument("--propagation", choices=("gt", "all", "pred"),
                     help="training propagation scheme (default gt)")
    run.add_argument("--seed", type=int, help="weights and data seed (default 0)")
    run.add_argument("--limit", type=int, help="use only the first N training images")
    session = parser.add_argument_group("session options (may change between sessions)")
    session.add_argument("--data-dir", type=Path, default=None,
                         help="folder with CamVid's train.npz (default: the loader's)")
    session.add_argument("--checkpoint-minutes", type=float, default=10.0,
                         help="minutes between checkpoint.keras saves (default 10)")
    session.add_argument("--time-budget-minutes", type=float, default=None,
                         help="stop at the first epoch end after this many minutes")
    session.add_argument("--nice", type=int, default=10,
                         help="lower this process's priority to at least this niceness")
    session.add_argument("--log-every", type=int, default=10,
                         help="steps between progress.csv rows (default 10)")
    session.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2),
                         help="fit verbosity (default 2: one line per epoch)")
    return parser


def resolve_config(args, stored):
    """The run options: the stored ones on resume (a conflicting option is an error), else the
    given ones over the defaults."""
    from keras_structconv.training import resolve_run_options

    try:
        return resolve_run_options(RUN_DEFAULTS, vars(args), stored)
    except ValueError as error:
        raise SystemExit(str(error)) from None


def padded(size):
    return [-(-side // PAD_MULTIPLE) * PAD_MULTIPLE for side in size]


def training_data(config, data_dir, session_index):
    """Augmented, shuffled, repeated CamVid train batches; the seed changes per session, so that
    a resumed run does not replay the first session's order and augmentation."""
    from keras_structconv import datasets

    images, labels = datasets.load_camvid_arrays("train", data_dir)
    if config["limit"] is not None:
        images, labels = images[: config["limit"]], labels[: config["limit"]]
    dataset = datasets.camvid_dataset(
        images,
        labels,
        batch_size=config["batch_size"],
        augment=True,
        shuffle=True,
        crop_size=tuple(config["crop"]),
        scale_range=tuple(config["scale_range"]),
        pad_to="auto",
        seed=config["seed"] + 1000 * session_index,
        drop_remainder=True,
    )
    steps_per_epoch = config["steps_per_epoch"] or max(1, len(images) // config["batch_size"])
    return dataset.repeat(), steps_per_epoch


def build_model(config, total_steps):
    import keras

    from keras_structconv import models, training

    keras.utils.set_random_seed(config["seed"])
    model = models.QGN(
        DATASET_CLASSES,
        encoder=config["encoder"],
        propagation=config["propagation"],
        levels=config["levels"],
        input_shape=(*padded(config["crop"]), 3),
        decoder_filters=config["decoder_filters"],
        decoder_units=config["decoder_units"],
        top_filters=config["top_filters"],
        loss_weighting=config["loss_weighting"],
    )
    optimizer = training.poly_decay_sgd(
        total_steps,
        initial_learning_rate=config["learning_rate"],
        power=config["power"],
        momentum=config["momentum"],
        weight_decay=config["weight_decay"] or None,
    )
    model.compile(optimizer=optimizer, jit_compile=False)
    return model


def train(args):
    run_dir = args.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / "config.json"
    stored = json.loads(config_path.read_text()) if config_path.exists() else None
    config = resolve_config(args, stored)
    if stored is None:
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True))

    import keras

    from keras_structconv import training

    training.lower_priority(args.nice)

    clock = training.TrainingClock(run_dir / "state.json")
    session_index = len(clock.state["sessions"])
    dataset, steps_per_epoch = training_data(config, args.data_dir, session_index)
    epochs = training.epochs_for(config["steps"], steps_per_epoch)
    total_steps = epochs * steps_per_epoch  # the decay ends with the last epoch
    model = build_model(config, total_steps)
    stop = training.GracefulStop(
        None if args.time_budget_minutes is None else 60 * args.time_budget_minutes
    )
    callbacks = [
        training.ChiefBackupAndRestore(run_dir / "backup", delete_checkpoint=False),
        clock,  # after the backup: its state describes the backup just written
        training.ProgressCSVLogger(run_dir / "epochs.csv", every="epoch", clock=clock),
        training.ProgressCSVLogger(run_dir / "progress.csv", every=args.log_every, clock=clock),
        training.TimedCheckpoint(run_dir / CHECKPOINT, 60 * args.checkpoint_minutes),
        stop,
    ]
    print(
        f"QGN-{config['encoder']} on CamVid: session {session_index + 1}, {total_steps} "
        f"steps = {epochs} epochs x {steps_per_epoch}, batch {config['batch_size']}, crop "
        f"{config['crop']} (model input {padded(config['crop'])}), run dir {run_dir}",
        flush=True,
    )
    model.fit(
        dataset,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        callbacks=callbacks,
        verbose=args.verbose,
        shuffle=False,  # the dataset shuffles itself (seeded)
    )
    steps_done = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    state = training.TrainingClock.read_state(run_dir / "state.json")
    if steps_done >= total_steps:
        model.save(run_dir / FINAL_MODEL)
        clock.mark_finished()
        print(f"Finished: {steps_done} steps, {state['train_seconds'] / 3600:.2f} h of training; "
              f"model {run_dir / FINAL_MODEL}", flush=True)
    else:
        reason = stop.reason or "stopped"
        print(f"Stopped ({reason}) at step {steps_done}/{total_steps}; "
              f"{state['train_seconds'] / 3600:.2f} h of training so far. Resume with the same "
              "command.", flush=True)
    return 0


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return train(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
