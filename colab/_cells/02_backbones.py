# %% [markdown]
# # Structured operators inside `keras.applications` backbones
#
# `keras_structconv.convert(model, conv=..., attention=...)` rewrites any functional Keras model:
# it replaces the selected convolutions (by default every 3×3 `Conv2D` that does not read the
# image directly, i.e. all but the stem) with what the `conv` factory returns, and inserts the
# module made by `attention(channels)` on the residual branch right before every residual `Add`.
# The original model is left untouched; untouched layers keep its weights.
#
# This notebook converts three `keras.applications` backbones (built with `weights=None`: nothing
# is downloaded)
#
# - **ResNet50**, **EfficientNetB0** and **MobileNetV2**,
# - with **PSConv2D** (poly-scale convolution) and with **TreeAttention** (TAM),
#
# prints the table of what `convert` changed, and measures the converted models' cost next to the
# originals' in this notebook: parameters, and the time of a forward pass.
#
# %% [setup] viz

# %% [markdown]
# `SMALL = True` (set by `KERAS_STRUCTCONV_NOTEBOOK_SMALL=1`, as on CI) times the forward pass at a
# 64×64 input with batch 2 and 3 repeats, enough to run the code in about a minute; the default
# (`SMALL = False`) times 224×224 inputs, batch 8, median of 10 repeats. Small-mode timings say
# little: at 64×64 fixed per-layer overheads dominate.
#
# %%
import collections
import os
import statistics
import time

import keras
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

import keras_structconv as ksc

SMALL = os.environ.get("KERAS_STRUCTCONV_NOTEBOOK_SMALL", "0") == "1"

IMAGE_SIZE = 64 if SMALL else 224
BATCH_SIZE = 2 if SMALL else 8
REPEATS = 3 if SMALL else 10
keras.utils.set_random_seed(0)
print(f"keras_structconv {ksc.__version__}, Keras {keras.__version__}, SMALL={SMALL}")

# %% [markdown]
# ## Convert
#
# The conv factory `ksc.layers.psconv_factory()` turns each selected `Conv2D` into a `PSConv2D`
# with the same filters, strides, padding and bias (cyclic interval t = 4, dilation pattern
# (1, 2, 1, 4)). The attention factory is any `channels -> layer` function; `TreeAttention` works
# for every channel count, so it ignores it. `return_report=True` also returns a `ConvertReport`.
#
# %%
APPLICATIONS = {
    "ResNet50": keras.applications.ResNet50,
    "EfficientNetB0": keras.applications.EfficientNetB0,
    "MobileNetV2": keras.applications.MobileNetV2,
}
VARIANTS = {
    "PSConv2D": dict(conv=ksc.layers.psconv_factory(cyclic_interval=4)),
    "TAM": dict(attention=lambda channels: ksc.TreeAttention(group_size=2)),
}

models, reports = {}, {}
for app_name, application in APPLICATIONS.items():
    original = application(weights=None, input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3))
    models[app_name, "original"] = original
    for variant, factories in VARIANTS.items():
        converted, report = ksc.convert(original, return_report=True, **factories)
        models[app_name, variant] = converted
        reports[app_name, variant] = report

print(reports["ResNet50", "PSConv2D"].__str__()[:600], "...\n")
print(reports["ResNet50", "TAM"].__str__()[:600], "...")

# %% [markdown]
# ## What changed
#
# `report.replaced` lists every replaced convolution (name, what it was, what replaced it) and
# `report.inserted` every attention module (where it sits, its channels, and which rule told the
# residual branch from the shortcut). Grouped:
#
# %%
rows = [
    "| model | variant | convolutions replaced | attention modules | details |",
    "|---|---|---:|---:|---|",
]
for (app_name, variant), report in reports.items():
    replaced = collections.Counter(f"{r.old} → {r.new}" for r in report.replaced)
    inserted = collections.Counter(r.channels for r in report.inserted)
    details = [f"{count}× {kind}" for kind, count in replaced.items()]
    if inserted:
        details.append("modules per channel count: " + ", ".join(
            f"{channels} ch ×{count}" for channels, count in sorted(inserted.items())
        ))
    details = "; ".join(details)
    rows.append(
        f"| {app_name} | {variant} | {len(report.replaced)} | {len(report.inserted)} | "
        f"{details or '—'} |"
    )
display(Markdown("\n".join(rows)))

# %% [markdown]
# What this shows:
#
# - **ResNet50 + PSConv2D**: the 16 bottleneck 3×3 convolutions become PSConv2D; the 7×7 stem and
#   the 1×1 convolutions stay.
# - **EfficientNetB0 / MobileNetV2 + PSConv2D: nothing is replaced.** Their only dense 3×3
#   `Conv2D` is the stem (3 input channels); every other 3×3 is a `DepthwiseConv2D`. PSConv's
#   dilation pattern runs across input-channel blocks, and a depthwise convolution has one input
#   channel per filter, so there is nothing to cycle over. PSConv is a drop-in for the dense 3×3
#   convolutions of ResNet/ResNeXt-style networks (the paper's setting).
# - **TAM** goes on every residual branch: 16 modules in ResNet50, 9 in EfficientNetB0 (between
#   each block's `Dropout` and its `Add`), 10 in MobileNetV2.
#
# ## Cost: parameters and forward time
#
# Each model runs `predict_on_batch` on the same random batch: two untimed calls (tracing and
# warm-up), then the median of the timed repeats. An original and its converted versions are timed
# in turn, round-robin, in this process, so that they share the machine's state; still, on a busy
# or shared machine (Colab, CI) the figures move by tens of percent between runs.
#
# %%
images = np.random.default_rng(0).uniform(0, 255, (BATCH_SIZE, IMAGE_SIZE, IMAGE_SIZE, 3))
images = images.astype("float32")


def forward_seconds(group):
    """Median seconds of `predict_on_batch` for each model of `group`, timed round-robin so that
    a change of the machine's load affects every model alike."""
    for model in group.values():
        model.predict_on_batch(images)  # traces and compiles
        model.predict_on_batch(images)  # warm-up
    times = {key: [] for key in group}
    for _ in range(REPEATS):
        for key, model in group.items():
            start = time.perf_counter()
            model.predict_on_batch(images)
            times[key].append(time.perf_counter() - start)
    return {key: statistics.median(values) for key, values in times.items()}


cost = {}
for app_name in APPLICATIONS:
    group = {key: model for key, model in models.items() if key[0] == app_name}
    for key, seconds in forward_seconds(group).items():
        cost[key] = (models[key].count_params(), seconds)

rows = [
    f"| model | variant | parameters | vs original | forward, batch {BATCH_SIZE} at "
    f"{IMAGE_SIZE}² (ms) | vs original |",
    "|---|---|---:|---:|---:|---:|",
]
for (app_name, variant), (params, seconds) in cost.items():
    base_params, base_seconds = cost[app_name, "original"]
    rows.append(
        f"| {app_name} | {variant} | {params:,} | {params - base_params:+,} "
        f"({100 * (params / base_params - 1):+.2f} %) | {1000 * seconds:.1f} | "
        f"{seconds / base_seconds:.2f}× |"
    )
display(Markdown("\n".join(rows)))

# %%
figure, (left, right) = plt.subplots(1, 2, figsize=(12, 3.6))
width = 0.35
positions = np.arange(len(APPLICATIONS))
for offset, variant in zip((-width / 2, width / 2), VARIANTS, strict=True):
    extra = [cost[a, variant][0] - cost[a, "original"][0] for a in APPLICATIONS]
    ratio = [cost[a, variant][1] / cost[a, "original"][1] for a in APPLICATIONS]
    left.bar(positions + offset, extra, width, label=variant)
    right.bar(positions + offset, ratio, width, label=variant)
left.set(xticks=positions, xticklabels=list(APPLICATIONS), ylabel="parameters added",
         title="Parameters added by the conversion")
right.axhline(1.0, color="0.4", linestyle=":")
right.set(xticks=positions, xticklabels=list(APPLICATIONS), ylabel="time / original time",
          title=f"Forward time relative to the original ({IMAGE_SIZE}², batch {BATCH_SIZE})")
left.legend()
plt.show()

# %% [markdown]
# Reading the figures:
#
# - **PSConv2D adds no parameter**: each PSConv2D holds as many weights as the `Conv2D` it
#   replaces and costs the same multiply-adds. It stores them slot by slot, a different shape, so
#   `convert` leaves them freshly initialised (the report says "weights copied" only when the
#   shapes match); `PSConv2D.set_dense_kernel` loads a `Conv2D` kernel when you want one. Its time
#   differs from `Conv2D`'s because it runs as a few grouped dilated convolutions instead of one
#   dense convolution.
# - **TAM adds about 4C weights per module** of C channels with group size 2 (4C − 5 when C is a
#   power of two; +60,336 for ResNet50's 16 modules, under 0.25 % of the model) and one gate per
#   pixel: cheap in parameters, measurable in time because it reads every activation of the branch
#   once more.
# - The package's README lists these overheads and careful benchmark timings (`benchmarks/`),
#   measured on an otherwise idle machine.
