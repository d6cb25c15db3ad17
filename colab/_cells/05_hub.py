# %% [markdown]
# # A zoo model from the hub: load by handle, evaluate, fine-tune, convert to TFLite
#
# `keras_structconv.hub` serves the trained models of the zoo by *handle*, like TensorFlow Hub:
# `hub.load("keras_structconv/resnet20_cifar10/1")` finds the model in the hub's manifest,
# downloads its archive once, checks its sha256 and the sha256 of every file inside, keeps it in a
# local cache, and returns a `keras.Model`. Each archive holds the model twice (as a `.keras` file
# to fine-tune, and as a TensorFlow SavedModel to serve) with a `metadata.json` that says what the
# model expects and how well it did.
#
# This notebook takes the CIFAR-10 ResNet-20 of the zoo (the baseline the structured operators
# are compared with) and
#
# 1. lists the models the hub offers;
# 2. loads one by handle, as a `keras.Model` and as a SavedModel served by
#    `keras.layers.TFSMLayer`, and reads its metadata;
# 3. evaluates it on the 500 CIFAR-10 test images shipped in the package and checks that the
#    accuracy its metadata reports is reproduced;
# 4. fine-tunes it for a few steps with a low learning rate;
# 5. converts it to TFLite and compares the TFLite model's outputs and size with the Keras model's;
# 6. compares the zoo models by their metadata, when several are published.
#
# %% [setup] viz

# %% [markdown]
# `SMALL = True` (set by `KERAS_STRUCTCONV_NOTEBOOK_SMALL=1`, as on CI) fine-tunes for one epoch
# on 320 of the training images (5 steps of 64); the default (`SMALL = False`, e.g. on Colab) fine-tunes for 2 epochs on the 2,000
# training images shipped in the package (a minute or two on a CPU). Everything else is the same
# in both modes.
#
# %%
import os
import tempfile
from pathlib import Path

import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
from IPython.display import Markdown, display

import keras_structconv as ksc
from keras_structconv import export, hub

tf.get_logger().setLevel("ERROR")

SMALL = os.environ.get("KERAS_STRUCTCONV_NOTEBOOK_SMALL", "0") == "1"

# The model this notebook works with: the zoo's CIFAR-10 ResNet-20, version 1.
HANDLE = "keras_structconv/resnet20_cifar10/1"
FINE_TUNE_EPOCHS = 1 if SMALL else 2
FINE_TUNE_IMAGES = 320 if SMALL else None  # None: all the training images of the sample
FINE_TUNE_LEARNING_RATE = 1e-3
BATCH_SIZE = 64
WORK_DIR = Path(tempfile.mkdtemp(prefix="ksc_hub_"))
CLASS_NAMES = ksc.datasets.CIFAR10_CLASS_NAMES
keras.utils.set_random_seed(0)
print(f"keras_structconv {ksc.__version__}, Keras {keras.__version__}, SMALL={SMALL}")

# %% [markdown]
# ## What the hub offers
#
# `hub.list_models()` reads the manifest (nothing is downloaded): one entry per published model
# version, with its handle, the URL, size and sha256 of its archive, and a summary of its metadata.
# The manifest shipped with the package lists the zoo, with archive addresses relative to the
# repository's `zoo/dist/` folder: in a clone they are read from there. A package installed from
# git (as on Colab) has no `zoo/dist/`: set `os.environ["KERAS_STRUCTCONV_HUB_URL"]` before this
# cell to an address that serves that folder, e.g. the raw GitHub address of the repository's
# `zoo/dist/` (`https://raw.githubusercontent.com/OWNER/REPO/main/zoo/dist/`); `hub.load` then
# downloads an archive once, checks it, and reads it from the cache
# (`~/.cache/keras_structconv/hub`) afterwards. The same variable points the hub at any other
# hub folder (its `manifest.json` and archives, e.g. one served with `structconv hub serve`).
#
# %%
def percent(value):
    return "—" if value is None else f"{value:.2%}"


def metric(entry, name):
    return entry["metadata"].get("metrics", {}).get(name)


# The columns every zoo table here shows: header -> the cell of a manifest entry.
ZOO_COLUMNS = {
    "handle": lambda entry: f"`{entry['handle']}`",
    "parameters": lambda entry: f"{entry['metadata']['parameters']['total']:,}",
    "top-1, CIFAR-10 test": lambda entry: percent(metric(entry, "top1")),
    "top-1, 500 embedded test images": lambda entry: percent(metric(entry, "embedded_test_top1")),
    "epochs": lambda entry: metric(entry, "epochs") or "—",
}


def zoo_table(entries, columns):
    """A Markdown table with a row per manifest entry; `columns`: header -> cell function."""
    rows = ["| " + " | ".join(columns) + " |", "|---|" + "---:|" * (len(columns) - 1)]
    rows += ["| " + " | ".join(str(cell(entry)) for cell in columns.values()) + " |"
             for entry in entries]
    return "\n".join(rows)


zoo = hub.list_models()
display(Markdown(zoo_table(zoo, {**ZOO_COLUMNS,
                                 "archive": lambda entry: f"{entry['size'] / 1e6:.1f} MB"})))
print(f"{len(zoo)} model version(s); {HANDLE} comes from {hub.info(HANDLE)['url']}")

# %% [markdown]
# ## Load by handle
#
# `hub.load(HANDLE)` returns the `keras.Model` of the archive's `.keras` file, loaded with
# `safe_mode=True` (ready to predict and to train); `hub.resolve(HANDLE)` returns the folder the
# archive was extracted to. A handle naming its version (`.../1`) is served from the cache without
# any network access once it is there: a published version never changes. Without the version
# (`keras_structconv/resnet20_cifar10`) the hub reads the manifest and takes the newest.
#
# %%
model = hub.load(HANDLE)
folder = Path(hub.resolve(HANDLE))
print(f"{model.name}: {model.count_params():,} parameters, input {model.inputs[0].shape} "
      f"{model.inputs[0].dtype}, output {model.outputs[0].shape}")
print(f"extracted archive: {folder}")
for path in sorted(folder.rglob("*")):
    if path.is_file():
        print(f"  {path.relative_to(folder)!s:<50} {path.stat().st_size / 1e3:>9.1f} kB")

# %% [markdown]
# ## What the metadata says
#
# `hub.info(HANDLE)` returns the model's manifest entry (no download); `metadata.json` in the
# archive holds the same summary plus the sha256 of every file. The *preprocessing* entry is the
# contract: the zoo's models take RGB images with values in [0, 255], as uint8 or float, and
# standardise them in their first layer (a `Normalization` with CIFAR-10's mean and variance), so
# raw pixels go in. `embedded_test_top1` is the model's accuracy on the 500 test images shipped in
# the package, measured when it was published: the next section measures it again.
#
# %%
metadata = hub.info(HANDLE)["metadata"]
metrics = metadata["metrics"]
display(Markdown("\n".join([
    f"**{metadata['name']}**, version {metadata['version']}: {metadata.get('description') or ''}",
    "",
    f"- paper: {metadata.get('paper') or '—'}",
    f"- preprocessing: {metadata['preprocessing']['description']}",
    f"- inputs: {metadata['inputs']}; outputs: {metadata['outputs']}",
    f"- labels: {', '.join(metadata.get('labels') or [])}",
    f"- parameters: {metadata['parameters']['total']:,} "
    f"({metadata['parameters']['trainable']:,} trainable)",
    f"- saved with Keras {metadata['keras_version']}, TensorFlow "
    f"{metadata['tensorflow_version']}, keras_structconv {metadata['keras_structconv_version']}",
    f"- training: `{metadata.get('training', {}).get('command', '—')}`",
    "",
    "| metric | value |",
    "|---|---|",
    *(f"| `{key}` | {value:.4g} |" if isinstance(value, float) else f"| `{key}` | {value} |"
      for key, value in metrics.items()),
])))
assert metadata["parameters"]["total"] == model.count_params()

# %% [markdown]
# ## Evaluate on the test images shipped in the package
#
# The package carries 500 CIFAR-10 test images (50 per class), so the published accuracy can be
# checked anywhere without downloading the dataset. The images go in as they are, uint8 in
# [0, 255]. The same weights give the same predictions: the accuracy must be the one the
# metadata reports, up to one image whose two best classes are so close that float rounding on
# another machine (or with another oneDNN setting) may swap them.
#
# %%
(x_train, y_train), (x_test, y_test) = ksc.datasets.load_embedded_cifar10()
probabilities = model.predict(x_test, batch_size=250, verbose=0)
predictions = probabilities.argmax(-1)
accuracy = float(np.mean(predictions == y_test))
reported = metrics["embedded_test_top1"]
images_apart = round(abs(accuracy - reported) * len(x_test))
print(f"accuracy on the {len(x_test)} embedded test images: measured {accuracy:.2%}, "
      f"reported in the metadata {reported:.2%} ({images_apart} image(s) apart)")
assert images_apart <= 1

# %% [markdown]
# Sixteen test images with the model's answer and its probability: green when right, red when
# wrong (with the true class below).
#
# %%
shown = np.random.default_rng(0).choice(len(x_test), 16, replace=False)
figure, axes = plt.subplots(2, 8, figsize=(14, 4.4))
for axis, index in zip(axes.flat, shown, strict=True):
    predicted, truth = predictions[index], y_test[index]
    axis.imshow(x_test[index])
    axis.set_axis_off()
    axis.set_title(f"{CLASS_NAMES[predicted]} {probabilities[index, predicted]:.0%}", fontsize=9,
                   color="tab:green" if predicted == truth else "tab:red")
    if predicted != truth:
        axis.text(0.5, -0.08, f"(truth: {CLASS_NAMES[truth]})", transform=axis.transAxes,
                  ha="center", va="top", fontsize=8)
figure.suptitle(f"{model.name} on embedded test images")
plt.show()

# %% [markdown]
# Per class, over the 500 images (50 each): where the model errs.
#
# %%
per_class = [np.mean(predictions[y_test == label] == label) for label in range(len(CLASS_NAMES))]
figure, axis = plt.subplots(figsize=(11, 3))
axis.bar(CLASS_NAMES, per_class, color="tab:blue")
axis.axhline(accuracy, color="0.4", linestyle=":")
axis.set(ylim=(0, 1), ylabel="accuracy",
         title=f"Accuracy per class, 50 test images each (dotted: all classes, {accuracy:.1%})")
plt.show()

# %% [markdown]
# ## The same model as a SavedModel
#
# `hub.load(HANDLE, format="savedmodel")` returns a `keras.layers.TFSMLayer` on the archive's
# SavedModel: inference only, the form TF-Serving and other TensorFlow programs load
# (`tensorflow_hub.KerasLayer` does not work with Keras 3). The SavedModel was traced when the
# model was published; its outputs match the `.keras` model's.
#
# %%
serving = hub.load(HANDLE, format="savedmodel")
served = np.concatenate([
    np.asarray(serving(x_test[start : start + 250].astype(np.float32)))
    for start in range(0, len(x_test), 250)
])
print(f"{type(serving).__name__}: max |difference| of the probabilities from the Keras model's "
      f"{np.abs(served - probabilities).max():.1e}; same predicted class for "
      f"{np.sum(served.argmax(-1) == predictions)} of {len(x_test)} images")
assert np.abs(served - probabilities).max() < 1e-4

# %% [markdown]
# ## Fine-tune for a few steps
#
# The `.keras` model is an ordinary Keras model: compile it and call `fit`. A second
# `hub.load(HANDLE)` gives an independent copy (read from the cache, nothing is downloaded), so the
# published model above stays as it is for the next section. The training images go in as raw
# pixels (`normalize=False`: the model standardises them itself), with the usual CIFAR
# augmentation (pad-4 crop, flip). The learning rate is low (SGD at 1e-3, a hundredth of the
# zoo recipe's peak) so that the pretrained weights move only a little.
#
# The 2,000 training images shipped in the package belong to CIFAR-10's training set, which the
# zoo model was trained on: here fine-tuning only shows the mechanics, and the accuracy stays
# about where it was. On your own data, swap in your images and labels (and replace the last
# `Dense` layer for another number of classes).
#
# %%
def accuracy_of(network, images, labels):
    return float(np.mean(network.predict(images, batch_size=250, verbose=0).argmax(-1) == labels))


tuned = hub.load(HANDLE)
tuned.compile(
    optimizer=keras.optimizers.SGD(FINE_TUNE_LEARNING_RATE, momentum=0.9),
    loss=keras.losses.SparseCategoricalCrossentropy(),
    metrics=["accuracy"],
)
x_tune, y_tune = x_train[:FINE_TUNE_IMAGES], y_train[:FINE_TUNE_IMAGES]
train = ksc.datasets.cifar10_dataset(
    x_tune, y_tune, batch_size=BATCH_SIZE, augment=True, shuffle=True, seed=0, normalize=False
)
evaluation_sets = {
    f"{len(x_tune):,} training images": (x_tune, y_tune),
    f"{len(x_test):,} test images": (x_test, y_test),
}
before = {name: accuracy_of(tuned, *data) for name, data in evaluation_sets.items()}
# Keras logs the running mean of the loss over the epoch so far: one list per epoch.
epoch_losses = []
record_loss = keras.callbacks.LambdaCallback(
    on_epoch_begin=lambda epoch, logs: epoch_losses.append([]),
    on_train_batch_end=lambda batch, logs: epoch_losses[-1].append(logs["loss"]),
)
# The dataset reshuffles itself every epoch (seeded): fit must not shuffle it.
tuned.fit(train, epochs=FINE_TUNE_EPOCHS, shuffle=False, callbacks=[record_loss], verbose=0)
after = {name: accuracy_of(tuned, *data) for name, data in evaluation_sets.items()}
display(Markdown("\n".join([
    f"{sum(map(len, epoch_losses))} steps of up to {BATCH_SIZE} images:",
    "",
    "| accuracy on | before | after |",
    "|---|---:|---:|",
    *(f"| {name} | {before[name]:.2%} | {after[name]:.2%} |" for name in before),
])))

# %%
figure, (left, right) = plt.subplots(1, 2, figsize=(12, 3.6))
first_step = 1
for epoch, losses in enumerate(epoch_losses, start=1):
    steps = np.arange(first_step, first_step + len(losses))
    left.plot(steps, losses, marker="o", markersize=3, label=f"epoch {epoch}")
    first_step += len(losses)
left.legend()
left.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
left.set(xlabel="step", ylabel="loss, mean over the epoch so far", title="Fine-tuning loss")
positions = np.arange(len(before))
for offset, label, values in ((-0.2, "published", before), (0.2, "fine-tuned", after)):
    bars = right.bar(positions + offset, list(values.values()), 0.4, label=label)
    right.bar_label(bars, labels=[f"{value:.1%}" for value in values.values()], fontsize=8)
right.set_xticks(positions, list(before))
right.set(ylim=(0, 1.2), yticks=np.linspace(0, 1, 6), ylabel="accuracy",
          title="Before and after fine-tuning")
right.legend(loc="upper center", ncol=2)
plt.show()

# %% [markdown]
# ## Convert to TFLite
#
# `export.to_tflite(model, path)` converts the published model to a TFLite flatbuffer (float32,
# TFLite's builtin ops only, which every TFLite and LiteRT runtime has; batch 1, as on a device)
# and `export.tflite_predict` runs it on the 500 test images, one by one, in LiteRT
# (`ai_edge_litert`) when it is installed, else in `tf.lite.Interpreter`. The conversion goes
# through the layers' portable inference path; the TFLite model computes the same function with
# other kernels, so its probabilities differ from Keras' by float rounding only.
#
# %%
tflite_path = WORK_DIR / f"{model.name}.tflite"
export.to_tflite(model, tflite_path)
from_tflite = export.tflite_predict(tflite_path, x_test.astype(np.float32))
difference = np.abs(from_tflite - probabilities)
agree = int(np.sum(from_tflite.argmax(-1) == predictions))
tflite_accuracy = float(np.mean(from_tflite.argmax(-1) == y_test))

saved_model_bytes = sum(
    path.stat().st_size
    for path in [folder / "saved_model.pb", *(folder / "variables").rglob("*")]
    if path.is_file()
)
display(Markdown("\n".join([
    "| form | size | accuracy (500 test images) | max \\|difference\\| from Keras "
    "| same top-1 as Keras |",
    "|---|---:|---:|---:|---:|",
    f"| `.keras` (in the archive) | {(folder / 'model.keras').stat().st_size / 1e6:.2f} MB "
    f"| {accuracy:.2%} | — | — |",
    f"| SavedModel (`saved_model.pb` + `variables/`) | {saved_model_bytes / 1e6:.2f} MB "
    f"| {np.mean(served.argmax(-1) == y_test):.2%} | {np.abs(served - probabilities).max():.1e} "
    f"| {np.sum(served.argmax(-1) == predictions)}/{len(x_test)} |",
    f"| TFLite, float32 | {tflite_path.stat().st_size / 1e6:.2f} MB | {tflite_accuracy:.2%} "
    f"| {difference.max():.1e} | {agree}/{len(x_test)} |",
    f"| the hub archive (`.tar.gz`, all of the above compressed) "
    f"| {hub.info(HANDLE)['size'] / 1e6:.2f} MB | | | |",
])))
assert difference.max() < 1e-3 and agree >= len(x_test) - 1

# %% [markdown]
# The `.keras` file holds the weights with the architecture's configuration (and is what
# fine-tuning starts from); the SavedModel adds the traced TensorFlow graph; the TFLite file is
# the graph flattened with its weights as constants, the form a phone or a microcontroller runs.
# The differences of the probabilities are float rounding (the 1e-7 to 1e-5 range): the TFLite
# model predicts the same classes.
#
# ## The zoo side by side
#
# When the zoo has several CIFAR-10 models (the structured operators beside the ResNet-20
# baseline: PS-ResNet-20, TAM-ResNet-20, …), their metadata is enough to compare them: every model
# was trained with the same recipe and measured the same way (zoo/README.md in the repository).
# Nothing is downloaded or trained here.
#
# %%
cifar_models = [entry for entry in zoo if entry["name"].endswith("_cifar10")]
if len(cifar_models) < 2:
    print(f"Only {len(cifar_models)} CIFAR-10 model is published so far: nothing to compare yet.")
else:
    def cpu_minutes(entry):
        # CPU time, not wall time: a run that shared the machine with other jobs took longer on
        # the clock, hardly more CPU.
        seconds = metric(entry, "training_cpu_seconds")
        return "—" if seconds is None else f"{seconds / 60:.0f} CPU-min"

    def speed(entry):
        value = metric(entry, "inference_images_per_second")
        return "—" if value is None else f"{value:,.0f}"

    display(Markdown(zoo_table(cifar_models, {**ZOO_COLUMNS, "training": cpu_minutes,
                                              "inference img/s": speed})))

    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    for entry in cifar_models:
        metrics_of = entry["metadata"].get("metrics", {})
        if metrics_of.get("top1") is None:
            continue
        label = entry["name"].removesuffix("_cifar10")
        points = (
            (left, entry["metadata"]["parameters"]["total"]),
            (right, metrics_of.get("inference_images_per_second")),
        )
        for axis, value in points:
            if value is None:
                continue
            axis.scatter(value, metrics_of["top1"], s=40)
            axis.annotate(label, (value, metrics_of["top1"]), fontsize=8, xytext=(4, 4),
                          textcoords="offset points")
    left.set(xlabel="parameters", ylabel="top-1, CIFAR-10 test", title="Accuracy against size")
    right.set(xlabel="inference images per second (publishing machine)",
              ylabel="top-1, CIFAR-10 test", title="Accuracy against speed")
    plt.show()

# %% [markdown]
# The speeds are those of the machine each model was trained on, as its metadata records them
# (`machine`), not of this runtime.
#
# ## Where next
#
# - `01_quickstart`: the operators themselves, trained from scratch, saved and exported.
# - `04_tuning`: a KerasTuner search over where the operators go in a ResNet-20.
# - Publishing your own model: `structconv hub publish MODEL.keras --name NAME --version 1
#   --out DIST` writes the archive, its checksum and a manifest entry; `structconv hub serve DIST`
#   serves the folder, and `KERAS_STRUCTCONV_HUB_URL` points the hub at it.
