"""The QGN encoder: an ImageNet ResNet whose features at strides 2, 4, ..., 2**(L-1) feed the
quadtree decoder (one map per decoder level but the finest).

Reference: K. Chitta, J. M. Alvarez, M. Hebert, "Quadtree Generating Networks: Efficient
Hierarchical Scene Parsing with Sparse Convolutions", WACV 2020 (arXiv:1907.11821), Sec. 3 (an
encoder that subsamples by 32, skip connections to each decoder block) and Sec. 4
(Implementation: ResNet encoders). Here: `keras.applications.ResNet50` (not dilated) or our
ResNet-18 (7x7 stem + max-pool); the features are the stem's ReLU (stride 2) and the last block
of each stage.

Both encoders stop at stride 32, so a quadtree has at most `MAX_LEVELS = 6` levels, and the image
height and width must be multiples of `2**(levels - 1)` (the checks below).
"""

from __future__ import annotations

import re

import keras

from keras_structconv._validation import is_int, one_of
from keras_structconv.models.resnet import ResNet18

__all__ = ["ENCODERS", "MAX_LEVELS", "check_input_shape", "check_levels", "qgn_encoder"]

ENCODERS = ("resnet50", "resnet18")
MAX_LEVELS = 6  # the encoders stop at stride 32 = 2**(6 - 1)


def qgn_encoder(encoder: str, input_shape, levels: int = MAX_LEVELS) -> keras.Model:
    """The QGN encoder: a functional model image -> features at strides 2, ..., 2**(levels-1).

    Args:
        encoder: "resnet50" (`keras.applications.ResNet50`, weights=None) or "resnet18"
            (`keras_structconv.models.ResNet18`); both not dilated, output stride 32.
        input_shape: static `(height, width, channels)`.
        levels: quadtree levels L (2..6): the encoder yields L-1 maps; the stages below stride
            `2**(L-1)` are left out.

    Returns:
        A `keras.Model` with L-1 outputs, entry i at stride `2**(i+1)` (the decoder's
        `encoder_features` layout).

    Example:

    >>> encoder = qgn_encoder("resnet18", (64, 64, 3), levels=4)
    >>> [tuple(output.shape[1:]) for output in encoder.outputs]
    [(32, 32, 64), (16, 16, 64), (8, 8, 128)]
    """
    if one_of(encoder, "encoder", ENCODERS) == "resnet50":
        backbone = keras.applications.ResNet50(
            include_top=False, weights=None, input_shape=input_shape
        )
    else:
        backbone = ResNet18(include_top=False, weights=None, input_shape=input_shape)
    outputs = _stage_outputs(backbone)[: levels - 1]
    return keras.Model(backbone.inputs, outputs, name=f"{encoder}_encoder")


def _stage_outputs(backbone):
    """The backbone's stride-2 feature (stem ReLU) and the last block output of each stage."""
    outputs = [backbone.get_layer("conv1_relu").output]
    for stage in range(2, 6):
        pattern = re.compile(rf"conv{stage}_block(\d+)_out$")
        blocks = [layer for layer in backbone.layers if pattern.match(layer.name)]
        last = max(blocks, key=lambda layer: int(pattern.match(layer.name).group(1)))
        outputs.append(last.output)
    return outputs


def check_levels(levels) -> int:
    """`levels` as an int in [2, MAX_LEVELS] (the encoders' output stride bounds the depth)."""
    if not is_int(levels) or not 2 <= levels <= MAX_LEVELS:
        raise ValueError(
            f"`levels` must be an integer in [2, {MAX_LEVELS}] (the encoder's output stride is "
            f"at most 32 = 2**({MAX_LEVELS} - 1)). Received: levels={levels!r}"
        )
    return int(levels)


def check_input_shape(input_shape, levels: int) -> tuple[int, int, int]:
    """`input_shape` as `(height, width, channels)`, height and width multiples of
    `2**(levels - 1)` (the decoder's coarsest grid must tile the image)."""
    try:
        height, width, channels = (int(v) for v in input_shape)
    except (TypeError, ValueError):
        raise ValueError(
            "`input_shape` must be a static (height, width, channels) triple of positive "
            f"integers. Received: input_shape={input_shape!r}"
        ) from None
    factor = 2 ** (levels - 1)
    if min(height, width, channels) < 1 or height % factor or width % factor:
        raise ValueError(
            f"`input_shape` height and width must be positive multiples of 2**(levels - 1) = "
            f"{factor} (pad the images, e.g. the CamVid loader's pad_to='auto'). "
            f"Received: input_shape={tuple(input_shape)!r}, levels={levels}"
        )
    return height, width, channels
