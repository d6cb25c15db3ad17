# %% [markdown]
# # keras_structconv quickstart: five structured operators in a `keras.Sequential`
#
# This notebook puts each operator of `keras_structconv` into the same small CIFAR-10 network,
# next to a plain `keras.layers.Conv2D`:
#
# | layer | what it computes |
# |---|---|
# | `PSConv2D` | poly-scale convolution: one 3×3 convolution whose dilation cycles over channel blocks (PSConv, ECCV 2020) |
# | `TreeConv2D` | tree convolution: learned per-pixel gates split the input into leaves, each convolved at its own scale (TreeConv, KDD 2020) |
# | `TreeAttention` (`TAM`) | a tree of point-wise group convolutions producing one sigmoid gate per pixel (TAM) |
# | `AOGBlock` | an AND-OR grammar building block (AOGNets, CVPR 2019) |
# | `GroupedConv2D` | `Conv2D(groups > 1)` on TensorFlow's native grouped kernel (fast on CPU) |
#
# You will see: their parameter counts beside `Conv2D`'s, a short training run of each on the
# CIFAR-10 sample shipped inside the package (2,000 training and 500 test images, no download),
# and a model holding all five layers saved as `.keras`, reloaded, exported as a TensorFlow
# SavedModel and served through `keras.layers.TFSMLayer`, with the outputs compared.
#
# %% [setup] viz

# %% [markdown]
# `SMALL = True` runs a few training steps on a few hundred images so that the whole notebook takes
# about a minute on a CPU (the continuous-integration tests set `KERAS_STRUCTCONV_NOTEBOOK_SMALL=1`);
# with `SMALL = False` (the default on Colab) every model trains for 15 epochs on the 2,000 images.
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

# TensorFlow's notices (retracing of the models built in a loop, SavedModel assets) stay out of
# the outputs.
tf.get_logger().setLevel("ERROR")

SMALL = os.environ.get("KERAS_STRUCTCONV_NOTEBOOK_SMALL", "0") == "1"

TRAIN_IMAGES = 256 if SMALL else 2000
TEST_IMAGES = 250 if SMALL else 500
EPOCHS = 1 if SMALL else 15
BATCH_SIZE = 64
WORK_DIR = Path(tempfile.mkdtemp(prefix="ksc_quickstart_"))
keras.utils.set_random_seed(0)
print(f"keras_structconv {ksc.__version__}, Keras {keras.__version__}, SMALL={SMALL}")

# %% [markdown]
# ## The data: the CIFAR-10 sample inside the package
#
# `ksc.datasets.load_embedded_cifar10()` returns 2,000 training and 500 test images (200 and 50
# per class) as uint8 arrays; `ksc.datasets.cifar10_dataset` batches them with the standard
# augmentation (4-pixel padding, random crop, horizontal flip) and per-channel standardisation.
#
# %%
(x_train, y_train), (x_test, y_test) = ksc.datasets.load_embedded_cifar10()
rng = np.random.default_rng(0)
train_keep = np.sort(rng.permutation(len(x_train))[:TRAIN_IMAGES])
test_keep = np.sort(rng.permutation(len(x_test))[:TEST_IMAGES])
train = ksc.datasets.cifar10_dataset(
    x_train[train_keep], y_train[train_keep], batch_size=BATCH_SIZE, augment=True, shuffle=True,
    seed=0,
)
test = ksc.datasets.cifar10_dataset(x_test[test_keep], y_test[test_keep], batch_size=250)
print(f"train {x_train.shape} -> using {TRAIN_IMAGES}; test {x_test.shape} -> using {TEST_IMAGES}")

figure, axes = plt.subplots(2, 10, figsize=(12, 2.8))
for label, column in zip(range(10), axes.T, strict=True):
    for row, index in zip(column, np.flatnonzero(y_train == label)[:2], strict=True):
        row.imshow(x_train[index])
        row.set_axis_off()
    column[0].set_title(ksc.datasets.CIFAR10_CLASS_NAMES[label], fontsize=9)
figure.suptitle("Two training images per class")
plt.show()

# %% [markdown]
# ## One network, six middle layers
#
# Every model is the same: a 3×3 `Conv2D` stem with 32 channels, 2×2 max-pooling (16×16 maps),
# **the layer under test** producing 64 channels, BatchNorm + ReLU, global average pooling and a
# 10-way softmax. Only the middle layer changes. `TreeAttention` does not change the channel
# count, so it follows a `Conv2D`: its row shows what the attention module adds.
#
# %%
def middle_layers():
    """Name -> function building the layers under test (fresh layers at every call)."""
    return {
        "Conv2D": lambda: [keras.layers.Conv2D(64, 3, padding="same", use_bias=False)],
        "PSConv2D": lambda: [ksc.PSConv2D(64, 3, cyclic_interval=4)],
        "TreeConv2D": lambda: [ksc.TreeConv2D(64, 3, depth=3)],
        "Conv2D + TreeAttention": lambda: [
            keras.layers.Conv2D(64, 3, padding="same", use_bias=False),
            ksc.TreeAttention(group_size=2),
        ],
        "AOGBlock": lambda: [ksc.AOGBlock(64, num_primitives=2)],
        "GroupedConv2D (4 groups)": lambda: [
            ksc.GroupedConv2D(64, 3, groups=4, padding="same", use_bias=False)
        ],
    }


def small_network(name, middle):
    return keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(32, 3, padding="same", use_bias=False),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.MaxPooling2D(2),
            *middle,
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10, activation="softmax"),
        ],
        name=name.split(" ")[0].lower(),
    )


networks, middle_params = {}, {}
for name, make in middle_layers().items():
    middle = make()
    networks[name] = small_network(name, middle)
    middle_params[name] = sum(layer.count_params() for layer in middle)

# %% [markdown]
# ## Parameter counts beside `Conv2D`
#
# A 3×3 `Conv2D` from 32 to 64 channels without bias holds 3·3·32·64 = 18,432 weights.
#
# - `PSConv2D` holds exactly as many: it only changes *where* each kernel entry reads (its dilation).
# - `TreeConv2D` adds one 1×1 gate (C + 1 weights) per tree level: 3 · 33 = 99.
# - `TreeAttention` adds 251 weights at 64 channels with group size 2 (64 → 32 → … → 1).
# - `AOGBlock` is a block of bottleneck units (one per grammar node), so it is larger.
# - `GroupedConv2D` with 4 groups holds a quarter.
#
# (The counts include BatchNorm statistics where a layer has them, as `count_params()` does.)
#
# %%
reference = middle_params["Conv2D"]
rows = ["| middle layer(s) | parameters | vs Conv2D | whole model |", "|---|---:|---:|---:|"]
for name, count in middle_params.items():
    rows.append(
        f"| `{name}` | {count:,} | {count / reference:.2f}× | {networks[name].count_params():,} |"
    )
display(Markdown("\n".join(rows)))

# %% [markdown]
# ## Training
#
# Each network trains with Adam on the same images, in the same order, and is evaluated on the
# test images after every epoch. In small mode this is a single epoch on 256 images, so the
# accuracies are close to chance (10 %): the point is that every layer trains. With
# `SMALL = False` the curves separate after a few epochs.
#
# %%
histories = {}
for name, network in networks.items():
    keras.utils.set_random_seed(0)
    network.compile(
        optimizer=keras.optimizers.Adam(2e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    # The dataset reshuffles itself every epoch (seeded): fit must not shuffle it.
    history = network.fit(train, epochs=EPOCHS, validation_data=test, shuffle=False, verbose=0)
    histories[name] = history.history
    print(f"{name:<26} test accuracy {history.history['val_accuracy'][-1]:.3f}")

# %%
figure, (left, right) = plt.subplots(1, 2, figsize=(12, 3.8))
epochs = np.arange(1, EPOCHS + 1)
for name, history in histories.items():
    left.plot(epochs, history["loss"], marker="o", label=name)
    right.plot(epochs, history["val_accuracy"], marker="o", label=name)
left.set(xlabel="epoch", ylabel="training loss", title="Training loss")
right.set(xlabel="epoch", ylabel="test accuracy", title="Test accuracy")
right.axhline(0.1, color="0.6", linestyle=":", label="chance")
right.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Save, reload, export
#
# A model holding all five layers (PSConv2D, TreeConv2D, TreeAttention, AOGBlock and GroupedConv2D)
# is trained (in small mode it stays untrained, which changes nothing below) and then
#
# 1. saved as a `.keras` file and reloaded with `keras.models.load_model` (the layers are
#    registered as serializable, so no `custom_objects` are needed once `keras_structconv` is
#    imported);
# 2. exported as a TensorFlow SavedModel with `model.export` and served through
#    `keras.layers.TFSMLayer` (how a Keras 3 model is used from TensorFlow serving code;
#    `tensorflow_hub.KerasLayer` is Keras-2-only).
#
# Both reloads must give the trained model's outputs.
#
# %%
keras.utils.set_random_seed(0)
everything = small_network(
    "all_five",
    [
        # TreeConv2D and TreeAttention see the same shapes as in the networks above, so the
        # kernels they compiled there are reused.
        ksc.TreeConv2D(64, 3, depth=3),
        ksc.TreeAttention(group_size=2),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        ksc.PSConv2D(64, 3),
        ksc.AOGBlock(64, num_primitives=2),
        ksc.GroupedConv2D(64, 3, groups=4, padding="same", use_bias=False),
    ],
)
if not SMALL:  # in small mode, training would only repeat the tracing done above
    everything.compile(
        optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy"
    )
    everything.fit(train, epochs=EPOCHS, shuffle=False, verbose=0)
images = np.concatenate([x for x, _ in test])
expected = everything.predict(images, verbose=0)

keras_path = WORK_DIR / "all_five.keras"
everything.save(keras_path)
reloaded = keras.models.load_model(keras_path)
from_keras = reloaded.predict(images, verbose=0)

export_path = WORK_DIR / "all_five_savedmodel"
everything.export(str(export_path), verbose=False)
serving = keras.layers.TFSMLayer(str(export_path), call_endpoint="serve", dtype="float32")
from_savedmodel = np.asarray(serving(images))

display(Markdown("\n".join([
    "| reload | max \\|difference\\| of the softmax outputs | same predicted classes |",
    "|---|---:|---|",
    f"| `.keras` ({keras_path.stat().st_size / 1e6:.2f} MB) | "
    f"{np.abs(from_keras - expected).max():.2e} | "
    f"{bool((from_keras.argmax(-1) == expected.argmax(-1)).all())} |",
    f"| SavedModel via `TFSMLayer` | {np.abs(from_savedmodel - expected).max():.2e} | "
    f"{bool((from_savedmodel.argmax(-1) == expected.argmax(-1)).all())} |",
])))
assert np.abs(from_keras - expected).max() < 1e-4
assert np.abs(from_savedmodel - expected).max() < 1e-4

# %% [markdown]
# ## Where next
#
# - `02_backbones`: the same operators inside `keras.applications` backbones with
#   `keras_structconv.convert`, and what they cost.
# - `03_look_inside`: TreeConv's explanation maps, TAM's gates, an AND-OR grammar and PSConv's
#   dilation matrix, drawn.
# - `06_quadtree`: quadtree labels and the QGN decoder on CamVid.
