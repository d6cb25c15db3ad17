"""Masked dense references and test data for the sparse quadtree ops (plain TF/NumPy).

A sparse op must equal the masked dense computation (a dense map that is zero at inactive
sites) read at the active sites; these helpers build random sparse maps and those references.
"""

import numpy as np
import tensorflow as tf

ATOL = 1e-5


def random_map(seed, shape=(2, 7, 6, 4), density=0.5, shuffle=True):
    """A dense map, its mask and the sparse map (sites in a shuffled order)."""
    rng = np.random.default_rng(seed)
    dense = rng.standard_normal(shape).astype("float32")
    mask = rng.random(shape[:3]) < density
    indices = np.argwhere(mask).astype("int32")
    if shuffle:
        indices = indices[rng.permutation(len(indices))]
    features = dense[tuple(indices.T)]
    return dense * mask[..., None], mask, tf.constant(features), tf.constant(indices)

def masked(dense, mask):
    return dense * tf.cast(mask, dense.dtype)[..., None]

def at_sites(dense, indices):
    return tf.gather_nd(dense, indices)

def assert_close(actual, expected, atol=ATOL, rtol=ATOL, what=""):
    np.testing.assert_allclose(
        np.asarray(actual, "float64"), np.asarray(expected, "float64"), atol=atol, rtol=rtol,
        err_msg=what,
    )

def gradients(fn, inputs, cotangent_seed=7):
    """fn(*inputs) and the gradients of <fn(*inputs), r> w.r.t. every input."""
    inputs = [tf.convert_to_tensor(x) for x in inputs]
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        out = fn(*inputs)
        r = tf.constant(np.random.default_rng(cotangent_seed).standard_normal(out.shape), out.dtype)
        loss = tf.reduce_sum(out * r)
    return out, tape.gradient(loss, inputs)

def conv_reference(dense, mask, kernel, bias=None):
    """Masked dense 'same' convolution read at the active sites (zero elsewhere)."""
    out = tf.nn.conv2d(masked(dense, mask), kernel, 1, "SAME")
    if bias is not None:
        out = out + bias
    return masked(out, mask)

def bn_reference(x, mask, gamma, beta, epsilon=1e-5):
    """Batch norm with the statistics of the active sites only; zero at inactive sites."""
    m = tf.cast(mask, x.dtype)[..., None]
    count = tf.reduce_sum(m)
    mean = tf.reduce_sum(x * m, axis=[0, 1, 2]) / count
    variance = tf.reduce_sum(tf.square(x - mean) * m, axis=[0, 1, 2]) / count
    return masked(gamma * (x - mean) / tf.sqrt(variance + epsilon) + beta, mask), mean, variance
