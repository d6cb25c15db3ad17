"""The training formulation of TAM: compiled kernels with a hand-written backward pass.

The module is memory-bound (a few operations per input element), so its cost is the number of
passes over the `(batch, height, width, C)` tensors. Autodiff of the definition makes about
twenty; these kernels make about five: the forward pass reads `x` twice and writes the output
once; the backward pass reads `dy` and `x` for the logit gradient and again, with the level-1
gradient, to write `dx`. Every level above the first works on tensors of at most C/g channels.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import tensorflow as tf

from keras_structconv.layers._xla import in_xla_context, jit
from keras_structconv.layers.tree_attention import kernels, ops
from keras_structconv.layers.tree_attention.levels import Level, level_params, param_offset

__all__ = ["FusedTree", "fused_tree"]


class FusedTree:
    """`x * sigmoid(tree(x))` and its gradients for one level layout, as compiled kernels.

    Each kernel is compiled on its own: XLA:CPU fuses greedily and, inside one cluster,
    recomputes cheap-looking chains (the whole tree) in every consumer, so the tensors that must
    be written once are the outputs of separate kernels (a launch costs ~10 us).
    """

    def __init__(self, levels: Sequence[Level]):
        self.levels = tuple(levels)
        self.forward = jit(kernels.forward, self.levels)
        self.level = [jit(kernels.level_pre_activation, lv.fan_in) for lv in self.levels]
        self.paired_level = jit(kernels.paired_level_pre_activation)
        self.logit_gradient = jit(kernels.logit_gradient)
        self.level_gradient = jit(kernels.level_gradient)
        self.paired_level_gradient = jit(kernels.paired_level_gradient)
        self.input_gradient = jit(kernels.input_gradient)
        self.paired_input_gradient = jit(kernels.paired_input_gradient)

    def gate(self, x: tf.Tensor, params: Sequence[tf.Tensor]) -> tf.Tensor:
        """`sigmoid(tree(x))` for a float32 `x` (not compiled)."""
        return tf.sigmoid(kernels.pre_activations(self.levels, x, params)[-1])

    def _paired(self, x):
        """Per level: whether its kernels work on pairs (group size 2, float32, outside XLA)."""
        # Inside an XLA cluster (a model compiled with jit_compile) the complex bitcasts are
        # unavailable and the generic kernels are inlined into the caller's cluster.
        usable = x.dtype == tf.float32 and not in_xla_context()
        return [usable and level.fan_in == 2 for level in self.levels]

    def forward_pass(self, x, params):
        paired = self._paired(x)
        return self.forward(x, ops.as_pairs(x) if paired[0] else None, params)

    def _pre_activations(self, x, per_level, paired):
        zs, inputs = [], x
        for index, (kernel, bias, _) in enumerate(per_level):
            alpha_below = per_level[index - 1][2] if index else None
            if paired[index]:
                inputs = self.paired_level(ops.as_pairs(inputs), kernel, bias, alpha_below)
            else:
                inputs = self.level[index](inputs, kernel, bias, alpha_below)
            zs.append(inputs)
        return zs

    def backward_pass(self, dy, x, params):
        per_level, paired = level_params(self.levels, params), self._paired(x)
        zs = self._pre_activations(x, per_level, paired)
        grads = [None] * len(params)
        logit = zs[-1]
        dz = self.logit_gradient(dy, x, logit)
        for index in reversed(range(1, len(per_level))):
            kernel = per_level[index][0]
            alpha_below = per_level[index - 1][2]
            if paired[index]:
                dz_pairs, dkernel, dbias, dalpha_below = self.paired_level_gradient(
                    dz, ops.as_pairs(zs[index - 1]), kernel, alpha_below
                )
                dz = ops.from_pairs(dz_pairs)
            else:
                dz, dkernel, dbias, dalpha_below = self.level_gradient(
                    dz, zs[index - 1], kernel, alpha_below
                )
            offset = param_offset(self.levels, index)
            grads[offset : offset + 2] = [dkernel, dbias]
            grads[param_offset(self.levels, index - 1) + 2] = dalpha_below
        kernel = per_level[0][0]
        if paired[0]:
            dx, dkernel, dbias = self.paired_input_gradient(
                ops.as_pairs(dy), ops.as_pairs(x), dz, logit, kernel
            )
            dx = ops.from_pairs(dx)
        else:
            dx, dkernel, dbias = self.input_gradient(dy, x, dz, logit, kernel)
        grads[0:2] = [dkernel, dbias]
        return [dx] + grads

    def __call__(self, x: tf.Tensor, params: Sequence[tf.Tensor]) -> tf.Tensor:
        @tf.custom_gradient
        def gated(x, *params):
            def grad(dy):
                return self.backward_pass(dy, x, list(params))

            if tf.executing_eagerly():
                # The forward kernel is never differentiated (`grad` is its gradient), but an
                # eager tape would still look for the gradients of its XLA-only ops.
                x, params = tf.stop_gradient(x), [tf.stop_gradient(p) for p in params]
            return self.forward_pass(x, list(params)), grad

        return gated(x, *params)


@functools.cache
def fused_tree(levels: tuple[Level, ...]) -> FusedTree:
    """One `FusedTree` per level layout, shared by every module of that layout (the sixteen
    modules of a ResNet-50 trace and compile four sets of kernels, not sixteen)."""
    return FusedTree(levels)
