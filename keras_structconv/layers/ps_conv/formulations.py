"""The ways PSConv2D computes its output, all exact, and the rule that picks one per layer.

- `slots`: per pattern slot, one grouped dilated convolution (t * groups groups) on the shared
  padded input, its output blocks rolled into place and the slots summed (oneDNN);
- `masked`: per distinct dilation, one dense (or `groups`-grouped) convolution whose kernel has
  the other dilations' entries masked to zero (blocks under 8 input channels);
- `split`: per input block and distinct dilation, one ungrouped convolution producing every output
  block it feeds; contributions summed per output block (TensorFlow's own CPU kernels, which
  lack grouped and dilated gradients).

Each is `fn(layer, x, kernels) -> y` with `kernels` the layer's t slot kernels in x's dtype.
Measurements behind the rule: `docs/design/ps_conv.md`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow as tf

from keras_structconv._internals import onednn_enabled
from keras_structconv.layers import _conv_ops
from keras_structconv.layers.ps_conv.pattern import branch_padding, dilation_mask, slots_to_dense

__all__ = ["FORMULATIONS", "MASKED", "SLOTS", "SPLIT", "compute", "pick_formulation"]

SLOTS, MASKED, SPLIT = "slots", "masked", "split"
FORMULATIONS = (SLOTS, MASKED, SPLIT)

# Below 8 input channels per block, a few masked dense convolutions beat many thin ones (oneDNN
# pads groups to 16-wide vector blocks; TF's own kernels pay per convolution).
_MASKED_BELOW_BLOCK_CHANNELS = 8

# fwd+bwd time of PSConv2D with oneDNN off / on, geo-mean over ResNet-50's 3×3 stage shapes at
# batch 8, one thread (docs/design/ps_conv.md).
_ONEDNN_SPEEDUP = 2.8


def pick_formulation(block_channels: int) -> str:
    """SLOTS (grouped dilated convs, oneDNN) unless blocks are narrower than 8 channels
    (MASKED); SPLIT (no groups, no native dilation gradients) without oneDNN."""
    if block_channels < _MASKED_BELOW_BLOCK_CHANNELS:
        return MASKED
    if not onednn_enabled():
        _warn_without_onednn()
        return SPLIT
    return SLOTS


def compute(formulation: str, layer: Any, x: tf.Tensor, kernels: list[tf.Tensor]) -> tf.Tensor:
    """The output of PSConv2D `layer` (before bias and activation) computed by `formulation`."""
    return _FUNCTIONS[formulation](layer, x, kernels)


def _dilation_branches(layer, x) -> Iterator[tuple[int, list[int], Any, tf.Tensor]]:
    """(dilation, slots, plan, prepared input) per distinct dilation; slots of equal
    padding and subsampling share one prepared input."""
    by_dilation = {}
    for slot, dilation in enumerate(layer.dilation_pattern):
        by_dilation.setdefault(dilation, []).append(slot)
    prepared = {}
    for dilation, slots in by_dilation.items():
        padding = branch_padding(layer.kernel_size, layer.padding, dilation)
        plan = _conv_ops.plan_conv2d(x.shape, layer.kernel_size, layer.strides, dilation, padding)
        if plan.input_key not in prepared:
            prepared[plan.input_key] = _conv_ops.prepare_input(x, plan)
        yield dilation, slots, plan, prepared[plan.input_key]


def slot_convs(layer, x, kernels):
    """One grouped conv (t * groups groups) per slot; output blocks rolled into place."""
    t, groups, shape = layer.cyclic_interval, layer.groups, tf.shape(x)
    branches = []
    for _, slots, plan, source in _dilation_branches(layer, x):
        if len(slots) > 1 and _merging_pays(source, kernels[0], len(slots), plan):
            outputs = _merged_slot_convs(layer, source, [kernels[s] for s in slots], plan, shape)
        else:
            outputs = [_conv_ops.run_conv2d(source, kernels[s], plan, shape) for s in slots]
        for slot, y in zip(slots, outputs, strict=True):
            branches.append(_conv_ops.roll_blocks(y, -slot, t, groups))
    return _sum(branches)


def masked_convs(layer, x, kernels):
    """One dense (or `groups`-grouped) conv per distinct dilation, the kernel entries of the
    other dilations masked to zero: more FLOPs, fewer and wider convolutions."""
    dense = slots_to_dense(tf.stack(kernels), layer.groups)
    shape = tf.shape(x)
    branches = []
    for dilation, _, plan, source in _dilation_branches(layer, x):
        mask = dilation_mask(layer.dilation_pattern, layer.groups, dense.shape, dilation)
        mask = tf.constant(mask, dense.dtype)
        branches.append(_conv_ops.run_conv2d(source, dense * mask, plan, shape))
    return _sum(branches)


def split_convs(layer, x, kernels):
    """Per input block and distinct dilation, one ungrouped conv producing every output block
    that block feeds at that dilation; contributions summed per output block."""
    t, groups, shape = layer.cyclic_interval, layer.groups, tf.shape(x)
    contributions = [[] for _ in range(groups * t)]
    for _, slots, plan, source in _dilation_branches(layer, x):
        # tf.split, not slices: a slice's gradient writes a zero tensor of the whole input.
        inputs = tf.split(source, groups * t, axis=-1)
        columns = [tf.split(kernels[s], groups * t, axis=-1) for s in slots]
        for index, block_input in enumerate(inputs):
            kernel = tf.concat([slot_columns[index] for slot_columns in columns], axis=-1)
            y = _conv_ops.run_conv2d(block_input, kernel, plan, shape)
            parts = tf.split(y, len(slots), axis=-1) if len(slots) > 1 else [y]
            group, block = divmod(index, t)
            for slot, part in zip(slots, parts, strict=True):
                contributions[group * t + (block - slot) % t].append(part)
    return tf.concat([_sum(parts) for parts in contributions], axis=-1)


_FUNCTIONS = {SLOTS: slot_convs, MASKED: masked_convs, SPLIT: split_convs}


def _merged_slot_convs(layer, source, kernels, plan, shape):
    """Slots of equal dilation as one grouped conv with len(slots) times the outputs per
    group (one pass over the input instead of one per slot), split back per slot."""
    t, groups = layer.cyclic_interval, layer.groups
    kh, kw, bi, cout = kernels[0].shape
    bo = cout // (groups * t)
    merged = tf.concat([tf.reshape(k, (kh, kw, bi, groups * t, bo)) for k in kernels], -1)
    merged = tf.reshape(merged, (kh, kw, bi, len(kernels) * cout))
    y = _conv_ops.run_conv2d(source, merged, plan, shape)
    batch_dims = tf.shape(y)[:-1]
    y = tf.reshape(y, tf.concat([batch_dims, [groups * t, len(kernels) * bo]], 0))
    return [
        tf.reshape(part, tf.concat([batch_dims, [cout]], 0))
        for part in tf.split(y, len(kernels), axis=-1)
    ]


def _merging_pays(source, kernel, slots, plan):
    """Merging slots saves passes over their common input but copies their kernels (every call)
    and splits the merged output (a copy): worth it for strided convolutions (outputs a quarter
    of the input) whose static input holds more elements than the merged kernel."""
    if plan.rows.strides * plan.cols.strides < 2:
        return False
    size = 1
    for dim in source.shape:
        size *= dim or 1
    return size > slots * int(np.prod(kernel.shape))


def _sum(tensors):
    return tensors[0] if len(tensors) == 1 else tf.add_n(tensors)


_warned_without_onednn = False


def _warn_without_onednn():
    """Once per process: PSConv2D without oneDNN is correct but slower."""
    global _warned_without_onednn
    if _warned_without_onednn:
        return
    _warned_without_onednn = True
    warnings.warn(
        "TensorFlow runs without oneDNN here, whose CPU kernels lack fast grouped and dilated "
        f"convolutions: PSConv2D is about {_ONEDNN_SPEEDUP:.1f}x slower than with oneDNN. Set "
        "TF_ENABLE_ONEDNN_OPTS=1 before TensorFlow is imported to use it.",
        RuntimeWarning,
        stacklevel=3,
    )
