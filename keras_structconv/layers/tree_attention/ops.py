"""Building blocks of the compiled TAM kernels: grouped 1x1 sums, PReLU, reductions, pairs.

Everything here is traced inside the XLA kernels of `kernels.py`; the shapes are static there.
"""

from __future__ import annotations

import tensorflow as tf

from keras_structconv.layers._xla import barrier

# XLA:CPU emits a reduction of 2, 4 or 8 elements fused with its producer as a fast loop; a
# longer one first writes its operand out in full or walks it column by column. Long sums are
# therefore taken 8 (or 4, 2) elements at a time.
SUM_STEP = 8


def prelu(z: tf.Tensor, alpha: tf.Tensor) -> tf.Tensor:
    """Per-channel PReLU: `z` where positive, `alpha * z` elsewhere."""
    return tf.maximum(z, 0.0) + alpha * tf.minimum(z, 0.0)


def grouped_sum(z: tf.Tensor, kernel: tf.Tensor, fan_in: int) -> tf.Tensor:
    """Grouped 1x1 conv without bias: output j = sum_k z[..., j*fan_in + k] * kernel[0, 0, k, j]."""
    # Strided slices, not reshape + reduce: a fused reduction is recomputed for every use (a
    # PReLU uses its input twice, so a fused tree of reductions would cost 2^depth).
    return tf.add_n([z[..., k::fan_in] * kernel[0, 0, k] for k in range(fan_in)])


def grouped(t: tf.Tensor, fan_in: int) -> tf.Tensor:
    """`(..., out * fan_in)` -> `(..., out, fan_in)`."""
    return tf.reshape(t, tf.concat([tf.shape(t)[:-1], [t.shape[-1] // fan_in, fan_in]], 0))


def expand(dz: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """Transpose of `grouped_sum`: `(..., out)` -> `(..., out * fan_in)`, dz[j] * kernel[k, j]."""
    spread = dz[..., None] * tf.transpose(kernel[0, 0])  # (..., out, fan_in)
    channels = spread.shape[-2] * spread.shape[-1]
    return tf.reshape(spread, tf.concat([tf.shape(dz)[:-1], [channels]], 0))


def _step(n: int) -> int:
    """The largest power of two <= 8 dividing n (a loop over 7 elements is 7x slower than 8)."""
    step = SUM_STEP
    while n % step:
        step //= 2
    return step


def channel_sum(t: tf.Tensor) -> tf.Tensor:
    """`sum(t, axis=-1, keepdims=True)` in steps of 8 (or 4, 2) channels."""
    while t.shape[-1] > 1:
        step = _step(t.shape[-1])
        if step == 1:
            return tf.reduce_sum(t, axis=-1, keepdims=True)
        shape = tf.concat([tf.shape(t)[:-1], [t.shape[-1] // step, step]], 0)
        # The barrier keeps the simplifier from merging consecutive reductions back into one.
        t = barrier(tf.reduce_sum(tf.reshape(t, shape), axis=-1))
    return t


def pixel_sum(t: tf.Tensor) -> tf.Tensor:
    """Sum over batch, height and width of `(batch, height, width, ...)`, 8 pixels at a time."""
    tail = t.shape[3:]
    flat = tf.reshape(t, tf.concat([[-1], tail], 0))
    pixels = tf.shape(flat)[0]
    # Zero rows pad the last group of 8 (a compile-time constant under XLA).
    padding = tf.concat([[[0, (-pixels) % SUM_STEP]], tf.zeros([len(tail), 2], tf.int32)], 0)
    groups = tf.reshape(tf.pad(flat, padding), tf.concat([[-1, SUM_STEP], tail], 0))
    return tf.reduce_sum(barrier(tf.reduce_sum(groups, axis=1)), axis=0)


def pixel_sums(*terms: tf.Tensor) -> list[tf.Tensor]:
    """`[pixel_sum(t) for t in terms]` as one reduction (the shared operands are read once)."""
    # Stacked before the channel axis: stacked last, the loop writes interleaved partial sums.
    return tf.unstack(pixel_sum(tf.stack(terms, axis=-2)), axis=-2)


def kernel_gradient(inputs: tf.Tensor, dz: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """Gradient of a grouped 1x1 kernel: sum over pixels of `inputs[j*fan_in + k] * dz[j]`."""
    per_group = pixel_sum(grouped(inputs, kernel.shape[2]) * dz[..., None])  # (out, fan_in)
    return tf.reshape(tf.transpose(per_group), kernel.shape)


# Group size 2: a level's input seen as complex64 pairs `(2j, 2j+1) -> j` makes every access
# aligned with the level's output channels (XLA:CPU vectorises interleaved accesses poorly).
# The bitcasts happen outside XLA, which cannot bitcast complex numbers; they copy nothing.


def as_pairs(t: tf.Tensor) -> tf.Tensor:
    """float32 `(..., 2m)` -> complex64 `(..., m)`, channels `(2j, 2j+1)` as `j`."""
    return tf.bitcast(grouped(t, 2), tf.complex64)


def from_pairs(t: tf.Tensor) -> tf.Tensor:
    """complex64 `(..., m)` -> float32 `(..., 2m)`, the inverse of `as_pairs`."""
    flat = tf.bitcast(t, tf.float32)
    return tf.reshape(flat, tf.concat([tf.shape(t)[:-1], [2 * t.shape[-1]]], 0))


def pair_parts(pairs: tf.Tensor, alpha: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
    """Channels 2j and 2j+1 of the pairs, through the PReLU of slopes `alpha` when given."""
    even, odd = tf.math.real(pairs), tf.math.imag(pairs)
    if alpha is not None:
        even, odd = prelu(even, alpha[0::2]), prelu(odd, alpha[1::2])
    return even, odd
