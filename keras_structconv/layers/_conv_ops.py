"""Shared `tf.nn` convolution wrappers: grouped, dilated and strided 2-D convolutions (NHWC).

Used by `PSConv2D`, `GroupedConv2D` (ResNeXt) and `TreeConv2D`. Every function here is exact:
it computes what a textbook convolution with the given zero padding computes, with gradients, in
float32, mixed_float16 and mixed_bfloat16, eagerly, in `tf.function` and under XLA. It exists
because the obvious calls are not all usable on CPU (TensorFlow 2.21, Keras 3):

- `keras.layers.Conv2D(groups > 1)` runs through XLA on CPU and trains about 50x slower than the
  native grouped kernel that `tf.nn.conv2d` reaches when the input has `groups` times the kernel's
  input channels.
- Only oneDNN's kernels (on by default on x86 Linux) differentiate grouped convolutions and the
  `dilations=` attribute; TensorFlow's own CPU kernels raise ("Gradients for grouped convolutions
  are not supported on CPU", "do not yet support dilation rates larger than 1"). They are the
  ones used with TF_ENABLE_ONEDNN_OPTS=0, for an explicit padding list (so zero padding here is
  TF's "SAME" where it equals the padding asked for, else `tf.pad` + "VALID"), and for half
  precision on CPUs without oneDNN half kernels. Hence: half precision is computed in float32
  (cast in, cast back); without oneDNN, groups are split into slices and dilation goes through
  `tf.nn.convolution` (space-to-batch), see `NATIVE_GROUPED_DILATED`.
- A stride together with a dilation is never given to one call: when the dilation `d` is a
  multiple of the stride `s`, every tap of an output pixel lies on the residue class of the
  padding modulo `s`, so the convolution is a stride-1 convolution with dilation `d / s` of
  `x[c::s]` (taken with a 1×1 average pool when c = 0: a strided slice's gradient costs about as
  much as the convolution); otherwise it is a stride-1 convolution whose output is subsampled.

Padding convention: `padding` is the number of zero rows/columns added on each side (PyTorch
style, symmetric unless given per side); `conv2d` also takes "same" for TF's own bottom/right-heavy
'SAME' (Keras semantics, for `GroupedConv2D`). With per-side padding `(lo, hi)` the output length
of an axis of length `n` is `floor((n + lo + hi - d*(k-1) - 1) / s) + 1`.
"""

import dataclasses

import tensorflow as tf

_HALF_DTYPES = (tf.float16, tf.bfloat16)


def symmetric_padding(kernel_size, dilation=1):
    """Zero padding per side keeping the size at stride 1: `dilation * (kernel_size - 1) // 2`."""
    return dilation * (kernel_size - 1) // 2


def output_size(size, kernel_size, strides=1, dilation=1, padding=(0, 0)):
    """Output length of one axis (`None` stays `None`) for per-side zero padding `(lo, hi)`."""
    if size is None:
        return None
    lo, hi = _pair(padding)
    span = dilation * (kernel_size - 1) + 1
    return max((size + lo + hi - span) // strides + 1, 0)


def compute_dtype(dtype):
    """The dtype the convolutions run in for inputs of `dtype`: float32 for half precision."""
    dtype = tf.as_dtype(dtype)
    return tf.float32 if dtype in _HALF_DTYPES else dtype


def to_compute_dtype(x):
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


def plan_conv2d(input_shape, kernel_size, strides=1, dilation=1, padding=0):
    """Plans an NHWC convolution with per-side zero `padding` (int, `(ph, pw)` or
    `((top, bottom), (left, right))`) for an input shape whose height/width may be None."""
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(strides)
    (pt, pb), (pl, pr) = _padding_pairs(padding)
    rows = _axis_plan(input_shape[1], kh, sh, dilation, (pt, pb))
    cols = _axis_plan(input_shape[2], kw, sw, dilation, (pl, pr))
    return ConvPlan(rows, cols, (kh, kw), (sh, sw), dilation, ((pt, pb), (pl, pr)))


def prepare_input(x, plan):
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


def subsample(x, offsets, steps):
    """`x[:, oh::sh, ow::sw, :]`. From offset 0 this is a 1×1 average pool with stride
    `steps`: the same values, and its gradient is a cheap pooling gradient, whereas the gradient of
    a strided slice costs about as much as a convolution (scatter into a zero tensor)."""
    (oh, ow), (sh, sw) = offsets, steps
    if oh or ow:
        return x[:, oh::sh, ow::sw, :]
    return tf.nn.avg_pool2d(x, ksize=1, strides=[1, sh, sw, 1], padding="VALID")


def run_conv2d(prepared, kernel, plan, input_shape):
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


def _onednn_enabled():
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):  # pragma: no cover - private API moved
        return False


# oneDNN's CPU kernels (on by default on x86 Linux) differentiate grouped and dilated
# convolutions; TensorFlow's own CPU kernels do not ("Gradients for grouped convolutions are not
# supported on CPU", "do not yet support dilation rates larger than 1"). Without oneDNN (e.g.
# TF_ENABLE_ONEDNN_OPTS=0), groups are split into slices and dilation goes through
# tf.nn.convolution's space-to-batch, which both differentiate everywhere.
NATIVE_GROUPED_DILATED = _onednn_enabled()


def _conv_call(x, kernel, strides, tf_padding, dilations):
    """`tf.nn.conv2d`, or its portable equivalent when the native gradients are unavailable.

    Plans never combine a stride with a dilation here (see `_axis_plan`)."""
    groups = x.shape[-1] // kernel.shape[2]
    dilated = dilations != (1, 1)
    if NATIVE_GROUPED_DILATED or (groups == 1 and not dilated):
        return tf.nn.conv2d(
            x,
            kernel,
            strides=[1, *strides, 1],
            padding=tf_padding,
            dilations=[1, *dilations, 1] if dilated else None,
        )
    if groups > 1:
        parts = zip(
            tf.split(x, groups, axis=-1), tf.split(kernel, groups, axis=-1), strict=True
        )
        return tf.concat(
            [_conv_call(xg, kg, strides, tf_padding, dilations) for xg, kg in parts], axis=-1
        )
    return tf.nn.convolution(
        x, kernel, strides=list(strides), padding=tf_padding, dilations=list(dilations)
    )


def _exact_size(size, plan, axis):
    lo, hi = plan.padding[axis]
    span = plan.dilation * (plan.kernel_size[axis] - 1) + 1
    return (size + lo + hi - span) // plan.strides[axis] + 1


def conv2d(x, kernel, strides=1, dilation=1, padding=0, groups=None):
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


def tf_same_padding(size, kernel_size, strides=1, dilation=1):
    """TF's 'SAME' padding `(lo, hi)` of one axis of static length `size` (bottom/right-heavy)."""
    span = dilation * (kernel_size - 1) + 1
    out = -(-size // strides)
    total = max((out - 1) * strides + span - size, 0)
    return total // 2, total - total // 2


def roll_blocks(y, shift, blocks, groups=1):
    """Rolls the channel axis of `y` by `shift` blocks inside each of `groups` channel groups
    (`blocks` blocks per group): block b of a group moves to block (b + shift) mod blocks."""
    shift %= blocks
    if shift == 0:
        return y
    channels = y.shape[-1]
    block = channels // (groups * blocks)
    if groups == 1:
        return tf.roll(y, shift * block, axis=-1)
    shape = tf.shape(y)
    grouped = tf.reshape(y, tf.concat([shape[:-1], [groups, blocks * block]], 0))
    return tf.reshape(tf.roll(grouped, shift * block, axis=-1), shape)


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
