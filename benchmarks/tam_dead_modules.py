"""How many TAM modules start with a constant gate, under three initialisations.

    python -m benchmarks.tam_dead_modules                 # 100 seeds, g = 2, C = 16, 32, 64
    python -m benchmarks.tam_dead_modules --seeds 10      # quicker

A module is *dead* at initialisation when its gate `sigmoid(tree(x))` is constant over the batch
and the pixels: `max - min < 1e-6` (a float32 sigmoid near 0.5 moves in steps of 3e-8; a live
gate's spread over a batch is orders of magnitude larger, the script prints the smallest one
seen). A dead module's gradients are all 0 but its last bias's, so it never trains.

Initialisations (g = 2; every level of C = 16, 32, 64 is a grouped level with fan-in 2):
- `ours`: `TreeAttention(2)` as shipped: He-normal kernels (fan-in), zero biases, slopes 0.25;
- `ours, slope 0`: the same with `alpha_initializer=0.0`;
- `authors`: the authors' PyTorch module, `nn.Conv2d(..., groups=n/g)` with PyTorch's default
  init (`kaiming_uniform_(a=sqrt(5))`, i.e. kernels U(+-1/sqrt(fan_in)), biases
  U(+-1/sqrt(fan_in))) and `nn.PReLU(n, init=0.0)`, re-implemented here in NumPy.

Inputs, per seed (the same for the three initialisations):
- `random`: standard normal, `(8, 16, 16, C)`;
- `cifar residual`: the residual branch right before each add (where TAM goes) of a freshly
  initialised ResNet-20 (seeded; `--networks` of them, each shared by `seeds / networks`
  consecutive module seeds) on 32 real CIFAR-10 test images, BatchNorm in training mode
  (what the first training step sees): 9 blocks, C = 16, 32, 64 three times each;
- `cifar stage output`: the output of each of its three stages (after the last add and ReLU,
  non-negative).
CIFAR-10 comes from `$KERAS_STRUCTCONV_DATA/cifar10` (default `../shared/data/cifar10`), else the
embedded sample.
"""

from __future__ import annotations

import argparse
import sys

import keras
import numpy as np

from keras_structconv.datasets import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    load_cifar10_arrays,
    load_embedded_cifar10,
)
from keras_structconv.layers import TreeAttention
from keras_structconv.models import ResNet20

CHANNELS = (16, 32, 64)
SCHEMES = ("ours", "ours, slope 0", "authors")
CONSTANT = 1e-6


def _cifar_images(count: int) -> tuple[np.ndarray, str]:
    try:
        x, _ = load_cifar10_arrays("test")
        source = "CIFAR-10 test split"
    except (FileNotFoundError, ValueError):
        (_, _), (x, _) = load_embedded_cifar10()
        source = "embedded CIFAR-10 sample (test)"
    pick = np.random.default_rng(0).choice(len(x), count, replace=False)
    images = (x[pick].astype("float32") / 255.0 - CIFAR10_MEAN) / CIFAR10_STD
    return images.astype("float32"), source


def _feature_maps(seed: int, images: np.ndarray) -> dict[str, list[np.ndarray]]:
    """ResNet-20 (seeded) features: residual branches before each add, and stage outputs."""
    keras.utils.set_random_seed(seed)
    net = ResNet20()
    residual = [f"conv{s}_block{b}_2_bn" for s in (2, 3, 4) for b in (1, 2, 3)]
    stage = [f"conv{s}_block3_out" for s in (2, 3, 4)]
    probe = keras.Model(net.inputs, [net.get_layer(n).output for n in residual + stage])
    outputs = [np.asarray(t) for t in probe([images], training=True)]
    return {"cifar residual": outputs[:9], "cifar stage output": outputs[9:]}


def _authors_weights(layer: TreeAttention, rng: np.random.Generator) -> list[np.ndarray]:
    """PyTorch's default conv init and `nn.PReLU(init=0.0)`, in the layer's weight order."""
    kernels = {w.name: w for w in layer.weights if w.name.startswith("kernel_")}
    weights = []
    for w in layer.weights:
        if w.name.startswith("alpha_"):
            weights.append(np.zeros(w.shape, "float32"))
            continue
        index = w.name.split("_")[1]
        fan_in = kernels[f"kernel_{index}"].shape[2]  # in_channels / groups
        bound = 1.0 / np.sqrt(fan_in)
        weights.append(rng.uniform(-bound, bound, w.shape).astype("float32"))
    return weights


def _module(scheme: str, channels: int, seed: int) -> TreeAttention:
    keras.utils.set_random_seed(seed)
    layer = TreeAttention(2, alpha_initializer=0.0 if scheme == "ours, slope 0" else 0.25)
    layer.build((None, None, None, channels))
    if scheme == "authors":
        layer.set_weights(_authors_weights(layer, np.random.default_rng(seed)))
    return layer


def _spread(layer: TreeAttention, x: np.ndarray) -> float:
    gate = np.asarray(layer.gate(x))
    return float(gate.max() - gate.min())


def study(seeds: int, networks: int, images: np.ndarray) -> dict:
    kinds = ("random", "cifar residual", "cifar stage output")
    spreads = {(kind, scheme): [] for kind in kinds for scheme in SCHEMES}
    bar = keras.utils.Progbar(seeds, unit_name="seed")
    features = {}
    for seed in range(seeds):
        if seed % (seeds // networks) == 0:
            keras.backend.clear_session()
            features = _feature_maps(seed, images)
        rng = np.random.default_rng(10_000 + seed)
        inputs = {"random": [rng.standard_normal((8, 16, 16, c), "float32") for c in CHANNELS]}
        inputs.update(features)
        for kind, maps in inputs.items():
            for index, x in enumerate(maps):
                for scheme in SCHEMES:
                    layer = _module(scheme, x.shape[-1], 1_000 * seed + 10 * index + 1)
                    spreads[kind, scheme].append(_spread(layer, x))
        bar.update(seed + 1)
    return spreads


def _report(spreads: dict, seeds: int, source: str) -> str:
    lines = [
        f"Modules with a constant gate (max - min < {CONSTANT:g}) at initialisation, g = 2, "
        f"C = 16, 32, 64, {seeds} seeds; CIFAR features from {source}.",
        "",
        "| input | " + " | ".join(SCHEMES) + " |",
        "|---|" + "---|" * len(SCHEMES),
    ]
    for kind in ("random", "cifar residual", "cifar stage output"):
        cells = []
        for scheme in SCHEMES:
            values = np.asarray(spreads[kind, scheme])
            dead = int(np.sum(values < CONSTANT))
            cells.append(f"{dead}/{len(values)} ({100 * dead / len(values):.1f} %)")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    lines.append("")
    for scheme in SCHEMES:
        values = np.concatenate([spreads[kind, s] for kind, s in spreads if s == scheme])
        live = values[values >= CONSTANT]
        dead = values[values < CONSTANT]
        lines.append(
            f"{scheme}: smallest live spread {live.min():.3g}, "
            f"{int(np.sum(live < 1e-3))} live modules below 1e-3, "
            f"largest dead spread {dead.max() if dead.size else 0.0:.3g}."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument(
        "--networks", type=int, default=10, help="ResNet-20s (seeds share them in turn)"
    )
    parser.add_argument("--images", type=int, default=32, help="CIFAR-10 images per batch")
    args = parser.parse_args(argv)
    if args.networks < 1 or args.seeds % args.networks:
        parser.error(f"--networks must divide --seeds. Received: networks={args.networks}")
    images, source = _cifar_images(args.images)
    report = _report(study(args.seeds, args.networks, images), args.seeds, source)
    print(
        report + f"\nCIFAR features: {args.networks} ResNet-20s, each for "
        f"{args.seeds // args.networks} consecutive module seeds."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
