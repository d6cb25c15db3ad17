# %% [markdown]
# # A KerasTuner search over the structured operators
#
# Which operator should go where? `keras_structconv.tuning` turns a backbone into a KerasTuner
# search space: for each stage of the network, whether its 3×3 convolutions stay vanilla or become
# `PSConv2D` (with a cyclic interval) or `TreeConv2D` (with a depth), and whether `TreeAttention`
# goes on its residual branches (with a group size). Every trial reports its accuracy, its
# trainable parameters and its train-step time next to the vanilla backbone's, measured in the
# same process.
#
# This notebook runs a small random search on a CIFAR ResNet-20 with the CIFAR-10 sample shipped
# in the package, prints the results table, and plots accuracy against cost.
#
# %% [setup] tuning,viz

# %% [markdown]
# `SMALL = True` (set by `KERAS_STRUCTCONV_NOTEBOOK_SMALL=1`, as on CI) runs 2 trials of one epoch
# on 128 images: the search machinery runs, the scores are noise. The default (`SMALL = False`)
# runs 12 trials of 5 epochs on 1,500 images, validated on the other 500 (some tens of minutes on
# a CPU; a GPU runtime helps).
#
# %%
import os
import tempfile
from pathlib import Path

import keras
import keras_tuner
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
from IPython.display import Markdown, display

import keras_structconv as ksc
from keras_structconv import tuning

tf.get_logger().setLevel("ERROR")

SMALL = os.environ.get("KERAS_STRUCTCONV_NOTEBOOK_SMALL", "0") == "1"

TRAIN_IMAGES, VALIDATION_IMAGES = (128, 64) if SMALL else (1500, 500)
TRIALS = 2 if SMALL else 12
EPOCHS = 1 if SMALL else 5
BATCH_SIZE = 64
SEARCH_DIR = Path(tempfile.mkdtemp(prefix="ksc_tuning_"))
keras.utils.set_random_seed(0)
print(f"keras_structconv {ksc.__version__}, Keras {keras.__version__}, SMALL={SMALL}")

# %% [markdown]
# ## The search space
#
# `tuning.StructconvHyperModel(backbone, operators)` finds where the operators can go in the
# backbone (`ResNet20`: three stages of basic blocks) and declares the hyper-parameters; with
# `per_stage=True` each stage chooses on its own, through conditional hyper-parameters. Learning
# rate, weight decay and batch size are fixed here (each can also be searched).
#
# %%
hypermodel = tuning.StructconvHyperModel(
    "ResNet20",
    operators="psconv,treeconv,tam",
    per_stage=True,
    learning_rate=0.05,
    weight_decay=5e-4,
    batch_size=BATCH_SIZE,
    timing_warmup_steps=1,
    timing_steps=2 if SMALL else 10,
    seed=0,
)
tuner = tuning.make_tuner(
    hypermodel, "random", directory=SEARCH_DIR, max_trials=TRIALS, seed=0, overwrite=True
)

space = keras_tuner.HyperParameters()
hypermodel.declare_hyperparameters(space)
rows = ["| hyper-parameter | values | only when |", "|---|---|---|"]
for parameter in space.space:
    config = parameter.get_config()
    if "values" in config:
        values = " / ".join(map(str, config["values"]))
    else:
        values = f"{config['min_value']} … {config['max_value']}"
    conditions = " and ".join(
        f"{c.get_config()['name']} ∈ {{{', '.join(map(str, c.get_config()['values']))}}}"
        for c in parameter.conditions
    )
    rows.append(f"| `{parameter.name}` | {values} | {conditions or '—'} |")
display(Markdown("\n".join(rows)))

# %% [markdown]
# ## The search
#
# `tuner.search` takes uint8 images and integer labels; each trial trains the chosen network with
# the standard CIFAR augmentation, keeps its best epoch's validation accuracy, and times its train
# step against the vanilla ResNet-20's.
#
# %%
(x, y), _ = ksc.datasets.load_embedded_cifar10()
order = np.random.default_rng(0).permutation(len(x))
train = order[:TRAIN_IMAGES]
validation = order[TRAIN_IMAGES : TRAIN_IMAGES + VALIDATION_IMAGES]
tuner.search(
    x[train], y[train], validation_data=(x[validation], y[validation]), epochs=EPOCHS, verbose=0
)

# %% [markdown]
# ## Results
#
# `tuning.trial_rows(tuner)` joins what KerasTuner knows of every trial with what the trial
# recorded itself; `tuning.results_markdown` writes them best first (the same table
# `structconv tune` saves as `results.md`). *score*: validation accuracy at the trial's best epoch;
# *params*: trainable weights; *step ms*: median train step; *ratio*: over the vanilla backbone's
# step, timed in the same process right before the trial.
#
# %%
rows = tuning.trial_rows(tuner)
display(Markdown(tuning.results_markdown(
    rows,
    "Random search on ResNet-20",
    [f"{len(train)} training / {len(validation)} validation images of the embedded CIFAR-10 "
     f"sample, {EPOCHS} epoch(s) per trial, batch {BATCH_SIZE}"],
)))

# %%
completed = [row for row in rows if row.status == "COMPLETED" and row.score is not None]
vanilla = hypermodel.build_vanilla()
vanilla_params = sum(int(np.prod(w.shape)) for w in vanilla.trainable_weights)
figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
left.axvline(vanilla_params, color="0.5", linestyle=":")
left.annotate("vanilla ResNet-20", (vanilla_params, 0.5), xycoords=("data", "axes fraction"),
              rotation=90, fontsize=8, color="0.4", xytext=(3, 0), textcoords="offset points")
for row in completed:
    for axis, value in ((left, row.params), (right, row.ratio)):
        if value is None:
            continue
        axis.scatter(value, row.score, s=40)
        axis.annotate(f"trial {row.trial_id}", (value, row.score), fontsize=8,
                      xytext=(4, 4), textcoords="offset points")
left.set(xlabel="trainable parameters", ylabel="validation accuracy",
         title="Accuracy against size")
right.axvline(1.0, color="0.5", linestyle=":")
right.set(xlabel="train-step time / vanilla ResNet-20's", ylabel="validation accuracy",
          title="Accuracy against speed")
plt.show()

# %% [markdown]
# The operators each trial chose (the *operators* column reads stage by stage) decide where it
# lands: TreeConv2D and TAM add a few hundred weights, PSConv2D none; their step-time ratios are
# those of this machine, measured while the notebook ran (on a shared runtime they move between
# runs). In small mode the accuracies are those of one epoch on 128 images: noise.
#
# Finally, `tuning.save_best_model` saves the best trial's network (its best epoch's weights) as a
# `.keras` file, which reloads like any Keras model:
#
# %%
best = tuning.save_best_model(tuner, SEARCH_DIR / "best.keras")
reloaded = keras.models.load_model(SEARCH_DIR / "best.keras", compile=False)
images, _ = next(iter(ksc.datasets.cifar10_dataset(x[validation], y[validation], batch_size=64)))
difference = np.abs(best.predict(images, verbose=0) - reloaded.predict(images, verbose=0)).max()
print(f"{best.name}: {best.count_params():,} parameters; max |difference| after reloading: "
      f"{difference:.1e}")
assert difference < 1e-4
