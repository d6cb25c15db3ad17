"""The ResNet-50 stage shapes at which the layer cases compare an operator with a 3x3 Conv2D.

Stages 2-5 of ResNet-50 at 224x224: 56x56x64, 28x28x128, 14x14x256, 7x7x512 (height = width,
channels). `--quick` swaps in two small shapes and batch 2.
"""

import keras

STAGES = ((56, 64), (28, 128), (14, 256), (7, 512))
QUICK_STAGES = ((8, 16), (4, 32))
QUICK_BATCH = 2


def conv3x3(channels, strides=1):
    """The reference: the stage's 3x3 Conv2D ('same' padding, no bias: a BatchNorm follows)."""
    return keras.layers.Conv2D(channels, 3, strides=strides, padding="same", use_bias=False)


def compare_with_conv3x3(bench, title, ours, batch):
    """Yields the rows of `ours(channels)` against `conv3x3(channels)` at every stage shape,
    forward and forward+backward, each row named "<title>, <size>x<size>x<channels>"."""
    stages = QUICK_STAGES if bench.quick else STAGES
    batch = QUICK_BATCH if bench.quick else batch
    for size, channels in stages:
        yield from bench.compare_layers(
            f"{title}, {size}x{size}x{channels}",
            ours=lambda c=channels: ours(c),
            reference=lambda c=channels: conv3x3(c),
            input_shape=(batch, size, size, channels),
        )
