"""TreeAttention (TAM): tree-structured attention module.

Reference: "Tree-structured Attention Module for Image Classification" (ICLR 2020 submission,
anonymous; see ../shared/papers/tam.txt), Section 2, Eq. 1-2.

Definition (SPEC §3, exact integer arithmetic). For an input `x` with `C` channels and group size
`g`:

    z = x, n = C
    while n % g == 0 and n > 1:
        z = GroupConv1x1_{n -> n/g, groups=n/g}(z)     # output j sees channels j*g .. j*g+g-1
        n = n / g
        if n > 1: z = PReLU(z)                          # per-channel slopes, initialised to 0
    if n > 1:
        z = Conv1x1_{n -> 1}(z)                         # the paper's final 1x1 convolution
    output = x * sigmoid(z)                             # one spatial map, broadcast over channels

So C=64, g=2 gives 64 -> 32 -> ... -> 2 -> 1 (six levels, 251 weights) and C=80, g=2 gives
80 -> 40 -> 20 -> 10 -> 5, then a 1x1 conv 5 -> 1. Every level is a convolution with bias. The
authors' release derives the depth from a float logarithm and crashes for C=80, g=2; the integer
rule above is the paper's text.

Implementation. The module is memory-bound: a few operations per input element, so its cost is
the number of passes over the `(batch, height, width, C)` tensors, and on CPU the quality of the
loops that make them. Autodiff of the formula makes about twenty passes. This layer uses
`tf.custom_gradient` with small XLA-compiled kernels (the surrounding model is not compiled):

- forward, one kernel: a loop over pixels evaluates the whole tree and writes the gate, one
  elementwise loop writes `x * gate` (`x` read twice, the output written once);
- backward: the pre-activation of every level, one kernel per level (level 1 reads `x`);
  `d loss / d logit = sum_c(dy * x) * gate * (1 - gate)` (reads `dy`, `x`); one kernel per level
  from the top down to level 2 writes the gradient of the level below and sums the weight
  gradients over pixels; one kernel writes `dx = dy * gate + expand(dz1 * w1)` (reads `dy`,
  `dz1`) and sums `x * expand(dz1)` (reads `x`, `dz1`) for the level-1 kernel gradient.

Everything runs in float32 (a half-precision input is cast inside the kernels); the output and the
input gradient come back in the input's dtype. Inside a model compiled with `jit_compile=True` the
kernels are inlined into the model's cluster. Grouped 1x1 convolutions never go through
`keras.layers.Conv2D(groups=...)`.

What was measured (issue 5; single-thread CPU time of forward+backward over the 3x3 Conv2D's,
batch 8, at 64@56², 128@28², 256@14², 512@7²; the shared machine was busy, so these are
preliminary): XLA over the autodiff of the formula ~0.68/0.62/0.23/0.13; one custom-gradient
backward kernel 0.9/0.5/0.49/0.26, then 4x slower once the tree was fused, because XLA:CPU
recomputes a fused reduction per use (`_grouped_sum`) and recomputes chains in every consumer of a
cluster (hence one kernel per level); block-diagonal matmuls (wasted FLOPs grow with C) and
strided slices outside XLA (a copy each) lose. The steps kept, each measured: sums over long axes
8 elements at a time (`_channel_sum`; `_pixel_sum` over all pixels of the batch: XLA's own
reduction of a product is 4-5x slower), group-size-2 levels seen as complex pairs (`_as_pairs`:
2.5x faster interleaved writes), the weight-gradient sums of a level as one stacked reduction
(`_pixel_sums`). Result: ~0.27/0.16/0.11/0.065 single-threaded; with two threads (the benchmark
runner, load ~1) 0.42/0.30/0.24/0.14, because the 3x3 conv runs 1.7x faster on two cores while
a memory-bound pass does not (one core already uses the memory bandwidth). Tried and dropped: one
autodiff kernel for the small top levels, merging the levels of small maps into one kernel, two
levels per kernel, keeping the pre-activations from a level-by-level forward pass for the backward
pass, level 1 (and 2) as separate forward kernels (all slower or within noise).

Compilation: about 2L+2 kernels per channel count and input shape (L levels), ~0.2 s each, paid on
the first step (a TAM-ResNet-50 compiles four channel counts; its first step took 35-90 s longer
than ResNet-50's on the busy two-core machine).
"""

import functools

import keras
import tensorflow as tf
from tensorflow.compiler.tf2xla.python.xla import optimization_barrier
from tensorflow.python.ops import control_flow_util


def tree_levels(channels, group_size):
    """The 1x1 convolution levels of a TAM: a list of `(in_channels, fan_in, out_channels, prelu)`.

    `fan_in` is the number of consecutive input channels each output channel reads (the group
    size, or all remaining channels for the final 1x1 conv); `prelu` says whether a PReLU follows.

    >>> tree_levels(80, 2)[-2:]
    [(10, 2, 5, True), (5, 5, 1, False)]
    """
    levels = []
    n = channels
    while n % group_size == 0 and n > 1:
        levels.append((n, group_size, n // group_size, n // group_size > 1))
        n //= group_size
    if n > 1:
        levels.append((n, n, 1, False))
    return levels


def _grouped_sum(z, kernel, fan_in):
    """Grouped 1x1 conv without bias: output j = sum_k z[..., j*fan_in + k] * kernel[0, 0, k, j].

    Written as a sum of `fan_in` strided slices rather than a reshape + reduce: inside one XLA
    fusion a reduction is a loop whose result is recomputed for every use (a PReLU uses its input
    twice, so a fused tree of reductions costs 2^depth), while slices are plain arithmetic that
    LLVM computes once.
    """
    return tf.add_n([z[..., k::fan_in] * kernel[0, 0, k] for k in range(fan_in)])


def _per_group(kernel):
    """`(1, 1, fan_in, out)` kernel -> `(out, fan_in)`: row j holds the weights of output j."""
    return tf.transpose(kernel[0, 0])


def _expand(dz, kernel):
    """Transpose of `_grouped_sum`: `(..., out)` -> `(..., out * fan_in)`, dz[j] * kernel[k, j]."""
    spread = dz[..., None] * _per_group(kernel)  # (..., out, fan_in)
    channels = spread.shape[-2] * spread.shape[-1]
    return tf.reshape(spread, tf.concat([tf.shape(dz)[:-1], [channels]], 0))


def _prelu(z, alpha):
    return tf.maximum(z, 0.0) + alpha * tf.minimum(z, 0.0)


def _step(n):
    """The largest power of two <= 8 dividing n (XLA:CPU's loop over 7 elements is 7x slower
    than over 8)."""
    step = 8
    while n % step:
        step //= 2
    return step


def _unmerged(t):
    """Keeps XLA's algebraic simplifier from merging the reduction that produced `t` with the one
    that consumes it (the barrier is removed before fusion; it costs nothing)."""
    return optimization_barrier(t)[0]


# Sums over long axes. XLA:CPU emits a reduction of 2, 4 or 8 elements fused with its producer as
# a fast loop; a longer one goes through a slow path that first writes its operand out in full (a
# product `x * dz` would cost two extra passes over the tensor) or walks it column by column. Long
# sums are therefore taken 8 (or 4, 2) elements at a time first.
_STEP = 8


def _channel_sum(t):
    """`sum(t, axis=-1, keepdims=True)` in steps of 8 (or 4, 2) channels."""
    while t.shape[-1] > 1:
        step = _step(t.shape[-1])
        if step == 1:
            return tf.reduce_sum(t, axis=-1, keepdims=True)
        shape = tf.concat([tf.shape(t)[:-1], [t.shape[-1] // step, step]], 0)
        t = _unmerged(tf.reduce_sum(tf.reshape(t, shape), axis=-1))
    return t


def _pixel_sum(t):
    """Sum over batch, height and width of `(batch, height, width, ...)`: first over groups of 8
    consecutive pixels (zero rows pad the last group), then over the groups."""
    tail = t.shape[3:]
    flat = tf.reshape(t, tf.concat([[-1], tail], 0))
    pixels = tf.shape(flat)[0]
    # A compile-time constant for XLA (shapes are static there).
    padding = tf.concat([[[0, (-pixels) % _STEP]], tf.zeros([len(tail), 2], tf.int32)], 0)
    groups = tf.reshape(tf.pad(flat, padding), tf.concat([[-1, _STEP], tail], 0))
    return tf.reduce_sum(_unmerged(tf.reduce_sum(groups, axis=1)), axis=0)


def _pixel_sums(*terms):
    """`[_pixel_sum(t) for t in terms]` (same shapes and dtype) as one reduction: XLA:CPU gives
    every reduction its own loop, which would read the shared operands once per term. (Stacked
    before the channel axis: stacked last, the loop would write interleaved partial sums.)"""
    return tf.unstack(_pixel_sum(tf.stack(terms, axis=-2)), axis=-2)


def _grouped(t, fan_in):
    """`(..., out * fan_in)` -> `(..., out, fan_in)`."""
    return tf.reshape(t, tf.concat([tf.shape(t)[:-1], [t.shape[-1] // fan_in, fan_in]], 0))


def _kernel_gradient(inputs, dz, kernel):
    """Gradient of a grouped 1x1 kernel: sum over pixels of `inputs[j*fan_in + k] * dz[j]`."""
    fan_in = kernel.shape[2]
    per_group = _pixel_sum(_grouped(inputs, fan_in) * dz[..., None])  # (out, fan_in)
    return tf.reshape(tf.transpose(per_group), kernel.shape)


# ---------------------------------------------------------------------------- XLA kernels
# Each kernel below is compiled on its own (`_jit`): XLA:CPU fuses greedily and, inside one
# cluster, recomputes cheap-looking chains (the whole tree) in every consumer, so the tensors that
# must be written once are the outputs of separate kernels. A kernel launch costs ~10 us.
#
# Group size 2 ("paired" kernels). XLA:CPU vectorises `t[..., c]` against `u[..., c // 2]`
# (every interleaved read or write between a level and the level above) poorly: writing
# `dx = dy * gate + expand(dz1 * w1)` that way costs 2.5 times a plain elementwise pass. So for
# float32 tensors the kernels see a level's input as complex64 pairs `(2j, 2j+1) -> j` (a
# zero-copy `tf.bitcast` outside XLA, which cannot bitcast complex numbers): every access is then
# aligned with the level's output channels.


def _jit(fn, *static):
    # partial(), not a lambda or bound method: tf.function pools its retracing statistics per
    # code object, and the sixteen modules of a ResNet would warn about "frequent retracing".
    return tf.function(functools.partial(fn, *static), jit_compile=True, autograph=False)


def _as_pairs(t):
    """float32 `(..., 2m)` -> complex64 `(..., m)`, channels `(2j, 2j+1)` as `j` (no copy)."""
    return tf.bitcast(_grouped(t, 2), tf.complex64)


def _from_pairs(t):
    """complex64 `(..., m)` -> float32 `(..., 2m)`, the inverse of `_as_pairs` (no copy)."""
    flat = tf.bitcast(t, tf.float32)
    return tf.reshape(flat, tf.concat([tf.shape(t)[:-1], [2 * t.shape[-1]]], 0))


def _pair_parts(pairs, alpha=None):
    """Real and imaginary parts (channels 2j and 2j+1), through the PReLU of slopes `alpha`."""
    even, odd = tf.math.real(pairs), tf.math.imag(pairs)
    if alpha is not None:
        even, odd = _prelu(even, alpha[0::2]), _prelu(odd, alpha[1::2])
    return even, odd


def _forward_kernel(tree, x, x_pairs, params):
    """`x * sigmoid(tree(x))`: one loop over pixels for the gate (slices: every node computed
    once), one elementwise loop for the product. `x_pairs`: `x` as pairs, or None."""
    xf = tf.cast(x, "float32")
    if x_pairs is None:
        logit = tree.pre_activations(xf, params)[-1]
    else:
        kernel, bias, alpha = tree.split(params)[0]
        even, odd = _pair_parts(x_pairs)
        z1 = even * kernel[0, 0, 0] + odd * kernel[0, 0, 1] + bias
        logit = tree.pre_activations(z1, params, first=1)[-1]
    return tf.cast(xf * tf.sigmoid(logit), x.dtype)


def _level_kernel(fan_in, inputs, kernel, bias, alpha_below):
    """Pre-activation of one level from the input (level 1) or the level below's pre-activation."""
    a = tf.cast(inputs, "float32")
    if alpha_below is not None:
        a = _prelu(a, alpha_below)
    return _grouped_sum(a, kernel, fan_in) + bias


def _paired_level_kernel(pairs, kernel, bias, alpha_below):
    even, odd = _pair_parts(pairs, alpha_below)
    return even * kernel[0, 0, 0] + odd * kernel[0, 0, 1] + bias


def _logit_gradient_kernel(dy, x, logit):
    """`d loss / d logit = sum_c(dy * x) * gate * (1 - gate)`: reads `dy` and `x` once."""
    gate = tf.sigmoid(logit)
    return _channel_sum(tf.cast(dy, "float32") * tf.cast(x, "float32")) * gate * (1.0 - gate)


def _level_gradient_kernel(dz, z_below, kernel, alpha_below):
    """Gradients of level l >= 2 from `dz = d loss / d z_l`: its kernel and bias, the slopes of
    the PReLU below it, and `d loss / d z_{l-1}`."""
    a_below = _prelu(z_below, alpha_below)
    d_below = _expand(dz, kernel)
    dalpha = _pixel_sum(d_below * tf.minimum(z_below, 0.0))
    dz_below = tf.where(z_below > 0.0, d_below, d_below * alpha_below)
    return dz_below, _kernel_gradient(a_below, dz, kernel), _pixel_sum(dz), dalpha


def _paired_level_gradient_kernel(dz, z_below_pairs, kernel, alpha_below):
    """`_level_gradient_kernel` on pairs; `d loss / d z_{l-1}` comes back as pairs.

    The weight gradients need four sums per pair, `sum dz * max(z, 0)` and `sum dz * min(z, 0)`
    for both halves (with `prelu(z) = max(z, 0) + alpha * min(z, 0)`), taken as two complex sums
    in one reduction with the bias sum.
    """
    z_even, z_odd = _pair_parts(z_below_pairs)
    alpha_even, alpha_odd = alpha_below[0::2], alpha_below[1::2]
    d_even, d_odd = dz * kernel[0, 0, 0], dz * kernel[0, 0, 1]
    dz_below = tf.complex(
        tf.where(z_even > 0.0, d_even, d_even * alpha_even),
        tf.where(z_odd > 0.0, d_odd, d_odd * alpha_odd),
    )
    dz_pairs = tf.complex(dz, 0.0)
    positive, negative, dbias = _pixel_sums(
        tf.complex(tf.maximum(z_even, 0.0), tf.maximum(z_odd, 0.0)) * dz_pairs,
        tf.complex(tf.minimum(z_even, 0.0), tf.minimum(z_odd, 0.0)) * dz_pairs,
        dz_pairs,
    )
    negative_even, negative_odd = tf.math.real(negative), tf.math.imag(negative)
    dkernel = tf.stack(
        [
            tf.math.real(positive) + alpha_even * negative_even,
            tf.math.imag(positive) + alpha_odd * negative_odd,
        ]
    )
    dalpha = tf.stack([kernel[0, 0, 0] * negative_even, kernel[0, 0, 1] * negative_odd], axis=-1)
    return (
        dz_below,
        tf.reshape(dkernel, kernel.shape),
        tf.math.real(dbias),
        tf.reshape(dalpha, alpha_below.shape),
    )


def _input_gradient_kernel(dy, x, dz1, logit, kernel):
    """`dx = dy * gate + expand(dz1 * w1)` and the level-1 kernel and bias gradients."""
    xf = tf.cast(x, "float32")
    dx = tf.cast(dy, "float32") * tf.sigmoid(logit) + _expand(dz1, kernel)
    return tf.cast(dx, x.dtype), _kernel_gradient(xf, dz1, kernel), _pixel_sum(dz1)


def _paired_input_gradient_kernel(dy_pairs, x_pairs, dz1, logit, kernel):
    gate = tf.sigmoid(logit)
    dy_even, dy_odd = _pair_parts(dy_pairs)
    dx = tf.complex(dy_even * gate + dz1 * kernel[0, 0, 0], dy_odd * gate + dz1 * kernel[0, 0, 1])
    dz1_pairs = tf.complex(dz1, 0.0)
    dkernel, dbias = _pixel_sums(x_pairs * dz1_pairs, dz1_pairs)
    dkernel = tf.stack([tf.math.real(dkernel), tf.math.imag(dkernel)])
    return dx, tf.reshape(dkernel, kernel.shape), tf.math.real(dbias)


def _xla_context():
    """Whether ops created now end up in an XLA cluster (e.g. a model compiled with jit_compile):
    there the pairs (complex bitcasts) are unavailable and the generic kernels are inlined."""
    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


class _TreeKernels:
    """The compiled forward and backward computations of one level layout (float32 inside).

    Forward: one kernel, `x` read twice (gate, product) and the output written once.

    Backward: the pre-activation of every level (level 1 reads `x`); `d loss / d logit` (reads
    `dy` and `x`); level by level down to level 2, the gradient of the level below and the weight
    gradients (tensors of at most C/g channels); at level 1, one kernel writes
    `dx = dy * gate + expand(dz1 * w1)` and sums `x * expand(dz1)` over pixels for the kernel
    gradient (reads `dy`, `x` and `dz1`). Autodiff of the formula makes about four times as
    many passes over the input-sized tensors.
    """

    def __init__(self, levels):
        self.levels = levels
        self.forward = _jit(_forward_kernel, self)
        self.level = [_jit(_level_kernel, fan_in) for _, fan_in, _, _ in levels]
        self.paired_level = _jit(_paired_level_kernel)
        self.logit_gradient = _jit(_logit_gradient_kernel)
        self.level_gradient = _jit(_level_gradient_kernel)
        self.paired_level_gradient = _jit(_paired_level_gradient_kernel)
        self.input_gradient = _jit(_input_gradient_kernel)
        self.paired_input_gradient = _jit(_paired_input_gradient_kernel)

    def split(self, params):
        """Flat `[k1, b1, (a1), k2, b2, (a2), ...]` -> per-level `(kernel, bias, alpha-or-None)`."""
        out, i = [], 0
        for _, _, _, prelu in self.levels:
            alpha = params[i + 2] if prelu else None
            out.append((params[i], params[i + 1], alpha))
            i += 3 if prelu else 2
        return out

    def pre_activations(self, x, params, first=0):
        """`[z_1, ..., z_L]`, the output of each level before its PReLU (`z_L` is the logit).
        With `first=i`, `x` is the pre-activation of level i and the levels above it follow."""
        levels = self.split(params)
        zs, a = [], x
        if first:
            zs.append(x)
            alpha = levels[first - 1][2]
            a = x if alpha is None else _prelu(x, alpha)
        for (_, fan_in, _, _), (kernel, bias, alpha) in zip(
            self.levels[first:], levels[first:], strict=True
        ):
            zs.append(_grouped_sum(a, kernel, fan_in) + bias)
            a = zs[-1] if alpha is None else _prelu(zs[-1], alpha)
        return zs

    def gate(self, x, params):
        return tf.sigmoid(self.pre_activations(x, params)[-1])

    def _paired(self, x):
        """Per level: whether its kernels work on pairs (group size 2, float32, outside XLA)."""
        usable = x.dtype == tf.float32 and not _xla_context()
        return [usable and fan_in == 2 for _, fan_in, _, _ in self.levels]

    def forward_pass(self, x, params):
        paired = self._paired(x)
        return self.forward(x, _as_pairs(x) if paired[0] else None, params)

    def backward_pass(self, dy, x, params):
        levels, paired = self.split(params), self._paired(x)
        zs, inputs = [], x
        for index, (kernel, bias, _) in enumerate(levels):
            alpha_below = levels[index - 1][2] if index else None
            if paired[index]:
                inputs = self.paired_level(_as_pairs(inputs), kernel, bias, alpha_below)
            else:
                inputs = self.level[index](inputs, kernel, bias, alpha_below)
            zs.append(inputs)
        grads = [None] * len(params)
        logit = zs[-1]
        dz = self.logit_gradient(dy, x, logit)
        for index in reversed(range(1, len(levels))):
            kernel, _, _ = levels[index]
            alpha_below = levels[index - 1][2]
            if paired[index]:
                dz_pairs, dkernel, dbias, dalpha_below = self.paired_level_gradient(
                    dz, _as_pairs(zs[index - 1]), kernel, alpha_below
                )
                dz = _from_pairs(dz_pairs)
            else:
                dz, dkernel, dbias, dalpha_below = self.level_gradient(
                    dz, zs[index - 1], kernel, alpha_below
                )
            offset = self._offset(index)
            grads[offset : offset + 2] = [dkernel, dbias]
            grads[self._offset(index - 1) + 2] = dalpha_below
        if paired[0]:
            dx, dkernel, dbias = self.paired_input_gradient(
                _as_pairs(dy), _as_pairs(x), dz, logit, levels[0][0]
            )
            dx = _from_pairs(dx)
        else:
            dx, dkernel, dbias = self.input_gradient(dy, x, dz, logit, levels[0][0])
        grads[0:2] = [dkernel, dbias]
        return [dx] + grads

    def _offset(self, index):
        """Position of level `index`'s kernel in the flat parameter list."""
        return sum(3 if prelu else 2 for _, _, _, prelu in self.levels[:index])

    def __call__(self, x, params):
        @tf.custom_gradient
        def gated(x, *params):
            def grad(dy):
                return self.backward_pass(dy, x, list(params))

            if tf.executing_eagerly():
                # The forward kernel is never differentiated (grad above is its gradient); an
                # eager tape would still look for the gradients of its XLA-only ops.
                x, params = tf.stop_gradient(x), [tf.stop_gradient(p) for p in params]
            return self.forward_pass(x, list(params)), grad

        return gated(x, *params)


@functools.cache
def _kernels_for(levels):
    """One `_TreeKernels` per level layout, shared by every module of that layout: the sixteen
    modules of a ResNet-50 trace and compile four sets of kernels, not sixteen."""
    return _TreeKernels(levels)


@keras.saving.register_keras_serializable(package="keras_structconv")
class TreeAttention(keras.layers.Layer):
    """Tree-structured attention module (TAM): `x * sigmoid(tree(x))`, one gate per pixel.

    Point-wise group convolutions of group size `group_size` with per-channel PReLU (slopes start
    at 0) halve (for `group_size=2`) the channels level by level until the count is no longer
    divisible by the group size; a final 1x1 conv reduces what is left to one channel; the sigmoid
    of that map multiplies every channel of the input. Works for any channel count (C=80, g=2:
    80 -> 40 -> 20 -> 10 -> 5, then 5 -> 1). The module adds
    `sum over levels of (in_channels + out_channels * (1 + prelu))` weights: 251 for C=64, g=2.

    Args:
        group_size: integer >= 2, the number of neighbouring channels each unit combines.
        kernel_initializer: initializer of the 1x1 kernels (default `"he_normal"`, fan-in = the
            group size, as the paper initialises following He et al.).
        bias_initializer: initializer of the biases (default zeros).
        alpha_initializer: initializer of the PReLU slopes (default zeros, as the paper's PReLU).
        kernel_regularizer, bias_regularizer, alpha_regularizer: optional regularizers (the paper
            applies weight decay to the PReLU slopes too).
        kernel_constraint, bias_constraint, alpha_constraint: optional constraints.
        **kwargs: base `Layer` arguments (`name`, `dtype`, `trainable`).

    Input shape:
        4-D tensor `(batch, height, width, channels)` (channels_last); height and width may be
        `None`, the channel count must be known.

    Output shape:
        Same as the input.

    Weights (level i = 0, 1, ...): `kernel_i` of shape `(1, 1, fan_in, out_channels)` (the layout
    of `keras.layers.Conv2D(out_channels, 1, groups=out_channels)`), `bias_i`, and `alpha_i` for
    every level followed by a PReLU.

    Attributes (after build):
        levels: the channel counts from the input to the gate, e.g. `(80, 40, 20, 10, 5, 1)`.
        num_levels: the number of 1x1 convolution levels (`len(levels) - 1`).

    Example:

    >>> layer = TreeAttention(group_size=2)
    >>> y = layer(np.random.rand(2, 8, 8, 64).astype("float32"))
    >>> layer.levels, layer.count_params()
    ((64, 32, 16, 8, 4, 2, 1), 251)

    Reference: "Tree-structured Attention Module for Image Classification", ICLR 2020 submission
    (anonymous), OpenReview.
    """

    supports_jit = True

    def __init__(
        self,
        group_size=2,
        kernel_initializer="he_normal",
        bias_initializer="zeros",
        alpha_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        alpha_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        alpha_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 2:
            raise ValueError(
                f"`group_size` must be an integer >= 2. Received: group_size={group_size!r}"
            )
        self.group_size = group_size
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.alpha_initializer = keras.initializers.get(alpha_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.alpha_regularizer = keras.regularizers.get(alpha_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.alpha_constraint = keras.constraints.get(alpha_constraint)
        self.levels = None
        self.num_levels = None

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                "TreeAttention expects a 4-D input (batch, height, width, channels). "
                f"Received: input_shape={tuple(input_shape)}"
            )
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(
                "The channel dimension of the input of TreeAttention must be known. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: channels})
        level_list = tree_levels(channels, self.group_size)
        self.levels = (channels,) + tuple(out for _, _, out, _ in level_list)
        self.num_levels = len(level_list)
        # autocast=False: the fused kernels use the weights in float32 whatever the policy (the
        # input is cast inside the kernels, which costs no extra pass over it).
        self._tree_weights = []
        for i, (_, fan_in, out, prelu) in enumerate(level_list):
            self._tree_weights.append(
                self.add_weight(
                    name=f"kernel_{i}",
                    shape=(1, 1, fan_in, out),
                    initializer=self.kernel_initializer,
                    regularizer=self.kernel_regularizer,
                    constraint=self.kernel_constraint,
                    autocast=False,
                )
            )
            self._tree_weights.append(
                self.add_weight(
                    name=f"bias_{i}",
                    shape=(out,),
                    initializer=self.bias_initializer,
                    regularizer=self.bias_regularizer,
                    constraint=self.bias_constraint,
                    autocast=False,
                )
            )
            if prelu:
                self._tree_weights.append(
                    self.add_weight(
                        name=f"alpha_{i}",
                        shape=(out,),
                        initializer=self.alpha_initializer,
                        regularizer=self.alpha_regularizer,
                        constraint=self.alpha_constraint,
                        autocast=False,
                    )
                )
        self._kernels = _kernels_for(tuple(level_list)) if level_list else None

    def _params(self):
        return [tf.convert_to_tensor(w.value) for w in self._tree_weights]

    def call(self, inputs):
        if self._kernels is None:  # C = 1: the gate is sigmoid(x) itself
            return inputs * tf.cast(tf.sigmoid(tf.cast(inputs, "float32")), inputs.dtype)
        return self._kernels(inputs, self._params())

    def gate(self, inputs):
        """The attention map `sigmoid(tree(x))`, shape `(batch, height, width, 1)`, float32."""
        if not self.built:
            self.build(tuple(inputs.shape))
        x = tf.cast(tf.convert_to_tensor(inputs), "float32")
        if self._kernels is None:
            return tf.sigmoid(x)
        return self._kernels.gate(x, self._params())

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "group_size": self.group_size,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "alpha_initializer": keras.initializers.serialize(self.alpha_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "alpha_regularizer": keras.regularizers.serialize(self.alpha_regularizer),
                "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
                "bias_constraint": keras.constraints.serialize(self.bias_constraint),
                "alpha_constraint": keras.constraints.serialize(self.alpha_constraint),
            }
        )
        return config


TAM = TreeAttention
