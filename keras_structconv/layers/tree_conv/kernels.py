"""The kernels of the paper variant: the split (gates, leaves, pooling) and the assembly
(upsampling, concatenation), each one XLA-compiled forward with hand-written backward kernels,
and `conv2d`, which runs each leaf convolution where it is fastest.

The leaf convolutions hold a third of a vanilla convolution's FLOPs; the rest is memory traffic,
which autodiff of the plain formula multiplies. Here every kernel reads its inputs once:
- split forward: all gate logits from one matmul (see `gates`), then each `a_l * x` pooled to
  its scale and the full-resolution leaf, zero-padded for a strided convolution;
- split backward: every `dL/da_l = sum_c x * dL/d(a_l x)` in one loop over `x`, the gate
  recurrence backwards, and `dx = sum_l a_l dL/d(a_l x) + sum_l dz_l w_l` in one pass;
- assembly backward: one cell sum per coarse leaf.
Gates and the split are computed in float32 whatever the dtype policy (inputs are cast inside the
kernels). The kernels are compiled once per (layout, input shape, dtype) and process.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import tensorflow as tf

from keras_structconv._internals import onednn_enabled
from keras_structconv.layers import _conv_ops
from keras_structconv.layers._portable import portable_ops_enabled
from keras_structconv.layers._xla import in_xla_context, jit
from keras_structconv.layers.tree_conv import geometry
from keras_structconv.layers.tree_conv.gates import gate_logits, leaf_ratio_grads, leaf_ratios

__all__ = ["assemble", "conv2d", "parse_and_split", "xla_conv2d"]


def _compiled(fn: Callable, *static) -> Callable:
    """`fn` with `static` bound, XLA-compiled, or called as it is inside a compiled caller."""
    compiled = jit(fn, *static)
    plain = functools.partial(fn, *static)
    return lambda *args: plain(*args) if in_xla_context() else compiled(*args)


# ----------------------------------------------------------------------------- convolutions


MIN_XLA_CONV_PIXELS = 16


class _ConvKernels:
    """`_conv_ops.conv2d` forward and its two gradients as XLA kernels."""

    def __init__(self, strides: int, padding: int | str):
        self.strides, self.padding = strides, padding
        self.forward = jit(_ConvKernels._forward, self)
        self.backward = jit(_ConvKernels._backward, self)

    def _forward(self, x, kernel):
        return _conv_ops.conv2d(x, kernel, self.strides, padding=self.padding)

    def _backward(self, x, kernel, dy):
        with tf.GradientTape() as tape:
            tape.watch([x, kernel])
            y = self._forward(x, kernel)
        return tape.gradient(y, [x, kernel], output_gradients=dy)


@functools.cache
def _conv_kernels(strides, padding, shapes, dtype) -> _ConvKernels:
    return _ConvKernels(strides, padding)


def conv2d(x: tf.Tensor, kernel: tf.Tensor, strides: int = 1,
           padding: int | str = 0) -> tf.Tensor:
    """`_conv_ops.conv2d(x, kernel, strides, padding=padding)`, run where it is fastest.

    Without oneDNN, on maps of at least `MIN_XLA_CONV_PIXELS` pixels, the forward pass and the
    gradients are XLA kernels: TensorFlow's own CPU filter gradient is several times slower than
    XLA's there (XLA is slower on smaller maps). Otherwise (also inside a compiled caller, and
    when tracing for export) it is TensorFlow's kernel."""
    pixels = x.shape[1] * x.shape[2] if None not in x.shape[1:3] else None
    if (onednn_enabled() or in_xla_context() or portable_ops_enabled()
            or (pixels is not None and pixels < MIN_XLA_CONV_PIXELS)):
        return _conv_ops.conv2d(x, kernel, strides, padding=padding)
    return xla_conv2d(x, kernel, strides, padding)


def xla_conv2d(x: tf.Tensor, kernel: tf.Tensor, strides: int = 1,
               padding: int | str = 0) -> tf.Tensor:
    """`_conv_ops.conv2d` with its forward pass and its gradients compiled as XLA kernels."""
    shapes = (tuple(x.shape), tuple(kernel.shape))
    kernels = _conv_kernels(strides, padding, shapes, x.dtype.name)

    @tf.custom_gradient
    def conv(x, kernel):
        return kernels.forward(x, kernel), lambda dy: kernels.backward(x, kernel, dy)

    return conv(x, kernel)


# ----------------------------------------------------------------------------- assembly


class _AssembleKernels:
    """`concat(upsampled coarse leaf outputs, full-resolution leaf output)` and its gradient."""

    def __init__(self, factors: tuple[int, ...], widths: tuple[int, ...]):
        self.factors = factors  # upsampling factor f / strides of each coarse leaf
        self.widths = widths
        self.forward = _compiled(_AssembleKernels._forward, self)
        self.backward = _compiled(_AssembleKernels._backward, self)

    def _forward(self, coarse, full):
        out_h, out_w = geometry.size(full, 1), geometry.size(full, 2)
        pieces = []
        for y, factor in zip(coarse, self.factors, strict=True):
            rows, cols = geometry.size(y, 1), geometry.size(y, 2)
            offset = (geometry.crop_offset(rows, factor, out_h),
                      geometry.crop_offset(cols, factor, out_w))
            pieces.append(geometry.expand_cells(y, factor, offset, out_h, out_w))
        return tf.concat(pieces + [full], axis=-1)

    def _backward(self, dy):
        out_h, out_w = geometry.size(dy, 1), geometry.size(dy, 2)
        grads, start = [], 0
        for factor, width in zip(self.factors, self.widths[:-1], strict=True):
            # A coarse leaf has ceil(out / factor) rows: ceil(n / f) = ceil(ceil(n / s) / (f / s)).
            rows, cols = geometry.cells(out_h, factor), geometry.cells(out_w, factor)
            part = tf.cast(dy[..., start : start + width], tf.float32)
            grads.append(tf.cast(geometry.cell_sum(part, factor, rows, cols), dy.dtype))
            start += width
        return grads + [dy[..., start:]]


@functools.cache
def _assemble_kernels(factors, widths, shapes, dtype) -> _AssembleKernels:
    # Keyed by shape too, so that each tf.function sees one signature (no retracing warnings).
    return _AssembleKernels(factors, widths)


def assemble(coarse: Sequence[tf.Tensor], full: tf.Tensor, factors: Sequence[int],
             widths: Sequence[int]) -> tf.Tensor:
    """`concat([upsample(y, factor) for y in coarse] + [full])`, cropped to `full`'s size."""
    coarse = list(coarse)
    shapes = tuple(tuple(t.shape) for t in coarse + [full])
    kernels = _assemble_kernels(tuple(factors), tuple(widths), shapes, full.dtype.name)

    @tf.custom_gradient
    def fused(*tensors):
        return kernels.forward(list(tensors[:-1]), tensors[-1]), kernels.backward

    return fused(*coarse, full)


# ----------------------------------------------------------------------------- split


def _channel_dots(x: tf.Tensor, factors: Sequence[Callable]) -> tf.Tensor:
    """`[sum(x * g, axis=-1) for g in factors]` stacked on the last axis, where `g(start, stop)`
    returns channels `start:stop` of a full-resolution factor."""
    channels = x.shape[-1]
    # The fewest channel slices that keep each reduction at <= 32 elements: XLA:CPU writes out
    # the operand of a longer reduction. Slices multiplied one by one: x is read once.
    parts = min(p for p in range(1, channels + 1) if channels % p == 0 and channels // p <= 32)
    width = channels // parts
    products = [
        tf.stack([x[..., i * width : (i + 1) * width] * g(i * width, (i + 1) * width)
                  for g in factors], axis=-2)
        for i in range(parts)
    ]
    return tf.reduce_sum(tf.add_n(products), axis=-1)


class _SplitKernels:
    """`x -> (a_l * x pooled by 2^(depth-l) for l < depth, a_depth * x padded by pad)`."""

    def __init__(self, depth: int, pad: int):
        self.depth = depth
        self.pad = pad  # zeros around the full-resolution leaf (strided convolution)
        self.forward = _compiled(_SplitKernels._forward, self)
        self.gate_grads = _compiled(_SplitKernels._gate_grads, self)
        self.input_grads = _compiled(_SplitKernels._input_grads, self)

    def _forward(self, x, logits, gate_bias):
        ratios = leaf_ratios(logits, gate_bias, self.depth)
        xf = tf.cast(x, tf.float32)
        leaves = []
        for level in range(self.depth):
            f = geometry.pool_factor(level, self.depth)
            leaf = geometry.weighted_cell_mean(xf, ratios[..., level : level + 1], f)
            leaves.append(tf.cast(leaf, x.dtype))
        full = ratios[..., self.depth :] * xf
        if self.pad:
            p = self.pad
            full = tf.pad(full, [[0, 0], [p, p], [p, p], [0, 0]])
        return leaves + [tf.cast(full, x.dtype)]

    def _leaf_grad(self, grads, level, h, w):
        """`g(start, stop)`: channels `start:stop` of `dL/d(a_level x)` at full resolution, float32
        (a coarse leaf's gradient is its pooled gradient spread over each cell)."""
        if level == self.depth:
            full = tf.cast(grads[level], tf.float32)
            if self.pad:
                p = self.pad
                full = full[:, p : p + h, p : p + w, :]
            return lambda start, stop: full[..., start:stop]
        f = geometry.pool_factor(level, self.depth)
        g = tf.cast(grads[level], tf.float32)
        g = g * (geometry.inverse_counts(h, f)[:, None, None]
                 * geometry.inverse_counts(w, f)[None, :, None])
        offset = (geometry.top_padding(h, f), geometry.top_padding(w, f))
        return lambda start, stop: geometry.expand_cells(g[..., start:stop], f, offset, h, w)

    def _gate_grads(self, x, logits, gate_bias, grads):
        """`(dL/d logits, dL/d gate_bias)`, float32."""
        xf = tf.cast(x, tf.float32)
        h, w = geometry.size(x, 1), geometry.size(x, 2)
        leaf_grads = [self._leaf_grad(grads, level, h, w) for level in range(self.depth + 1)]
        return leaf_ratio_grads(logits, gate_bias, _channel_dots(xf, leaf_grads), self.depth)

    def _input_grads(self, logits, gate_bias, logit_grads, gate_kernel, grads, dtype):
        """`dL/dx = sum_l a_l dL/d(a_l x) + sum_l dL/dz_l w_l`, in x's dtype."""
        ratios = leaf_ratios(logits, gate_bias, self.depth)
        h, w = geometry.size(ratios, 1), geometry.size(ratios, 2)
        channels = gate_kernel.shape[0]
        leaf_grads = [self._leaf_grad(grads, level, h, w)(0, channels)
                      for level in range(self.depth + 1)]
        dx = tf.add_n([ratios[..., i : i + 1] * g for i, g in enumerate(leaf_grads)])
        for level in range(self.depth):
            dx += logit_grads[..., level : level + 1] * gate_kernel[:, level]
        return tf.cast(dx, dtype)


@functools.cache
def _split_kernels(depth, pad, shape, dtype) -> _SplitKernels:
    # One set per (depth, padding, input shape, dtype), shared by every layer with them.
    return _SplitKernels(depth, pad)


def parse_and_split(x: tf.Tensor, gate_kernel: tf.Tensor, gate_bias: tf.Tensor, depth: int,
                    pad: int) -> list[tf.Tensor]:
    """Gates, leaves and pooling: `[pooled leaf 0, ..., pooled leaf depth-1, full leaf]`, the
    full-resolution leaf zero-padded by `pad` on each side."""
    kernels = _split_kernels(depth, pad, tuple(x.shape), x.dtype.name)

    @tf.custom_gradient
    def split(x, gate_kernel, gate_bias):
        logits = gate_logits(x, gate_kernel)
        outputs = kernels.forward(x, logits, gate_bias)

        def grad(*upstream):
            upstream = list(upstream)
            logit_grads, bias_grads = kernels.gate_grads(x, logits, gate_bias, upstream)
            dx = kernels.input_grads(
                logits, gate_bias, logit_grads, gate_kernel, upstream, x.dtype
            )
            flat_x = tf.reshape(x, [-1, x.shape[-1]])
            flat_dz = tf.reshape(tf.cast(logit_grads, x.dtype), [-1, depth])
            # (dz^T x)^T: oneDNN is faster with the thin operand transposed than with x.
            kernel_grads = tf.transpose(tf.matmul(flat_dz, flat_x, transpose_a=True))
            return dx, tf.cast(kernel_grads, gate_kernel.dtype), bias_grads

        return outputs, grad

    return split(x, gate_kernel, gate_bias)
