"""TreeConv2D: tree convolution.

Reference: G. Wang et al., "Grammatically Recognizing Images with Tree Convolution" (TreeConv),
KDD 2020 (https://github.com/wanggrun/TreeConv; ../shared/papers/treeconv.txt), Section 3,
Eq. 1-5, and SPEC §2.

Definition (`variant="paper"`, the default). For an input `x` with `C` channels and tree depth `d`:

    S = x
    for l in 0 .. d-1:                         # parse (Eq. 1-2): a chain of binary splits
        rho_l = sigmoid(conv1x1_{C->1}(S))     # one gate per pixel, with bias
        L_l = rho_l * S                        # left child: a terminal node (leaf)
        S = S - L_l                            # right child: parsed further
    leaves = L_0, ..., L_{d-1}, S              # they sum exactly to x (normalisation)

    y_l = up_{2^(d-l)}(conv_KxK(avgpool_{2^(d-l)}(L_l)))  for l < d    # Eq. 3-5
    y_d = conv_KxK(S)                                      # the last leaf at full resolution
    y = concat(y_0, ..., y_d)                              # leaf order, `filters` channels

(The paper writes `rho = 1 / (1 + exp(W S))`, i.e. `sigmoid(-W S)`: the same gate with W negated;
SPEC's `sigmoid(conv1x1(S))` with a bias is used here.)

Leaf `l` gets `width[l]` output channels, `width[i % (d+1)] += 1` for i in range(filters) (64
filters, d=2: 22, 21, 21), so every depth works with every width. The leaf kernels
`kernel_0 .. kernel_d` (shapes `(K, K, C, width[l])`) are the output columns of one vanilla
`(K, K, C, filters)` kernel, drawn as such by `kernel_initializer`; the d gates add `d * (C + 1)`
weights: 64 -> 64, 3x3, d=3: 36,864 + 195 = 37,059. The paper's 1x1 fusion of the concatenated
leaves is the next layer's job in a ResNet (the bottleneck's 1x1); `fuse=True` adds it here.

Precisely (what "SAME pooling", "upsampling" and "stride" mean here):
- pooling by `f` is TF's 'SAME' average pooling (window and stride `f`, `ceil(n/f)` cells, the
  `ceil(n/f)*f - n` missing rows split as TF does, `top = missing // 2`, padded cells excluded from
  the mean), so any size works, including sizes smaller than `f` (one cell);
- convolutions pad symmetrically by `(K-1)/2` (PyTorch; at stride 1 this is TF's 'SAME'); the
  output has `ceil(n / strides)` rows, and output row `i` is centred on input row `strides * i`;
- upsampling is the inverse of the pooling: output row `i` takes the value of the pooling cell
  that contains its centre, input row `strides * i`, i.e. cell `(strides * i + top) // f`. That
  is a nearest upsampling by `f / strides` (the stride sits on the full-resolution leaf, so
  coarse leaves upsample by a smaller factor) cropped to the output size by cutting half the
  excess rows, rounded down, from the top: `(cells * f / strides - out) // 2`, which equals
  `top // strides` (exact because `f` is even). When `n` is a multiple of `f`, nothing is cut
  at the top and this is the plain "upsample, crop the bottom/right" of the paper.

`variant="reference"`: the authors' released form (SPEC §2 [code]). The same gates and leaves,
but a leaf's convolution output (C -> C/(d+1), kernel K if the pooled size is > 2 else 1x1, no
bias) goes through its own BatchNorm and a sigmoid (at the leaf's resolution, then upsampled) and
gates one shared branch `O = ReLU(BN(conv_KxK(x)))` of C/(d+1) channels:
`y = concat(sigmoid(BN_l(U_l)) * O for each leaf)`. It needs static height and width and
`filters == C` (divisible by d+1); 64 channels at 56x56, d=3: 46,435 trainable weights. Its BNs
use `momentum=0.9, epsilon=1e-5`.

Implementation (paper variant; the reference variant is written plainly). The leaf convolutions
hold a third of a vanilla convolution's FLOPs; the rest is memory traffic, which autodiff of the
plain formula multiplies (measured: more than the convolutions themselves). So:
- all gate logits come from one matmul of `x`: the gate of level l reads `S_l = P_l * x` with
  `P_l = prod_{k<l} (1 - rho_k)` a per-pixel scalar, so `conv1x1(S_l) = P_l * (w_l . x) + b_l`
  and the parse is a recurrence on d numbers per pixel (leaf l is `a_l * x`, `a_l = P_l rho_l`,
  the last one `P_d * x`);
- the split (each `a_l * x` pooled to its scale, and the full-resolution leaf, zero-padded when
  strided) is one forward and two backward kernels under a `tf.custom_gradient`, compiled with
  XLA while the convolutions stay on oneDNN: the backward computes every gate gradient
  `sum_c x * dL/dleaf_l` in one loop over x, runs the recurrence backwards (written out), and
  writes `dx = sum_l a_l * dL/dleaf_l + sum_l dz_l * w_l` in one pass;
- the upsampling + concat is a fused forward kernel whose backward is one cell sum per coarse
  leaf (the autodiff of broadcast/slice/concat chains cost more than the convolutions);
- sums over pooling cells and channels are written as sums of strided slices of the inputs,
  which XLA fuses into one pass (multiplying first and summing slices of the product makes
  XLA write the product out); no `tf.image.resize`, whose gradient XLA cannot compile, so the
  layer also runs inside a `jit_compile=True` model;
- a leaf pooled to 1x1 (input smaller than its pooling) is a matmul with the kernel's centre tap.
The kernels are traced and compiled once per (depth, input shape, dtype) and process. Gates and
the split are computed in float32 inside the kernels whatever the policy (inputs are cast there,
which costs no extra pass); convolutions run in the compute dtype.
"""

import functools

import keras
import numpy as np
import tensorflow as tf

VARIANTS = ("paper", "reference")
MAX_DEPTH = 5
_BN_MOMENTUM = 0.9
_BN_EPSILON = 1e-5


def leaf_widths(filters, depth):
    """Output channels of each leaf: `width[i % (depth+1)] += 1` for i in range(filters).

    >>> leaf_widths(64, 2)
    [22, 21, 21]
    """
    widths = [0] * (depth + 1)
    for i in range(filters):
        widths[i % (depth + 1)] += 1
    return widths


def pool_factor(level, depth):
    """The pooling factor of leaf `level` in a tree of `depth`: 2^(depth-level) (1: full res)."""
    return 2 ** (depth - level)


# ----------------------------------------------------------------------------- geometry
# Sizes are Python ints when static and scalar int32 tensors otherwise; the same arithmetic
# serves both (XLA resolves the dynamic ones to constants when it compiles for a shape).


def _size(x, axis):
    size = x.shape[axis]
    return tf.shape(x)[axis] if size is None else size


def _cells(n, f):
    """Number of 'SAME' pooling cells of factor f over n: ceil(n / f)."""
    return -(-n // f)


def _top(n, f):
    """Rows TF's 'SAME' pooling pads before the first cell: (ceil(n/f)*f - n) // 2."""
    return (_cells(n, f) * f - n) // 2


def _inverse_counts(n, f):
    """1 / (number of real rows in each pooling cell), float32, shape (cells,)."""
    top = _top(n, f)
    if isinstance(n, int):
        j = np.arange(_cells(n, f))
        counts = np.minimum((j + 1) * f - top, n) - np.maximum(j * f - top, 0)
        return tf.constant(1.0 / counts, tf.float32)
    j = tf.range(_cells(n, f))
    counts = tf.minimum((j + 1) * f - top, n) - tf.maximum(j * f - top, 0)
    return 1.0 / tf.cast(counts, tf.float32)


def _padded_to_cells(t, f):
    """Zero-pads `t` (b, h, w, c) to whole 'SAME' pooling cells of factor f (TF's split)."""
    h, w = _size(t, 1), _size(t, 2)
    top, left = _top(h, f), _top(w, f)
    bottom, right = _cells(h, f) * f - h - top, _cells(w, f) * f - w - left
    return tf.pad(t, [[0, 0], [top, bottom], [left, right], [0, 0]])


def _strided_sum(t, f, axis, weight=None):
    """Sum of the f strided slices `t[i::f]` along spatial `axis` (1 or 2), each multiplied by
    the same slice of `weight` when given: one XLA loop reading t once."""

    def take(u, i):
        return u[:, i::f] if axis == 1 else u[:, :, i::f]

    if weight is None:
        return tf.add_n([take(t, i) for i in range(f)])
    return tf.add_n([take(t, i) * take(weight, i) for i in range(f)])


def _weighted_cell_mean(x, weight, f):
    """TF 'SAME' average pooling by f (window = stride = f, padding excluded from the mean) of
    `weight * x`, `weight` (b, h, w, 1).

    Written as sums of strided slices of the inputs, each multiplied on its own, rows then
    columns: under XLA one loop reads x once (multiplying first and slicing the product would
    make XLA write the product out, every slice of it being a separate consumer); the column
    pass reads a tensor f times smaller. Summing rows and columns separately keeps the program
    at 2f terms instead of f*f (compile time)."""
    if f == 1:
        return weight * x
    h, w = _size(x, 1), _size(x, 2)
    xp, wp = _padded_to_cells(x, f), _padded_to_cells(weight, f)
    total = _strided_sum(_strided_sum(xp, f, 1, wp), f, 2)
    scale = _inverse_counts(h, f)[:, None, None] * _inverse_counts(w, f)[None, :, None]
    return total * scale


def _expand_cells(y, factor, offset, out_h, out_w):
    """Nearest upsampling by `factor` cropped from (offset) to (out_h, out_w): row i of the result
    is row (i + offset) // factor of `y`."""
    if factor > 1:
        b, rows, cols, c = _size(y, 0), _size(y, 1), _size(y, 2), y.shape[-1]
        y = tf.broadcast_to(y[:, :, None, :, None, :], [b, rows, factor, cols, factor, c])
        y = tf.reshape(y, [b, rows * factor, cols * factor, c])
    (top, left) = offset
    return y[:, top : top + out_h, left : left + out_w, :]


def _upsample_leaf(y, f, strides, in_h, in_w):
    """A coarse leaf's output (pooled by f) on the output grid of a stride-`strides` layer."""
    out_h, out_w = _cells(in_h, strides), _cells(in_w, strides)
    offset = (_top(in_h, f) // strides, _top(in_w, f) // strides)
    return _expand_cells(y, f // strides, offset, out_h, out_w)


def _crop_offset(cells, factor, out):
    """Rows cut before the output when `cells` rows upsampled by `factor` cover `out` rows:
    half the excess, rounded down. Equal to `_top(n, f) // strides` for factor = f / strides,
    whichever n gave `cells = ceil(n / f)` and `out = ceil(n / strides)`."""
    return (cells * factor - out) // 2


def _cell_sum(t, factor, rows, cols):
    """Adjoint of `_expand_cells`: sums `t` (b, out_h, out_w, c) over the `factor` x `factor`
    cells of a (rows, cols) grid placed with `_crop_offset`, as strided slices (one XLA loop)."""
    out_h, out_w = _size(t, 1), _size(t, 2)
    top, left = _crop_offset(rows, factor, out_h), _crop_offset(cols, factor, out_w)
    t = tf.pad(
        t,
        [[0, 0], [top, rows * factor - out_h - top], [left, cols * factor - out_w - left], [0, 0]],
    )
    return _strided_sum(_strided_sum(t, factor, 1), factor, 2)


class _AssembleKernels:
    """XLA kernels of `concat(upsampled coarse leaf outputs, full-resolution leaf output)`.

    Autodiff of the broadcast/reshape/slice/concat chain costs more than the leaf convolutions
    (a slice per leaf out of the output gradient, a padded copy and a reduction per upsampling);
    here the backward is one loop per coarse leaf (a cell sum of its channels) plus the slice
    the full-resolution convolution needs.
    """

    def __init__(self, factors, widths):
        self.factors = factors  # upsampling factor f / strides of each coarse leaf
        self.widths = widths
        jit = functools.partial(tf.function, jit_compile=True, autograph=False)
        self.forward = jit(functools.partial(_AssembleKernels._forward, self))
        self.backward = jit(functools.partial(_AssembleKernels._backward, self))

    def _forward(self, coarse, full):
        out_h, out_w = _size(full, 1), _size(full, 2)
        pieces = []
        for y, factor in zip(coarse, self.factors, strict=True):
            rows, cols = _size(y, 1), _size(y, 2)
            offset = (_crop_offset(rows, factor, out_h), _crop_offset(cols, factor, out_w))
            pieces.append(_expand_cells(y, factor, offset, out_h, out_w))
        return tf.concat(pieces + [full], axis=-1)

    def _backward(self, dy):
        # A coarse leaf has ceil(out / factor) rows: ceil(n / f) = ceil(ceil(n / s) / (f / s)).
        out_h, out_w = _size(dy, 1), _size(dy, 2)
        grads, start = [], 0
        for factor, width in zip(self.factors, self.widths[:-1], strict=True):
            rows, cols = _cells(out_h, factor), _cells(out_w, factor)
            part = tf.cast(dy[..., start : start + width], tf.float32)
            grads.append(tf.cast(_cell_sum(part, factor, rows, cols), dy.dtype))
            start += width
        return grads + [dy[..., start:]]


@functools.cache
def _assemble_kernels(factors, widths, shapes, dtype):
    """Cached per layout and input shapes (see `_split_kernels`)."""
    return _AssembleKernels(factors, widths)


def _assemble(coarse, full, factors, widths):
    """`concat([upsample(y_l) for coarse leaves] + [full])` with a fused gradient."""
    shapes = tuple(tuple(t.shape) for t in coarse + [full])
    kernels = _assemble_kernels(tuple(factors), tuple(widths), shapes, full.dtype.name)

    @tf.custom_gradient
    def assemble(*tensors):
        def grad(dy):
            return kernels.backward(dy)

        return kernels.forward(list(tensors[:-1]), tensors[-1]), grad

    return assemble(*coarse, full)


def _pooled_conv(x, kernel):
    """Stride-1 'same' convolution of a pooled leaf. A 1x1 map (the input is smaller than the
    pooling) only meets the kernel's centre tap, so it is a matmul, which skips the zero taps."""
    if x.shape[1] == 1 and x.shape[2] == 1:
        centre = kernel.shape[0] // 2
        return tf.matmul(x[:, 0, 0, :], kernel[centre, centre])[:, None, None, :]
    return tf.nn.conv2d(x, kernel, 1, "SAME")


def _leaf_ratios(logits, gate_bias, depth):
    """`(..., depth)` gate logits `w_l . x` (float32) -> `(..., depth+1)` leaf ratios
    `a_l = P_l * sigmoid(P_l * (w_l . x) + b_l)`, `a_depth = P_depth`, `P_{l+1} = P_l - a_l`."""
    remainder = None
    ratios = []
    for level in range(depth):
        z = logits[..., level : level + 1]
        if remainder is None:
            ratio = tf.sigmoid(z + gate_bias[level])
        else:
            ratio = remainder * tf.sigmoid(remainder * z + gate_bias[level])
        ratios.append(ratio)
        remainder = (1.0 - ratio) if remainder is None else remainder - ratio
    ratios.append(remainder)
    return tf.concat(ratios, axis=-1)


def _leaf_ratio_grads(logits, gate_bias, ratio_grads, depth):
    """Reverse mode of `_leaf_ratios`: (dL/d logits, dL/d gate_bias) from dL/d ratios.

    Forward: u_l = P_l z_l + b_l, rho_l = sigmoid(u_l), a_l = P_l rho_l, P_{l+1} = P_l - a_l,
    P_0 = 1, a_depth = P_depth. Backward, from dP_depth = dL/da_depth down:
    da_l = dL/da_l - dP_{l+1}, du_l = da_l P_l rho_l (1 - rho_l), dz_l = du_l P_l,
    db_l = sum du_l, dP_l = dP_{l+1} + da_l rho_l + du_l z_l. Written out (not a tape) to keep
    the XLA program small."""
    remainders, gates = [], []
    remainder = None  # P_l, None for P_0 = 1
    for level in range(depth):
        z = logits[..., level : level + 1]
        u = (z if remainder is None else remainder * z) + gate_bias[level]
        gates.append(tf.sigmoid(u))
        remainders.append(remainder)
        remainder = 1.0 - gates[-1] if remainder is None else remainder * (1.0 - gates[-1])
    d_remainder = ratio_grads[..., depth:]
    logit_grads, bias_grads = [None] * depth, [None] * depth
    for level in reversed(range(depth)):
        rho, remainder = gates[level], remainders[level]
        d_leaf = ratio_grads[..., level : level + 1] - d_remainder
        d_u = d_leaf * rho * (1.0 - rho)
        if remainder is None:
            logit_grads[level] = d_u
        else:
            d_u = d_u * remainder
            logit_grads[level] = d_u * remainder
            z = logits[..., level : level + 1]
            d_remainder = d_remainder + d_leaf * rho + d_u * z
        bias_grads[level] = tf.reduce_sum(d_u)
    return tf.concat(logit_grads, axis=-1), tf.stack(bias_grads)


def _gate_logits(x, gate_kernel):
    """`w_l . x` for every level: one `(N, C) @ (C, depth)` matmul in x's dtype, float32 out."""
    depth = gate_kernel.shape[-1]
    flat = tf.reshape(x, [-1, x.shape[-1]])
    logits = tf.matmul(flat, tf.cast(gate_kernel, x.dtype))
    logits = tf.reshape(logits, tf.concat([tf.shape(x)[:-1], [depth]], 0))
    return tf.cast(logits, tf.float32)


# ----------------------------------------------------------------------------- fused kernels


def _channel_dots(x, factors):
    """`[sum(x * g, axis=-1) for g in factors]` stacked on the last axis, where each
    `g(start, stop)` returns channels start:stop of a full-resolution factor. Summed over
    channel slices multiplied one by one (each slice of g computed on its own), all factors in
    one loop: XLA reads x once and writes no full-size product (see `_weighted_cell_mean`);
    then a short reduction."""
    channels = x.shape[-1]
    # The fewest slices that keep each reduction at <= 32 elements (XLA:CPU materialises the
    # operand of a longer reduction).
    parts = min(p for p in range(1, channels + 1) if channels % p == 0 and channels // p <= 32)
    width = channels // parts
    total = tf.add_n(
        [
            tf.stack(
                [x[..., i * width : (i + 1) * width] * g(i * width, (i + 1) * width)
                 for g in factors],
                axis=-2,
            )
            for i in range(parts)
        ]
    )
    return tf.reduce_sum(total, axis=-1)


class _SplitKernels:
    """XLA kernels of the split `x -> (pooled a_l * x for l < depth, padded a_depth * x)`."""

    def __init__(self, depth, pad):
        self.depth = depth
        self.pad = pad  # zeros around the full-resolution leaf (strided convolution)
        jit = functools.partial(tf.function, jit_compile=True, autograph=False)
        # partial(), not bound methods: tf.function pools retracing statistics per code object.
        self.forward = jit(functools.partial(_SplitKernels._forward, self))
        self.gate_grads = jit(functools.partial(_SplitKernels._gate_grads, self))
        self.input_grads = jit(functools.partial(_SplitKernels._input_grads, self))

    def _forward(self, x, logits, gate_bias):
        ratios = _leaf_ratios(logits, gate_bias, self.depth)
        xf = tf.cast(x, tf.float32)
        leaves = []
        for level in range(self.depth):
            f = pool_factor(level, self.depth)
            leaf = _weighted_cell_mean(xf, ratios[..., level : level + 1], f)
            leaves.append(tf.cast(leaf, x.dtype))
        full = ratios[..., self.depth :] * xf
        if self.pad:
            p = self.pad
            full = tf.pad(full, [[0, 0], [p, p], [p, p], [0, 0]])
        return leaves + [tf.cast(full, x.dtype)]

    def _leaf_grad(self, grads, level, h, w):
        """`grad(start, stop)`: channels start:stop of dL/d(a_level * x) at full resolution,
        float32 (a coarse leaf's gradient is its pooled gradient spread over each cell)."""
        if level == self.depth:
            full = tf.cast(grads[level], tf.float32)
            if self.pad:
                p = self.pad
                full = full[:, p : p + h, p : p + w, :]
            return lambda start, stop: full[..., start:stop]
        f = pool_factor(level, self.depth)
        g = tf.cast(grads[level], tf.float32)
        g = g * _inverse_counts(h, f)[:, None, None] * _inverse_counts(w, f)[None, :, None]
        offset = (_top(h, f), _top(w, f))
        return lambda start, stop: _expand_cells(g[..., start:stop], f, offset, h, w)

    def _gate_grads(self, x, logits, gate_bias, grads):
        """(dL/d logits, dL/d gate_bias), float32: dL/da_l = sum_c x * dL/d(a_l x), then back
        through the per-pixel recurrence of `_leaf_ratios`."""
        xf = tf.cast(x, tf.float32)
        h, w = _size(x, 1), _size(x, 2)
        ratio_grads = _channel_dots(
            xf, [self._leaf_grad(grads, level, h, w) for level in range(self.depth + 1)]
        )
        return _leaf_ratio_grads(logits, gate_bias, ratio_grads, self.depth)

    def _input_grads(self, logits, gate_bias, logit_grads, gate_kernel, grads, dtype):
        """dL/dx = sum_l a_l * dL/d(a_l x) + sum_l dL/dz_l * w_l, in x's dtype."""
        ratios = _leaf_ratios(logits, gate_bias, self.depth)
        h, w = _size(ratios, 1), _size(ratios, 2)
        channels = gate_kernel.shape[0]
        leaf_grads = [self._leaf_grad(grads, level, h, w)(0, channels)
                      for level in range(self.depth + 1)]
        dx = tf.add_n([ratios[..., i : i + 1] * g for i, g in enumerate(leaf_grads)])
        for level in range(self.depth):
            dx += logit_grads[..., level : level + 1] * gate_kernel[:, level]
        return tf.cast(dx, dtype)


@functools.cache
def _split_kernels(depth, pad, shape, dtype):
    """One set of kernels per (depth, padding, input shape, dtype), shared by every layer with
    those settings. Keyed by shape so that each `tf.function` sees one signature: a ResNet calls
    them with many shapes, which would otherwise trip tf.function's "frequent retracing"
    warning although every shape is traced only once either way."""
    return _SplitKernels(depth, pad)


def _parse_and_split(x, gate_kernel, gate_bias, depth, pad):
    """Gates, leaves, pooling: `[pooled leaf 0, ..., pooled leaf depth-1, full leaf]`."""
    kernels = _split_kernels(depth, pad, tuple(x.shape), x.dtype.name)

    @tf.custom_gradient
    def split(x, gate_kernel, gate_bias):
        logits = _gate_logits(x, gate_kernel)
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


# ----------------------------------------------------------------------------- the layer


def _check_int(name, value, low, high=None):
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ValueError(f"`{name}` must be an integer {bound}. Received: {name}={value!r}")
    return int(value)


def _single(name, value):
    """An int, or a pair of equal ints (the layer is square), as an int."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2 or value[0] != value[1]:
            raise ValueError(
                f"`{name}` must be an integer or a pair of equal integers. "
                f"Received: {name}={value!r}"
            )
        value = value[0]
    return value


@keras.saving.register_keras_serializable(package="keras_structconv")
class TreeConv2D(keras.layers.Layer):
    """Tree convolution: parse the input into leaves by learned per-pixel gates, convolve each
    leaf at its own scale, concatenate.

    A drop-in for a 'same'-padded `Conv2D(filters, kernel_size, strides)` with (for
    `variant="paper"`) the vanilla kernel's weights plus `depth * (C + 1)` gate weights and a
    third of its FLOPs at depth 3. See the module docstring for the exact definition.

    Args:
        filters: output channels, at least `depth + 1` (every leaf gets >= 1 channel).
        kernel_size: odd int (or pair of equal odd ints), the leaf convolutions' kernel.
        strides: 1 or 2 (or a pair of equal values), on the full-resolution leaf.
        depth: tree depth d, 1..5 (d gates, d+1 leaves; the paper uses 3 and ablates 1-4).
        variant: `"paper"` (Eq. 1-5) or `"reference"` (the authors' released gated form).
        fuse: add the paper's 1x1 fusion convolution (filters -> filters) after the concat.
        use_bias: add a bias to the output.
        data_format: `"channels_last"` or `"channels_first"` (computed in channels_last; a
            channels_first input is transposed in and out). Default: Keras' image data format.
        kernel_initializer: initializer of the leaf kernels (drawn as one vanilla
            `(K, K, C, filters)` kernel, so with the vanilla fans), of the reference variant's
            branch and leaf kernels and of the fusion kernel.
        bias_initializer: initializer of the output bias.
        gate_kernel_initializer: initializer of the gate kernel `(C, depth)`.
        gate_bias_initializer: initializer of the gate biases `(depth,)`.
        kernel_regularizer, bias_regularizer: optional regularizers of the kernels / the bias.
        kernel_constraint, bias_constraint: optional constraints of the kernels / the bias.
        **kwargs: base `Layer` arguments (`name`, `dtype`, `trainable`, `activity_regularizer`).

    Input shape:
        4-D `(batch, height, width, channels)` (or channels_first). Height and width may be
        `None` for the paper variant; the reference variant needs them static.

    Output shape:
        `(batch, ceil(height / strides), ceil(width / strides), filters)`.

    Weights (paper variant): `gate_kernel` `(C, depth)`, `gate_bias` `(depth,)`, `kernel_{l}`
    `(K, K, C, width[l])` for each leaf (side by side: a vanilla `(K, K, C, filters)` kernel, also
    at initialisation), optional `fusion_kernel` `(1, 1, filters, filters)` and `bias`
    `(filters,)`. The reference variant has `leaf_kernel_{l}` (K or 1 square, `C -> C/(d+1)`),
    `branch_kernel` and five BatchNorms. `leaf_kernels` lists the leaf kernels in leaf order.

    Example:

    >>> layer = TreeConv2D(64, 3, depth=3)
    >>> y = layer(np.random.rand(2, 56, 56, 64).astype("float32"))
    >>> y.shape, layer.count_params()
    (TensorShape([2, 56, 56, 64]), 37059)
    >>> maps = layer.explain(np.random.rand(2, 56, 56, 64).astype("float32"))  # (2, 56, 56, 4)

    Reference: G. Wang et al., "Grammatically Recognizing Images with Tree Convolution"
    (TreeConv), KDD 2020.
    """

    supports_jit = True

    def __init__(
        self,
        filters,
        kernel_size=3,
        strides=1,
        depth=3,
        variant="paper",
        fuse=False,
        use_bias=False,
        data_format=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        gate_kernel_initializer="glorot_uniform",
        gate_bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.depth = _check_int("depth", depth, 1, MAX_DEPTH)
        self.filters = _check_int("filters", filters, 1)
        if self.filters < self.depth + 1:
            raise ValueError(
                "`filters` must be at least `depth + 1` (one output channel per leaf). "
                f"Received: filters={filters}, depth={depth}"
            )
        kernel_size = _single("kernel_size", kernel_size)
        self.kernel_size = _check_int("kernel_size", kernel_size, 1)
        if self.kernel_size % 2 == 0:
            raise ValueError(
                "`kernel_size` must be odd (the leaves are convolved with symmetric padding). "
                f"Received: kernel_size={kernel_size}"
            )
        strides = _single("strides", strides)
        if strides not in (1, 2) or isinstance(strides, bool):
            raise ValueError(f"`strides` must be 1 or 2. Received: strides={strides!r}")
        self.strides = int(strides)
        if variant not in VARIANTS:
            raise ValueError(f"`variant` must be one of {VARIANTS}. Received: variant={variant!r}")
        self.variant = variant
        self.fuse = bool(fuse)
        self.use_bias = bool(use_bias)
        data_format = keras.config.image_data_format() if data_format is None else data_format
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError(
                "`data_format` must be 'channels_last', 'channels_first' or None. "
                f"Received: data_format={data_format!r}"
            )
        self.data_format = data_format
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.gate_kernel_initializer = keras.initializers.get(gate_kernel_initializer)
        self.gate_bias_initializer = keras.initializers.get(gate_bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.widths = leaf_widths(self.filters, self.depth)
        self.leaf_kernel_sizes = None

    @classmethod
    def from_conv(cls, conv, depth=3, variant="paper", zero_padding=None, **overrides):
        """A TreeConv2D standing for the `keras.layers.Conv2D` `conv`: its filters, kernel size,
        strides, bias, data format, initializers, regularizers, constraints, name and dtype
        policy (weights are not copied: the gates are new).

        TreeConv2D pads symmetrically by `(K-1)/2`, so `conv` must be 'same'-padded, or
        'valid' with `zero_padding` = that symmetric padding (a folded `ZeroPadding2D`, see
        `treeconv_factory`), or 1x1. At stride 2 a 'same' `conv` pads bottom/right (TF) where
        TreeConv2D pads both sides: the output size is the same, the sampling grid is shifted by
        one input pixel for even sizes.
        """
        if not isinstance(conv, keras.layers.Conv2D):
            raise ValueError(
                "`conv` must be a keras.layers.Conv2D. "
                f"Received: conv of type {type(conv).__name__}"
            )
        config = conv.get_config()
        problems = {
            "groups": config.get("groups", 1) != 1,
            "dilation_rate": tuple(config.get("dilation_rate", (1, 1))) != (1, 1),
            "activation": config.get("activation") not in (None, "linear"),
        }
        for key, bad in problems.items():
            if bad:
                raise ValueError(
                    f"TreeConv2D can only stand for a plain convolution (no {key}). "
                    f"Received: {key}={config.get(key)!r}"
                )
        kernel_size = tuple(config["kernel_size"])
        pad = (kernel_size[0] - 1) // 2
        symmetric = ((pad, pad), (pad, pad))
        folded = None if zero_padding is None else tuple(tuple(p) for p in zero_padding)
        padding_ok = (config["padding"] == "same" and folded is None) or (
            config["padding"] == "valid" and (folded == symmetric or (pad == 0 and not folded))
        )
        if not padding_ok:
            raise ValueError(
                "TreeConv2D pads symmetrically by (kernel_size - 1) / 2: it can stand for a "
                "'same' convolution or a 'valid' one behind that zero padding. "
                f"Received: padding={config['padding']!r}, zero_padding={zero_padding!r}, "
                f"kernel_size={kernel_size}"
            )
        keys = (
            "name", "dtype", "trainable", "filters", "kernel_size", "strides", "data_format",
            "use_bias", "kernel_initializer", "bias_initializer", "kernel_regularizer",
            "bias_regularizer", "activity_regularizer", "kernel_constraint", "bias_constraint",
        )
        kwargs = {key: config[key] for key in keys if key in config}
        kwargs.update(depth=depth, variant=variant)
        kwargs.update(overrides)
        return cls(**kwargs)

    # ------------------------------------------------------------------------- build

    def _kernel_weight(self, name, shape):
        return self.add_weight(
            name=name,
            shape=shape,
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                "TreeConv2D expects a 4-D input. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        input_shape = self._to_channels_last(tuple(input_shape))
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(
                "The channel dimension of the input of TreeConv2D must be known. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        axis = -1 if self.data_format == "channels_last" else 1
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={axis: channels})
        # Gates stay float32 under mixed precision (the fused kernels compute in float32).
        self.gate_kernel = self.add_weight(
            name="gate_kernel",
            shape=(channels, self.depth),
            initializer=self.gate_kernel_initializer,
            autocast=False,
        )
        self.gate_bias = self.add_weight(
            name="gate_bias",
            shape=(self.depth,),
            initializer=self.gate_bias_initializer,
            autocast=False,
        )
        k = self.kernel_size
        if self.variant == "paper":
            self._build_leaf_kernels(k, channels)
        else:
            self._build_reference(input_shape, channels)
        if self.fuse:
            self.fusion_kernel = self._kernel_weight(
                "fusion_kernel", (1, 1, self.filters, self.filters)
            )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.filters,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )

    def _build_leaf_kernels(self, k, channels):
        """`kernel_0 .. kernel_depth`: the output columns of one vanilla `(K, K, C, filters)`
        kernel drawn by `kernel_initializer` (so the fans are the vanilla ones), one weight per
        leaf: slicing a single weight at every step would copy the whole kernel forward and
        backward (at 7x7x512 the kernel is 12x the input)."""
        full = []

        def slice_of(start, stop):
            def initializer(shape, dtype=None):
                if not full:
                    full.append(self.kernel_initializer((k, k, channels, self.filters), dtype))
                return full[0][..., start:stop]

            return initializer

        self.leaf_kernels = []
        start = 0
        for level, width in enumerate(self.widths):
            self.leaf_kernels.append(
                self.add_weight(
                    name=f"kernel_{level}",
                    shape=(k, k, channels, width),
                    initializer=slice_of(start, start + width),
                    regularizer=self.kernel_regularizer,
                    constraint=self.kernel_constraint,
                )
            )
            start += width

    def _build_reference(self, input_shape, channels):
        height, width = input_shape[1], input_shape[2]
        if height is None or width is None:
            raise ValueError(
                "TreeConv2D(variant='reference') needs static height and width at build time "
                "(its leaf kernel size depends on the pooled size). "
                f"Received: input_shape={tuple(input_shape)}"
            )
        if self.filters != channels or channels % (self.depth + 1):
            raise ValueError(
                "TreeConv2D(variant='reference') needs `filters` equal to the input channels and "
                "divisible by `depth + 1`. "
                f"Received: filters={self.filters}, input channels={channels}, depth={self.depth}"
            )
        part = channels // (self.depth + 1)
        self.leaf_kernel_sizes = []
        self.leaf_kernels = []
        self.leaf_norms = []
        for level in range(self.depth + 1):
            f = pool_factor(level, self.depth)
            pooled = min(_cells(height, f), _cells(width, f))
            k = self.kernel_size if pooled > 2 else 1
            self.leaf_kernel_sizes.append(k)
            self.leaf_kernels.append(
                self._kernel_weight(f"leaf_kernel_{level}", (k, k, channels, part))
            )
            self.leaf_norms.append(self._batch_norm(f"leaf_bn_{level}", part))
        k = self.kernel_size
        self.branch_kernel = self._kernel_weight("branch_kernel", (k, k, channels, part))
        self.branch_norm = self._batch_norm("branch_bn", part)

    def _batch_norm(self, name, channels):
        norm = keras.layers.BatchNormalization(
            momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, name=name, dtype=self.dtype_policy
        )
        norm.build((None, None, None, channels))
        return norm

    # ------------------------------------------------------------------------- call

    def _to_channels_last(self, shape):
        if self.data_format == "channels_first":
            return (shape[0], shape[2], shape[3], shape[1])
        return shape

    def _conv(self, x, kernel, strides):
        """Symmetric-padding convolution (TF 'SAME' at stride 1 for odd kernels)."""
        pad = (kernel.shape[0] - 1) // 2
        if strides == 1 or pad == 0:
            return tf.nn.conv2d(x, kernel, strides, "SAME" if pad else "VALID")
        x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        return tf.nn.conv2d(x, kernel, strides, "VALID")

    def call(self, inputs, training=None):
        x = inputs
        if self.data_format == "channels_first":
            x = tf.transpose(x, [0, 2, 3, 1])
        if self.variant == "paper":
            y = self._call_paper(x)
        else:
            y = self._call_reference(x, training)
        if self.fuse:
            y = tf.nn.conv2d(y, tf.cast(self.fusion_kernel, y.dtype), 1, "VALID")
        if self.use_bias:
            y = tf.nn.bias_add(y, tf.cast(self.bias, y.dtype))
        if self.data_format == "channels_first":
            y = tf.transpose(y, [0, 3, 1, 2])
        return y

    def _call_paper(self, x):
        pad = (self.kernel_size - 1) // 2 if self.strides > 1 else 0
        leaves = _parse_and_split(
            x, tf.convert_to_tensor(self.gate_kernel), tf.convert_to_tensor(self.gate_bias),
            self.depth, pad,
        )
        kernels = [tf.cast(kernel, x.dtype) for kernel in self.leaf_kernels]
        coarse = [_pooled_conv(leaves[level], kernels[level]) for level in range(self.depth)]
        padding = "VALID" if pad else "SAME"
        full = tf.nn.conv2d(leaves[-1], kernels[-1], self.strides, padding)
        factors = [pool_factor(level, self.depth) // self.strides for level in range(self.depth)]
        return _assemble(coarse, full, factors, self.widths)

    def _call_reference(self, x, training):
        h, w = _size(x, 1), _size(x, 2)
        ratios = self._ratios(x)
        branch = self._conv(x, tf.cast(self.branch_kernel, x.dtype), self.strides)
        branch = tf.nn.relu(self.branch_norm(branch, training=training))
        outputs = []
        for level in range(self.depth + 1):
            f = pool_factor(level, self.depth)
            leaf = tf.cast(ratios[..., level : level + 1], x.dtype) * x
            kernel = tf.cast(self.leaf_kernels[level], x.dtype)
            if f == 1:
                u = self._conv(leaf, kernel, self.strides)
            else:
                u = self._conv(tf.nn.avg_pool2d(leaf, f, f, "SAME"), kernel, 1)
            u = tf.sigmoid(self.leaf_norms[level](u, training=training))
            if f > 1:
                u = _upsample_leaf(u, f, self.strides, h, w)
            outputs.append(u * branch)
        return tf.concat(outputs, axis=-1)

    def _ratios(self, x):
        logits = _gate_logits(x, self.gate_kernel)
        return _leaf_ratios(logits, tf.convert_to_tensor(self.gate_bias), self.depth)

    def explain(self, inputs):
        """The explanation maps of paper §4.1: the leaf ratios `rho_0, (1-rho_0) rho_1, ...,
        prod_l (1-rho_l)` of every pixel, which sum to 1.

        Args:
            inputs: the layer's input, 4-D in the layer's data_format.

        Returns:
            float32 tensor `(batch, height, width, depth+1)` (channels_last) or
            `(batch, depth+1, height, width)` (channels_first), leaf order.
        """
        x = tf.convert_to_tensor(inputs)
        if not self.built:
            self.build(tuple(x.shape))
        if self.data_format == "channels_first":
            x = tf.transpose(x, [0, 2, 3, 1])
        ratios = self._ratios(tf.cast(x, tf.float32))
        if self.data_format == "channels_first":
            ratios = tf.transpose(ratios, [0, 3, 1, 2])
        return ratios

    def parse(self, inputs):
        """The parse tree's leaves `L_0, ..., L_{depth-1}, S` at full resolution (Eq. 1-2),
        float32, each shaped like `inputs`; they sum to `inputs` (normalisation property)."""
        x = tf.cast(tf.convert_to_tensor(inputs), tf.float32)
        ratios = self.explain(x)
        axis = -1 if self.data_format == "channels_last" else 1
        return [r * x for r in tf.split(ratios, self.depth + 1, axis=axis)]

    # ------------------------------------------------------------------------- config

    def compute_output_shape(self, input_shape):
        batch, h, w, _ = self._to_channels_last(tuple(input_shape))
        h, w = (None if n is None else _cells(n, self.strides) for n in (h, w))
        if self.data_format == "channels_first":
            return (batch, self.filters, h, w)
        return (batch, h, w, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "depth": self.depth,
                "variant": self.variant,
                "fuse": self.fuse,
                "use_bias": self.use_bias,
                "data_format": self.data_format,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "gate_kernel_initializer": keras.initializers.serialize(
                    self.gate_kernel_initializer
                ),
                "gate_bias_initializer": keras.initializers.serialize(self.gate_bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
                "bias_constraint": keras.constraints.serialize(self.bias_constraint),
            }
        )
        return config


def treeconv_factory(depth=3, variant="paper", **overrides):
    """A conv factory for `keras_structconv.convert` and the model builders:
    `factory(template_conv2d) -> TreeConv2D` configured like the template (see
    `TreeConv2D.from_conv`) with the given depth, variant and overrides (e.g. `fuse=True`).

    It folds zero padding (`folds_zero_padding = True`): a strided 'valid' convolution behind a
    symmetric `ZeroPadding2D` (our ResNet builders, Keras ResNet50V2) becomes one TreeConv2D,
    which pads the same way itself.

    Example:

    >>> model = keras_structconv.convert(
    ...     keras.applications.ResNet50(weights=None), conv=treeconv_factory(depth=3))
    """

    def factory(template, zero_padding=None):
        return TreeConv2D.from_conv(
            template, depth=depth, variant=variant, zero_padding=zero_padding, **overrides
        )

    factory.folds_zero_padding = True
    factory.depth = depth
    factory.variant = variant
    return factory
