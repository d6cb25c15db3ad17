# %% [markdown]
# # Looking inside the operators
#
# Four pictures of what the structured operators compute:
#
# 1. **TreeConv explanation maps** (TreeConv paper, §4.1): how a trained `TreeConv2D` splits every
#    pixel of real images between the leaves of its parse tree;
# 2. **TAM gate statistics** (TAM paper, §4.1): the spatial mean and variance of every
#    `TreeAttention` gate over a set of images;
# 3. **an AND-OR grammar** (AOGNets, Algorithm 1), the graph an `AOGBlock` is built from;
# 4. **PSConv's dilation matrix** (PSConv, Eq. 3): which dilation each (output, input) channel pair
#    uses, drawn from the layer's pattern and then *measured* on the layer by probing it.
#
# %% [setup] viz

# %% [markdown]
# `SMALL = True` (set by `KERAS_STRUCTCONV_NOTEBOOK_SMALL=1`, as on CI) trains the network of parts
# 1 and 2 for one epoch on 256 images: the code runs, but the maps and gates are those of a barely
# trained network. The default (`SMALL = False`) trains it for 30 epochs on the 2,000 images of the
# CIFAR-10 sample shipped in the package (a few minutes on a CPU).
#
# %%
import io
import os
import tempfile
from pathlib import Path

import keras
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, Markdown, display

import keras_structconv as ksc
from keras_structconv import analysis, viz

SMALL = os.environ.get("KERAS_STRUCTCONV_NOTEBOOK_SMALL", "0") == "1"

TRAIN_IMAGES = 256 if SMALL else 2000
EPOCHS = 1 if SMALL else 30
WORK_DIR = Path(tempfile.mkdtemp(prefix="ksc_look_inside_"))
keras.utils.set_random_seed(0)
print(f"keras_structconv {ksc.__version__}, Keras {keras.__version__}, SMALL={SMALL}")


def show(figure):
    """Displays a matplotlib Figure built without pyplot (as `keras_structconv.viz` makes them)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    display(Image(buffer.getvalue()))

# %% [markdown]
# ## A small network with tree convolutions and tree attention
#
# A two-block residual network for 32×32 images is written with plain `Conv2D` layers and then
# converted: `ksc.convert` turns every 3×3 convolution but the stem into a `TreeConv2D` of depth 3
# (three gates, four leaves) and puts a `TreeAttention` module on each residual branch.
#
# %%
def vanilla_network():
    def conv_bn(x, filters, strides, name):
        x = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False,
                                name=f"{name}_conv")(x)
        return keras.layers.BatchNormalization(name=f"{name}_bn")(x)

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.ReLU()(conv_bn(inputs, 32, 1, "stem"))
    for block, (filters, strides) in enumerate([(32, 1), (64, 2)]):
        name = f"block{block + 1}"
        y = keras.layers.ReLU()(conv_bn(x, filters, strides, f"{name}_1"))
        y = conv_bn(y, filters, 1, f"{name}_2")
        if strides != 1 or x.shape[-1] != filters:
            x = keras.layers.Conv2D(filters, 1, strides=strides, use_bias=False,
                                    name=f"{name}_shortcut")(x)
        x = keras.layers.ReLU()(keras.layers.Add(name=f"{name}_add")([x, y]))
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="small_resnet")


network, report = ksc.convert(
    vanilla_network(),
    conv=ksc.layers.treeconv_factory(depth=3),
    attention=lambda channels: ksc.TreeAttention(group_size=2),
    return_report=True,
)
print(report)

(x_train, y_train), (x_test, y_test) = ksc.datasets.load_embedded_cifar10()
keep = np.sort(np.random.default_rng(0).permutation(len(x_train))[:TRAIN_IMAGES])
train = ksc.datasets.cifar10_dataset(
    x_train[keep], y_train[keep], batch_size=64, augment=True, shuffle=True, seed=0
)
network.compile(
    optimizer=keras.optimizers.Adam(2e-3),
    loss="sparse_categorical_crossentropy",
    metrics=["accuracy"],
)
network.fit(train, epochs=EPOCHS, shuffle=False, verbose=0)  # train reshuffles itself
test_images = np.concatenate(
    [x for x, _ in ksc.datasets.cifar10_dataset(x_test, y_test, batch_size=500)]
)
print("test accuracy", network.evaluate(test_images, y_test, verbose=0)[1])

# %% [markdown]
# ## 1. TreeConv explanation maps
#
# A `TreeConv2D` of depth 3 parses its input `x` with three per-pixel gates ρ₀, ρ₁, ρ₂: leaf 0
# receives ρ₀·x and is convolved after 8×8 average pooling, leaf 1 receives (1−ρ₀)ρ₁·x (pooled 4×4),
# leaf 2 (1−ρ₀)(1−ρ₁)ρ₂·x (pooled 2×2), and the rest goes to leaf 3 at full resolution. The
# *explanation maps* are these four shares at every pixel; they sum to 1.
# `viz.explanation_maps(model, images, layer)` computes them from the layer's actual input in the
# model, `viz.plot_explanation` draws them over the image (upsampled to the image's size).
#
# Below, the first tree convolution (32×32, right after the stem) and the last one (16×16). A pixel
# where leaf 3 dominates is kept at full resolution; where leaf 0 dominates, the layer sees only a
# coarse average. In small mode the network has barely trained and the gates are still close to
# their initial value (about 1/2 each: shares 0.5, 0.25, 0.125, 0.125).
#
# %%
tree_layers = viz.tree_conv_layers(network)
print("TreeConv2D layers:", [layer.name for layer in tree_layers])
# The first test image of four classes (the sample is sorted by class).
shown = [int(np.flatnonzero(y_test == label)[0]) for label in (0, 1, 3, 7)]
for layer in (tree_layers[0], tree_layers[-1]):
    maps, name = viz.explanation_maps(network, test_images[shown], layer=layer)
    for row, index in enumerate(shown[:2]):
        title = f"{name}, test image {index} ({ksc.datasets.CIFAR10_CLASS_NAMES[y_test[index]]})"
        show(viz.plot_explanation(x_test[index], maps[row], title=title))
    print(f"{name}: mean share of each leaf over {len(shown)} images:",
          np.round(maps.mean(axis=(0, 1, 2)), 3))

# %% [markdown]
# ## 2. TAM gate statistics
#
# `analysis.gate_statistics(model, images)` returns, for every `TreeAttention` module, the
# spatial mean and variance of its gate σ(tree(x)) for each image. The TAM paper (§4.1, Fig. 3)
# reports spatial variances of zero everywhere — each module acting as a fixed gate that depends
# only on its place in the network — with means growing with depth. Compare with this network:
#
# %%
statistics = analysis.gate_statistics(network, test_images)
rows = ["| module | mean gate | spread of the mean over images (std) | largest spatial variance |",
        "|---|---:|---:|---:|"]
for stats in statistics:
    rows.append(f"| `{stats.name}` | {stats.batch_mean:.4f} | {stats.mean.std():.4f} | "
                f"{stats.max_variance:.2e} |")
display(Markdown("\n".join(rows)))

figure, (left, right) = plt.subplots(1, 2, figsize=(11, 3.4))
positions = np.arange(len(statistics))
names = [stats.name.replace("_add_attention", "") for stats in statistics]
left.violinplot([stats.mean for stats in statistics], positions, showmeans=True)
left.set(xticks=positions, xticklabels=names, ylabel="spatial mean of the gate",
         title=f"Gate means over {len(test_images)} test images")
right.violinplot([stats.variance for stats in statistics], positions, showmeans=True)
right.set(xticks=positions, xticklabels=names, ylabel="spatial variance of the gate",
          title="Gate spatial variances")
plt.show()

# %% [markdown]
# ## 3. An AND-OR grammar
#
# `ksc.aog.build_grammar(N, prune, lateral)` builds the grammar of an `AOGBlock` whose input
# channels are split into N primitives: Terminal nodes read channel slices, AND nodes concatenate
# their two children, OR nodes sum theirs; dashed red edges are the lateral connections. With
# `prune=1` only the splits whose left part is not longer than the right part are kept.
# `grammar.draw(path)` renders it with Graphviz when installed, else matplotlib.
#
# %%
grammar = ksc.aog.build_grammar(4, prune=1)
print(grammar)
aog_png = grammar.draw(WORK_DIR / "aog_n4_prune1.png", backend="matplotlib")
display(Image(filename=str(aog_png), width=480))

rows = ["| N | prune | Terminal | AND | OR | edges (+ lateral) | AOGBlock(96) parameters |",
        "|---|---|---:|---:|---:|---|---:|"]
for primitives in (2, 3, 4):
    for prune in (None, 1):
        g = ksc.aog.build_grammar(primitives, prune=prune)
        counts = g.counts()
        # 96 output channels: divisible by N = 2, 3, 4, as lateral connections need.
        block = ksc.AOGBlock(96, num_primitives=primitives, prune=prune)
        block.build((None, 8, 8, 96))
        rows.append(
            f"| {primitives} | {prune} | {counts['terminal']} | {counts['and']} | {counts['or']} "
            f"| {g.num_edges(lateral=False)} (+{g.num_edges() - g.num_edges(lateral=False)}) "
            f"| {block.count_params():,} |"
        )
display(Markdown("\n".join(rows)))

# %% [markdown]
# ## 4. PSConv's dilation matrix
#
# A `PSConv2D` with cyclic interval t splits input and output channels into t blocks; the kernel
# entries linking input block k to output block o are applied with dilation
# `D[o, k] = pattern[(k − o) mod t]`. `layer.dilation_matrix` gives this t×t block matrix; the
# channel-level matrix (the paper's D, one entry per output/input channel pair) repeats each entry
# over its blocks.
#
# Drawing the formula proves nothing about the layer, so the right panel **measures** it: with
# every kernel weight set to 1 (`set_dense_kernel`), a single 1 on input channel k at the centre of
# a 15×15 image lights output channel o at the taps (0, ±d) of a 3×3 kernel dilated by d = D[o, k].
# The measured dilation is the largest offset of a non-zero output.
#
# %%
layer = ksc.PSConv2D(16, 3, cyclic_interval=4)  # 16 -> 16 channels, blocks of 4
layer.build((None, 15, 15, 16))
t, channels = layer.cyclic_interval, 16
block_matrix = layer.dilation_matrix
channel_matrix = np.kron(block_matrix, np.ones((channels // t, channels // t), "int64"))

layer.set_dense_kernel(np.ones(layer.dense_kernel().shape, "float32"))
probes = np.zeros((channels, 15, 15, channels), "float32")
probes[np.arange(channels), 7, 7, np.arange(channels)] = 1.0  # probe k: a 1 on input channel k
responses = np.asarray(layer(probes))  # (input channel k, row, col, output channel o)
rows, cols = np.arange(15)[:, None] - 7, np.arange(15)[None, :] - 7
reach = np.maximum(np.abs(rows), np.abs(cols))[None, :, :, None]
measured = np.where(responses != 0, reach, 0).max(axis=(1, 2)).T  # (output o, input k)
print("block matrix D (rows: output blocks, columns: input blocks):\n", block_matrix)
print("measured on the layer == drawn from the pattern:", np.array_equal(measured, channel_matrix))

figure, axes = plt.subplots(1, 3, figsize=(14, 4.4))
for axis, matrix, title, unit in (
    (axes[0], block_matrix, f"D by blocks (t = {t}, pattern {layer.dilation_pattern})", "block"),
    (axes[1], channel_matrix, "D by channels, from the pattern", "channel"),
    (axes[2], measured, "D by channels, measured on the layer", "channel"),
):
    image = axis.imshow(matrix, cmap="viridis", vmin=1, vmax=max(layer.dilation_pattern))
    axis.set(title=title, xlabel=f"input {unit}", ylabel=f"output {unit}",
             xticks=range(0, len(matrix), max(1, len(matrix) // 4)),
             yticks=range(0, len(matrix), max(1, len(matrix) // 4)))
    if unit == "block":
        for (o, k), value in np.ndenumerate(matrix):
            axis.text(k, o, str(value), ha="center", va="center", fontsize=12,
                      color="k" if value > 2 else "w")
figure.colorbar(image, ax=list(axes), label="dilation", fraction=0.02, ticks=[1, 2, 3, 4])
plt.show()
assert np.array_equal(measured, channel_matrix)

# %% [markdown]
# Each row and each column of D holds the whole pattern (1, 2, 1, 4): every output channel mixes
# all four scales, and every input channel is seen at all four scales — a feature pyramid inside
# one convolution, at the parameter count and cost of a plain 3×3 convolution.
