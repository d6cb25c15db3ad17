"""`tf.nn` 2-D convolutions (NHWC) that are exact and differentiable on every CPU runtime.

Users: `PSConv2D` (planned per-slot convolutions and block permutations), `GroupedConv2D`
(`conv2d` with groups) and `TreeConv2D` (`conv2d`, `symmetric_padding`, the compute dtypes).

`conv2d(x, kernel, strides, dilation, padding, groups)` computes what a textbook convolution with
the given zero padding computes, with gradients, in float32, mixed_float16 and mixed_bfloat16,
eagerly, in `tf.function` and under XLA:

- `padding` is the number of zero rows/columns added on each side (PyTorch style, symmetric unless
  given per side), or "same" for TF's own bottom/right-heavy 'SAME' (Keras semantics). With
  per-side padding `(lo, hi)` an axis of length `n` gives `floor((n + lo + hi - d*(k-1) - 1) / s)
  + 1` outputs.
- Any stride works with any dilation: one call never gets both (when `d` is a multiple of `s`,
  the taps of every output pixel lie on one residue class modulo `s`, so the convolution reads a
  subsampled input at stride 1 with dilation `d / s`; otherwise its stride-1 output is
  subsampled).
- Half precision is computed in float32 (cast in, cast back): TensorFlow's CPU kernels lack some
  half-precision convolutions.
- When TensorFlow runs without oneDNN (`TF_ENABLE_ONEDNN_OPTS=0`, or a CPU without AVX-512), its
  own CPU kernels differentiate neither grouped nor dilated `tf.nn.conv2d`: groups are then split
  into slices and dilations go through `tf.nn.convolution` (space-to-batch).

`plan_conv2d`, `prepare_input` and `run_conv2d` are the same computation in two halves, so that
several kernels can share one padded or subsampled input. `permute_blocks` moves channel blocks
with `tf.roll`, or with slices and a concatenation inside `portable_ops()` (TFLite has no roll).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import tensorflow as tf

from keras_structconv._internals import onednn_enabled
from keras_structconv.layers._portable import portable_ops_enabled

_HALF_DTYPES = (tf.float16, tf.bfloat16)


def symmetric_padding(kernel_size: int, dilation: int = 1) -> int:
    """Zero padding per side keeping the size at stride 1: `dilation * (kernel_size - 1) // 2`."""
    return dilation * (kernel_size - 1) // 2


def output_size(
    size: int | None,
    kernel_size: int,
    strides: int = 1,
    dilation: int = 1,
    padding: int | tuple[int, int] = (0, 0),
) -> int | None:
    """Output length of one axis (`None` stays `None`) for per-side zero padding `(lo, hi)`."""
    if size is None:
        return None
    lo, hi = _pair(padding)
    span = dilation * (kernel_size - 1) + 1
    return max((size + lo + hi - span) // strides + 1, 0)


def compute_dtype(dtype: Any) -> tf.DType:
    """The dtype the convolutions run in for inputs of `dtype`: float32 for half precision."""
    dtype = tf.as_dtype(dtype)
    return tf.float32 if dtype in _HALF_DTYPES else dtype


def to_compute_dtype(x: tf.Tensor) -> tf.Tensor:
    """Casts half-precision tensors to float32 (see the module docstring); others unchanged."""
    return tf.cast(x, compute_dtype(x.dtype))


@dataclasses.dataclass(frozen=True)
class _AxisPlan:
    """How one spatial axis is computed: take `x[offset::step]`, zero-pad it by `pad` (a negative
    side crops), convolve with `strides` and `dilation`, keep every `out_step`-th output, and,
    when `cut`, crop the output to the exact size (known only at call time)."""

    offset: int
    step: int
    pad: tuple
    strides: int
    dilation: int
    out_step: int
    cut: bool


def _axis_plan(size, kernel_size, strides, dilation, padding):
    """Plan for one axis of static length `size` (None when unknown)."""
    lo, hi = padding
    if strides == 1 or dilation == 1:
        return _AxisPlan(0, 1, (lo, hi), strides, dilation, 1, False)
    if dilation % strides:
        # No common residue class: convolve at stride 1 and keep every s-th output.
        return _AxisPlan(0, 1, (lo, hi), 1, dilation, strides, False)
    # Taps of output o sit at s*o + d*j - lo (unpadded coordinates): all congruent to -lo mod s,
    # so only x[offset::s] is read, by a stride-1 convolution with dilation d/s.
    offset = (-lo) % strides
    sub_dilation = dilation // strides
    sub_lo = (lo + offset) // strides
    reach = sub_dilation * (kernel_size - 1)

    def exact_hi(n):
        out = output_size(n, kernel_size, strides, dilation, (lo, hi))
        return out + reach - (-(-(n - offset) // strides)) - sub_lo

    if size is not None:
        return _AxisPlan(offset, strides, (sub_lo, exact_hi(size)), 1, sub_dilation, 1, False)
    # Unknown length: the exact right padding usually does not depend on it (e.g. 'same'
    # padding); otherwise pad generously and cut the output to size at call time.
    large = dilation * kernel_size + lo + hi + strides
    candidates = {exact_hi(n) for n in range(large, large + strides)}
    if len(candidates) == 1:
        return _AxisPlan(offset, strides, (sub_lo, candidates.pop()), 1, sub_dilation, 1, False)
    generous = reach + -(-hi // strides)
    return _AxisPlan(offset, strides, (sub_lo, generous), 1, sub_dilation, 1, True)


@dataclasses.dataclass(frozen=True)
class ConvPlan:
    """A convolution split into an input preparation, which kernels with the same `input_key`
    can share (e.g. the slots of a PSConv2D with equal dilation), and the `tf.nn.conv2d` call."""

    rows: _AxisPlan
    cols: _AxisPlan
    kernel_size: tuple
    strides: tuple
    dilation: int
    padding: tuple

    @property
    def input_key(self):
        r, c = self.rows, self.cols
        same = self.uses_tf_same
        return (r.offset, r.step, None if same else r.pad, c.offset, c.step,
                None if same else c.pad)

    @property
    def uses_tf_same(self):
        """Whether TF's stride-1 'SAME' is exactly the padding needed (no padded copy)."""
        r, c = self.rows, self.cols
        kh, kw = self.kernel_size
        return (
            r.strides == 1
            and c.strides == 1
            and _is_tf_same(r.pad, kh, r.dilation)
            and _is_tf_same(c.pad, kw, c.dilation)
        )


def plan_conv2d(
    input_shape: Any, kernel_size: Any, strides: Any = 1, dilation: int = 1, padding: Any = 0
) -> ConvPlan:
    """Plans an NHWC convolution with per-side zero `padding` (int, `(ph, pw)` or
    `((top, bottom), (left, right))`) for an input shape whose height/width may be None."""
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(strides)
    (pt, pb), (pl, pr) = _padding_pairs(padding)
    rows = _axis_plan(input_shape[1], kh, sh, dilation, (pt, pb))
    cols = _axis_plan(input_shape[2], kw, sw, dilation, (pl, pr))
    return ConvPlan(rows, cols, (kh, kw), (sh, sw), dilation, ((pt, pb), (pl, pr)))


def prepare_input(x: tf.Tensor, plan: ConvPlan) -> tf.Tensor:
    """Subsamples and zero-pads `x` as `plan` says: the part shared by plans of one input_key."""
    r, c = plan.rows, plan.cols
    if r.step > 1 or c.step > 1:
        x = subsample(x, (r.offset, c.offset), (r.step, c.step))
    if plan.uses_tf_same:
        return x
    (pt, pb), (pl, pr) = r.pad, c.pad
    if min(pt, pb, pl, pr) < 0:
        x = x[:, max(-pt, 0) : _crop_end(pb), max(-pl, 0) : _crop_end(pr), :]
        pt, pb, pl, pr = (max(p, 0) for p in (pt, pb, pl, pr))
    if pt or pb or pl or pr:
        x = tf.pad(x, [[0, 0], [pt, pb], [pl, pr], [0, 0]])
    return x


def subsample(x: tf.Tensor, offsets: tuple[int, int], steps: tuple[int, int]) -> tf.Tensor:
    """`x[:, oh::sh, ow::sw, :]`. From offset 0 this is a 1×1 average pool with stride
    `steps`: the same values, and its gradient is a cheap pooling gradient, whereas the gradient of
    a strided slice costs about as much as a convolution (scatter into a zero tensor)."""
    (oh, ow), (sh, sw) = offsets, steps
    if oh or ow:
        return x[:, oh::sh, ow::sw, :]
    return tf.nn.avg_pool2d(x, ksize=1, strides=[1, sh, sw, 1], padding="VALID")


def run_conv2d(
    prepared: tf.Tensor, kernel: tf.Tensor, plan: ConvPlan, input_shape: Any
) -> tf.Tensor:
    """The `tf.nn.conv2d` call of `plan` on `prepare_input`'s result, then the output
    subsampling or cropping. `input_shape` is the dynamic shape of the original input."""
    r, c = plan.rows, plan.cols
    y = _conv_call(
        prepared,
        kernel,
        (r.strides, c.strides),
        "SAME" if plan.uses_tf_same else "VALID",
        (r.dilation, c.dilation),
    )
    if r.out_step > 1 or c.out_step > 1:
        y = subsample(y, (0, 0), (r.out_step, c.out_step))
    if r.cut or c.cut:
        stops = [
            _exact_size(input_shape[axis + 1], plan, axis) if axis_plan.cut else None
            for axis, axis_plan in enumerate((r, c))
        ]
        y = y[:, : stops[0], : stops[1], :]
    return y


# Whether `tf.nn.conv2d` may get groups and dilations directly: oneDNN's CPU kernels
# differentiate them, TensorFlow's own do not (see the module docstring).
NATIVE_GROUPED_DILATED = onednn_enabled()


def _conv_call(x, kernel, strides, tf_padding, dilations):
    """`tf.nn.conv2d`, or an equivalent whose gradients TensorFlow's own CPU kernels have.

    Plans never combine a stride with a dilation here (see `_axis_plan`). Inference traced for
    export (`portable_ops()`) needs no gradient: it keeps the native dilated call but splits the
    groups, because TensorFlow's graph optimiser fuses a grouped conv with a following bias into
    a kernel that only oneDNN has (a SavedModel exported with it fails to serve without oneDNN).
    """
    groups = x.shape[-1] // kernel.shape[2]
    dilated = dilations != (1, 1)
    if portable_ops_enabled() and groups > 1:
        return _split_groups(x, kernel, strides, tf_padding, groups, dilations)
    if NATIVE_GROUPED_DILATED or portable_ops_enabled() or (groups == 1 and not dilated):
        return tf.nn.conv2d(
            x,
            kernel,
            strides=[1, *strides, 1],
            padding=tf_padding,
            dilations=[1, *dilations, 1] if dilated else None,
        )
    if not dilated:
        return _split_groups(x, kernel, strides, tf_padding, groups)
    # One space-to-batch shared by every group turns the dilation into a stride-1 lattice.
    return tf.nn.with_space_to_batch(
        x,
        list(dilations),
        tf_padding,
        lambda inputs, num_spatial_dims, padding: _split_groups(
            inputs, kernel, (1, 1), padding, groups
        ),
        filter_shape=kernel.shape[:2],
    )


def _split_groups(x, kernel, strides, tf_padding, groups, dilations=(1, 1)):
    """A grouped convolution as one ungrouped `tf.nn.conv2d` per group."""

    def conv(inputs, weights):
        rates = [1, *dilations, 1] if dilations != (1, 1) else None
        return tf.nn.conv2d(
            inputs, weights, strides=[1, *strides, 1], padding=tf_padding, dilations=rates
        )

    if groups == 1:
        return conv(x, kernel)
    parts = zip(tf.split(x, groups, axis=-1), tf.split(kernel, groups, axis=-1), strict=True)
    return tf.concat([conv(xg, kg) for xg, kg in parts], axis=-1)


def _exact_size(size, plan, axis):
    lo, hi = plan.padding[axis]
    span = plan.dilation * (plan.kernel_size[axis] - 1) + 1
    return (size + lo + hi - span) // plan.strides[axis] + 1


def conv2d(
    x: tf.Tensor,
    kernel: tf.Tensor,
    strides: int | tuple[int, int] = 1,
    dilation: int = 1,
    padding: Any = 0,
    groups: int | None = None,
) -> tf.Tensor:
    """NHWC convolution with per-side zero padding, any stride with any dilation, groups.

    Args:
        x: `(batch, height, width, channels)`; half precision is computed in float32.
        kernel: `(kh, kw, channels // groups, filters)`.
        strides: int or `(sh, sw)`.
        dilation: int, the same on both axes.
        padding: zeros per side: int, `(ph, pw)` or `((top, bottom), (left, right))`; or
            "same" for TF's own 'SAME' (bottom/right-heavy) without stride and dilation together.
        groups: checked against `channels // kernel.shape[2]` when given.

    Returns:
        `(batch, out_h, out_w, filters)` in the dtype of `x`, where per axis
        `out = floor((n + lo + hi - dilation*(k-1) - 1) / s) + 1`.
    """
    channels = x.shape[-1]
    if groups is not None and channels is not None and channels != groups * kernel.shape[2]:
        raise ValueError(
            "The input channels must equal `groups` times the kernel's input channels. "
            f"Received: channels={channels}, groups={groups}, kernel.shape={tuple(kernel.shape)}"
        )
    out_dtype = x.dtype
    x = to_compute_dtype(x)
    kernel = tf.cast(kernel, x.dtype)
    if isinstance(padding, str):
        if padding.lower() != "same" or (dilation > 1 and _pair(strides) != (1, 1)):
            raise ValueError(
                "A padding string must be 'same' (TF semantics), without a stride together with "
                f"a dilation. Received: padding={padding!r}, strides={strides}, "
                f"dilation={dilation}"
            )
        y = _conv_call(x, kernel, _pair(strides), "SAME", (dilation, dilation))
        return tf.cast(y, out_dtype)
    plan = plan_conv2d(x.shape, kernel.shape[:2], strides, dilation, padding)
    y = run_conv2d(prepare_input(x, plan), kernel, plan, tf.shape(x))
    return tf.cast(y, out_dtype)


def tf_same_padding(
    size: int, kernel_size: int, strides: int = 1, dilation: int = 1
) -> tuple[int, int]:
    """TF's 'SAME' padding `(lo, hi)` of one axis of static length `size` (bottom/right-heavy)."""
    span = dilation * (kernel_size - 1) + 1
    out = -(-size // strides)
    total = max((out - 1) * strides + span - size, 0)
    return total // 2, total - total // 2


def roll_blocks(y: tf.Tensor, shift: int, blocks: int, groups: int = 1) -> tf.Tensor:
    """Rolls the channel axis of `y` by `shift` blocks inside each of `groups` channel groups
    (`blocks` blocks per group): block b of a group moves to block (b + shift) mod blocks.

    `tf.roll` (its gradient is a roll too); inside `portable_ops()` two slices and a concatenation,
    which TFLite's builtin ops and ONNX have."""
    shift %= blocks
    if shift == 0:
        return y
    block = y.shape[-1] // (groups * blocks)
    if groups == 1:
        return _roll_channels(y, shift * block)
    shape = tf.shape(y)
    grouped = tf.reshape(y, tf.concat([shape[:-1], [groups, blocks * block]], 0))
    return tf.reshape(_roll_channels(grouped, shift * block), shape)


def _roll_channels(y, shift):
    """`tf.roll(y, shift, axis=-1)` for 0 < shift < channels."""
    if not portable_ops_enabled():
        return tf.roll(y, shift, axis=-1)
    split = y.shape[-1] - shift
    return tf.concat([y[..., split:], y[..., :split]], axis=-1)


def _is_tf_same(pad, kernel_size, dilation):
    """Whether stride-1 TF 'SAME' pads exactly `pad` = (lo, hi) for this kernel and dilation."""
    total = dilation * (kernel_size - 1)
    return pad == (total // 2, total - total // 2)


def _pair(value):
    if isinstance(value, int):
        return value, value
    return tuple(int(v) for v in value)


def _padding_pairs(padding):
    if isinstance(padding, int):
        return (padding, padding), (padding, padding)
    first, second = padding
    if isinstance(first, int):
        return (first, first), (second, second)
    return tuple(first), tuple(second)


def _crop_end(pad):
    return pad if pad < 0 else None
