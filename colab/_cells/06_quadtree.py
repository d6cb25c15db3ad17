# %% [markdown]
# # Quadtrees of CamVid label maps and the QGN decoder
#
# The Quadtree Generating Network (QGN; Chitta, Alvarez, Hebert, WACV 2020) predicts a
# segmentation coarse to fine: at every level of a quadtree (level 5 = cells of 32×32 pixels,
# level 0 = single pixels) a cell is either a *leaf* with one class, or *composite* and refined by
# its four children one level below. A street scene is mostly large uniform regions, so most
# pixels are settled at coarse levels and the decoder only works near class boundaries.
#
# This notebook shows, on CamVid:
#
# 1. the quadtree of one frame's label map, drawn level by level (`keras_structconv.quadtree`);
# 2. the quadtree statistics of the label maps (the QGN paper's Table 5);
# 3. what the decoder computes under the three propagation schemes `all` (dense), `gt` (the
#    ground-truth quadtree) and `pred` (the predicted one) — counted as active sites per level;
# 4. a `structconv segment`-style figure: a prediction beside its quadtree leaves.
#
# **Data.** CamVid is not downloaded: set `CAMVID_DIR` below to a folder holding the npz files
# `train.npz`, `val.npz`, `test.npz` (format in the package's data README: JPEG images and
# uint8 label maps 360×480, SegNet's 11 classes, 11 = void). Left at `None`, the notebook uses
# `$KERAS_STRUCTCONV_DATA/camvid`, else `../shared/data/camvid` beside the repository (as the
# tests do).
#
# %% [setup] viz

# %% [markdown]
# `SMALL = True` (set by `KERAS_STRUCTCONV_NOTEBOOK_SMALL=1`, as on CI) computes the statistics on
# the validation split only and trains the tiny QGN of part 4 for 8 steps; the default
# (`SMALL = False`) uses all three splits and 300 steps (several minutes on a CPU).
#
# %%
import io
import os

import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
from IPython.display import Image, Markdown, display

import keras_structconv as ksc
from keras_structconv import quadtree, viz
from keras_structconv.quadtree.stats import format_statistics_table

# The folder holding CamVid's train.npz, val.npz and test.npz; None: $KERAS_STRUCTCONV_DATA/camvid,
# else ../shared/data/camvid beside the repository.
CAMVID_DIR = None

SMALL = os.environ.get("KERAS_STRUCTCONV_NOTEBOOK_SMALL", "0") == "1"

SPLITS = ("val",) if SMALL else ("train", "val", "test")
FRAME = ("val", 0)  # the frame drawn in parts 1 and 4: (split, index)
TRAIN_STEPS = 8 if SMALL else 300
LEVELS = 6  # quadtree levels: root cells of 2**5 = 32 pixels
NUM_CLASSES = len(ksc.datasets.CAMVID_CLASS_NAMES)
VOID = ksc.datasets.CAMVID_IGNORE_LABEL  # 255
keras.utils.set_random_seed(0)
print(f"keras_structconv {ksc.__version__}, Keras {keras.__version__}, SMALL={SMALL}")


def show(figure):
    """Displays a matplotlib Figure built without pyplot (as `keras_structconv.viz` makes them)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    display(Image(buffer.getvalue()))

# %% [markdown]
# ## 1. One frame's quadtree, level by level
#
# The label map (360×480) is padded at the bottom with void to 384×480, a multiple of 32.
# `quadtree.quadtree_cell_masks` gives, per level, the leaves of the quadtree; every pixel then
# has the level of the leaf that covers it. Panel *level l* shows what is known after decoding
# down to level l: pixels whose leaf is at level l or above take their class colour (void is
# black), the rest — the composite cells still to be refined — are grey. The thin lines outline
# the cells of the tree cut at that level.
#
# %%
data = {split: ksc.datasets.load_camvid_arrays(split, CAMVID_DIR) for split in SPLITS}
if FRAME[0] not in data:
    data[FRAME[0]] = ksc.datasets.load_camvid_arrays(FRAME[0], CAMVID_DIR)
frame_image = np.asarray(data[FRAME[0]][0][FRAME[1]])
frame_labels = np.asarray(data[FRAME[0]][1][FRAME[1]])
padded, padding = quadtree.pad_to_multiple(frame_labels, 2 ** (LEVELS - 1), ignore_index=VOID)
padded = np.asarray(padded)
print(f"frame {FRAME}: image {frame_image.shape}, labels padded to {padded.shape}, {padding}")


def leaf_levels(label_map):
    """(H, W) level of the quadtree leaf covering each pixel of a padded label map."""
    leaves, _ = quadtree.quadtree_cell_masks(label_map[None], LEVELS, NUM_CLASSES, VOID)
    levels = np.full(label_map.shape, -1)
    for level, mask in enumerate(leaves):
        size = 2**level
        levels[np.repeat(np.repeat(np.asarray(mask[0]), size, 0), size, 1)] = level
    assert (levels >= 0).all()  # every pixel has exactly one leaf
    return levels


PALETTE = np.concatenate([viz.class_colors(NUM_CLASSES), np.zeros((1, 3), "float32")])


def colour(label_map):
    """RGB image of a label map: CamVid's colours, void black."""
    return PALETTE[np.where(label_map == VOID, NUM_CLASSES, label_map)]


frame_levels = leaf_levels(padded)
figure, axes = plt.subplots(2, 4, figsize=(16, 6.4))
axes = axes.ravel()
axes[0].imshow(frame_image)
axes[0].set_title("frame")
axes[1].imshow(colour(padded))
axes[1].set_title("label map (padded to 384×480)")
for axis, level in zip(axes[2:], range(LEVELS - 1, -1, -1), strict=True):
    known = frame_levels >= level
    picture = np.where(known[..., None], colour(padded), 0.8)
    cut = np.maximum(frame_levels, level)
    picture[viz.leaf_cell_edges(cut) & (cut > 0)] = 0.25
    axis.imshow(picture, interpolation="nearest")
    axis.set_title(f"level {level} ({2**level}×{2**level} cells): {known.mean():.0%} settled")
for axis in axes:
    axis.set_axis_off()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 2. Quadtree statistics (QGN paper, Table 5)
#
# `quadtree.quadtree_statistics(labels, 6, 11)` counts, over a set of label maps, the share of
# pixels whose leaf lies at each level (Q5 = 32×32 cells … Q0 = single pixels) and the
# quadtree/dense memory ratio: leaf cells / pixels. The second table is the fraction of each level's
# sites present in the quadtree (leaves and composite cells): exactly the sites a decoder computes
# under `gt` propagation. The paper reports a ratio of 3.07 % for Cityscapes' training set and
# 5.09 % for ADE20k's.
#
# %%
statistics = [
    quadtree.quadtree_statistics(data[split][1], LEVELS, NUM_CLASSES, VOID, name=split)
    for split in SPLITS
]
frame_statistics = quadtree.quadtree_statistics(
    frame_labels[None], LEVELS, NUM_CLASSES, VOID, name="frame"
)
print(format_statistics_table([*statistics, frame_statistics], show_active=True))

figure, axis = plt.subplots(figsize=(9, 3.4))
width = 0.8 / (len(statistics) + 1)
levels_top_down = np.arange(LEVELS)[::-1]
for offset, stats in enumerate([*statistics, frame_statistics]):
    axis.bar(np.arange(LEVELS) + offset * width, stats.level_pixel_percent[levels_top_down],
             width, label=f"{stats.name} (ratio {stats.memory_ratio_percent:.2f} %)")
axis.set(xticks=np.arange(LEVELS) + width * len(statistics) / 2,
         xticklabels=[f"Q{level}" for level in levels_top_down],
         ylabel="% of pixels", title="Level of each pixel's leaf (padded 384×480 maps)")
axis.legend()
plt.show()

# %% [markdown]
# ## 3. The decoder's work under `all`, `gt` and `pred`
#
# The QGN decoder runs its residual units on the *active sites* of each level only: under `all`
# every site; under `gt` the children of the ground-truth composite cells (what the quadtree above
# holds); under `pred` the children of the cells the network itself predicts composite. Its
# activation memory (and the features kept for the backward pass) grows with the active sites
# times the channels of each level.
#
# **What is counted here** is active sites, not bytes: the repository's benchmark
# (`benchmarks/qgn_decoder_memory.py`) reads TensorFlow's CPU allocator statistics, which are
# unavailable when oneDNN is off (`TF_ENABLE_ONEDNN_OPTS=0`) and need a fresh process per scheme,
# so a notebook does not read them. (That benchmark measured a `gt`/`all` peak-memory ratio of
# 0.14 for this decoder on CamVid at 384×480, batch 4.) Below, for the default
# decoder (paper Table 7: 64, 64, 64, 128, 256 channels at levels 0–4) on 384×480 maps, the
# active sites per level and the "feature values" Σ sites × channels, `gt` against `all`, from the
# statistics above (so averaged over the split). `pred` needs a trained model; see part 4.
#
# %%
DECODER_FILTERS = (64, 64, 64, 128, 256)  # levels 0..4; level 5 (stride 32) is dense anyway
reference = statistics[0]
all_sites = reference.level_sites[: LEVELS - 1] / reference.num_images
gt_sites = reference.tree_cells[: LEVELS - 1] / reference.num_images
rows = ["| level | cell size | sites per image (`all`) | sites per image (`gt`) | gt / all |",
        "|---:|---:|---:|---:|---:|"]
for level in range(LEVELS - 1):
    rows.append(f"| {level} | {2**level}×{2**level} | {all_sites[level]:,.0f} | "
                f"{gt_sites[level]:,.0f} | {gt_sites[level] / all_sites[level]:.3f} |")
values_all = float(np.dot(all_sites, DECODER_FILTERS))
values_gt = float(np.dot(gt_sites, DECODER_FILTERS))
rows.append(f"| Σ sites × channels | | {values_all:,.0f} | {values_gt:,.0f} | "
            f"{values_gt / values_all:.3f} |")
display(Markdown(f"Split `{reference.name}`, {reference.num_images} label maps:\n\n"
                 + "\n".join(rows)))

# %% [markdown]
# ## 4. A tiny QGN and a `segment` figure
#
# `structconv segment MODEL IMAGE` draws a trained QGN's prediction beside the quadtree it was
# assembled from (`viz.plot_segmentation`). No trained QGN ships with the package, and training
# one takes about an hour of CPU (see the repository's `zoo/qgn_camvid`). So, first, the figure
# drawn from the **ground-truth** quadtree of the frame: the label map and the level of each
# pixel's leaf (this is what a perfect QGN would output). With void as a twelfth entry, the figure
# takes matplotlib's palette rather than CamVid's.
#
# %%
names = [*ksc.datasets.CAMVID_CLASS_NAMES, "void"]
figure = viz.plot_segmentation(
    np.pad(frame_image, ((0, padded.shape[0] - frame_image.shape[0]), (0, 0), (0, 0))),
    np.where(padded == VOID, NUM_CLASSES, padded),
    frame_levels,
    class_names=names,
    num_levels=LEVELS,
    title=f"ground-truth quadtree of frame {FRAME}",
)
show(figure)

# %% [markdown]
# Then a real QGN, kept tiny so that it trains here: a ResNet-18 encoder and a narrow decoder
# (16–64 channels, one residual unit per level), on the frame downscaled by 3 to 128×160 (still 6
# levels: 4×5 root cells). It is trained with `gt` propagation on **this one frame only**, for
# `TRAIN_STEPS` steps, then run with `pred` propagation. It memorises one frame: the figure shows
# the machinery — the sparse decoding, the predicted quadtree, the assembled prediction — not
# segmentation quality (in small mode it has barely started). The table counts the active sites
# of each level under the three schemes, read from the decoder's masks.
#
# %%
small_labels = padded[1::3, 1::3]  # nearest-neighbour downscaling by 3: 384x480 -> 128x160
small_image = tf.image.resize(
    np.pad(frame_image, ((0, padded.shape[0] - frame_image.shape[0]), (0, 0), (0, 0)))[None],
    small_labels.shape, method="area",
)[0].numpy().astype("uint8")
dataset = ksc.datasets.camvid_dataset(small_image[None], small_labels[None], batch_size=1)
images, labels = next(iter(dataset))

model = ksc.models.QGN(
    NUM_CLASSES, encoder="resnet18", input_shape=(*small_labels.shape, 3), levels=LEVELS,
    decoder_filters=(16, 16, 16, 32, 64), decoder_units=(1, 1, 1, 1, 1), top_filters=64,
)
model.compile(optimizer=keras.optimizers.Adam(1e-3))
history = model.fit(
    dataset.repeat(), steps_per_epoch=TRAIN_STEPS, epochs=1, shuffle=False, verbose=0
)
print({name: round(float(values[-1]), 3) for name, values in history.history.items()})

sites = {}
for propagation in ("all", "gt", "pred"):
    outputs = model.decode(images, model.level_labels(labels), propagation=propagation)
    sites[propagation] = [int(np.asarray(mask).sum()) for mask in outputs["masks"]]
rows = ["| level | " + " | ".join(sites) + " |", "|---:|" + "---:|" * len(sites)]
for level in range(LEVELS - 1, -1, -1):
    rows.append(f"| {level} | " + " | ".join(f"{sites[p][level]:,}" for p in sites) + " |")
rows.append("| levels 0–4, vs all | " + " | ".join(
    f"{sum(sites[p][:-1]) / sum(sites['all'][:-1]):.3f}" for p in sites) + " |")
display(Markdown("\n".join(rows)))

prediction = model(images, propagation="pred", training=False)
figure = viz.plot_segmentation(
    small_image, np.asarray(prediction["classes"][0]), np.asarray(prediction["levels"][0]),
    class_names=list(ksc.datasets.CAMVID_CLASS_NAMES), num_levels=LEVELS,
    title=f"tiny QGN after {TRAIN_STEPS} steps on this frame, propagation 'pred'",
)
show(figure)
