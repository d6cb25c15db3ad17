"""Independent references of the tree convolutions, written from the definitions: plain TF for
values and gradients (sequential parse, `tf.nn.avg_pool2d`, a gather for the upsampling, explicit
symmetric padding) and NumPy loops for the pooling/upsampling/stride geometry; the cases and
helpers the tree-convolution test modules share."""

import keras
import numpy as np
import tensorflow as tf

from keras_structconv.layers import TreeConv2D
from tests.layer_harness import LayerCase, check_reference


def _weights(layer):
    return {w.name: w for w in layer.weights}


def widths(filters, depth):
    """Near-equal split written as counting: leaf i gets ceil((filters - i) / (depth + 1))."""
    return [-(-(filters - i) // (depth + 1)) for i in range(depth + 1)]


def sequential_leaves(x, gate_kernel, gate_bias, depth):
    """Eq. 1-2 literally: gate = sigmoid(conv1x1(S) + b), L = gate * S, S = S - L."""
    s, leaves = x, []
    for level in range(depth):
        kernel = tf.reshape(gate_kernel[:, level], (1, 1, -1, 1))
        gate = tf.sigmoid(tf.nn.conv2d(s, kernel, 1, "VALID") + gate_bias[level])
        leaves.append(gate * s)
        s = s - leaves[-1]
    return leaves + [s]


def vanilla_kernel(layer):
    """The leaf kernels side by side: the `(K, K, C, filters)` kernel of a vanilla conv."""
    return np.concatenate([np.asarray(layer.leaf_kernels[i]) for i in range(layer.depth + 1)], -1)


def _cell_index(out_size, in_size, f, strides):
    """Output row i takes the TF-'SAME' pooling cell containing input row strides * i."""
    cells = -(-in_size // f)
    top = (cells * f - in_size) // 2
    return [(strides * i + top) // f for i in range(out_size)]


def _up(y, f, strides, in_h, in_w):
    out_h, out_w = -(-in_h // strides), -(-in_w // strides)
    y = tf.gather(y, _cell_index(out_h, in_h, f, strides), axis=1)
    return tf.gather(y, _cell_index(out_w, in_w, f, strides), axis=2)


def _symmetric_conv(x, kernel, strides):
    pad = (kernel.shape[0] - 1) // 2
    x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    return tf.nn.conv2d(x, kernel, strides, "VALID")


def _leaf_columns(layer, vanilla):
    """(level, pooling factor, kernel) of every leaf: its `widths` columns of `vanilla`."""
    start = 0
    for level, width in enumerate(widths(layer.filters, layer.depth)):
        yield level, 2 ** (layer.depth - level), vanilla[..., start : start + width]
        start += width


def _parse(layer, x):
    """The layer's weights by name, `x` as a tensor, and its leaves (Eq. 1-2)."""
    w = _weights(layer)
    x = tf.convert_to_tensor(x)
    return w, x, sequential_leaves(x, w["gate_kernel"], w["gate_bias"], layer.depth)


def _concat_fuse_and_bias(layer, w, outputs):
    y = tf.concat(outputs, axis=-1)
    if layer.fuse:
        y = tf.nn.conv2d(y, w["fusion_kernel"], 1, "VALID")
    if layer.use_bias:
        y = y + w["bias"]
    return y


def reference_paper(layer, x):
    """TreeConv2D in plain TF: sequential parse, tf.nn.avg_pool2d, a gather for the upsampling
    (index formula above), explicit symmetric padding, concat, fusion, bias."""
    w, x, leaves = _parse(layer, x)
    s, h, wd = layer.strides, x.shape[1], x.shape[2]
    vanilla = tf.concat([w[f"kernel_{level}"] for level in range(layer.depth + 1)], axis=-1)
    outputs = []
    for level, f, kernel in _leaf_columns(layer, vanilla):
        if f == 1:
            outputs.append(_symmetric_conv(leaves[level], kernel, s))
        else:
            pooled = tf.nn.avg_pool2d(leaves[level], f, f, "SAME")
            outputs.append(_up(_symmetric_conv(pooled, kernel, 1), f, s, h, wd))
    return _concat_fuse_and_bias(layer, w, outputs)


def _bn_inference(norm, u):
    gamma, beta, mean, var = (tf.convert_to_tensor(v) for v in norm.weights)
    return (u - mean) / tf.sqrt(var + 1e-5) * gamma + beta


def reference_authors(layer, x):
    """ReferenceTreeConv2D: sigmoid(BN(U_l)) gates O = ReLU(BN(conv(x))), BNs in inference."""
    w, x, leaves = _parse(layer, x)
    d, s, h, wd = layer.depth, layer.strides, x.shape[1], x.shape[2]
    branch = tf.nn.relu(_bn_inference(layer.branch_norm, _symmetric_conv(x, w["branch_kernel"], s)))
    outputs = []
    for level in range(d + 1):
        f = 2 ** (d - level)
        kernel = w[f"leaf_kernel_{level}"]
        if f == 1:
            u = _symmetric_conv(leaves[level], kernel, s)
        else:
            u = _symmetric_conv(tf.nn.avg_pool2d(leaves[level], f, f, "SAME"), kernel, 1)
        gate = tf.sigmoid(_bn_inference(layer.leaf_norms[level], u))
        if f > 1:
            gate = _up(gate, f, s, h, wd)
        outputs.append(gate * branch)
    return _concat_fuse_and_bias(layer, w, outputs)


def numpy_paper(layer, x):
    """Forward of the paper variant with NumPy loops over cells, taps and output pixels (no TF
    pooling/conv/resize semantics involved): the geometry of the layer docstring."""
    w = {k: np.asarray(v, "float64") for k, v in _weights(layer).items()}
    x = np.asarray(x, "float64")
    d, s, k = layer.depth, layer.strides, layer.kernel_size
    n, h, wd, _ = x.shape
    rest, leaves = x, []
    for level in range(d):
        gate = 1 / (1 + np.exp(-(rest @ w["gate_kernel"][:, level] + w["gate_bias"][level])))
        leaves.append(gate[..., None] * rest)
        rest = rest - leaves[-1]
    leaves.append(rest)

    def pool(t, f):
        rows, cols = -(-h // f), -(-wd // f)
        top, left = (rows * f - h) // 2, (cols * f - wd) // 2
        out = np.zeros((n, rows, cols, t.shape[-1]))
        for i in range(rows):
            for j in range(cols):
                r0, r1 = max(i * f - top, 0), min((i + 1) * f - top, h)
                c0, c1 = max(j * f - left, 0), min((j + 1) * f - left, wd)
                out[:, i, j] = t[:, r0:r1, c0:c1].mean(axis=(1, 2))
        return out, top, left

    def conv(t, kernel, stride):
        p = (k - 1) // 2
        padded = np.pad(t, [(0, 0), (p, p), (p, p), (0, 0)])
        rows = (t.shape[1] - 1) // stride + 1
        cols = (t.shape[2] - 1) // stride + 1
        out = np.zeros((n, rows, cols, kernel.shape[-1]))
        for i in range(rows):
            for j in range(cols):
                patch = padded[:, i * stride : i * stride + k, j * stride : j * stride + k]
                out[:, i, j] = np.einsum("nabc,abco->no", patch, kernel)
        return out

    out_h, out_w = -(-h // s), -(-wd // s)
    outputs = []
    for level, f, kernel in _leaf_columns(layer, vanilla_kernel(layer)):
        if f == 1:
            outputs.append(conv(leaves[level], kernel, s))
            continue
        pooled, top, left = pool(leaves[level], f)
        y = conv(pooled, kernel, 1)
        up = np.zeros((n, out_h, out_w, kernel.shape[-1]))
        for i in range(out_h):
            for j in range(out_w):
                # the cell holding the centre of output pixel (i, j): input pixel (s*i, s*j)
                up[:, i, j] = y[:, (s * i + top) // f, (s * j + left) // f]
        outputs.append(up)
    y = np.concatenate(outputs, axis=-1)
    if layer.fuse:
        y = y @ w["fusion_kernel"][0, 0]
    if layer.use_bias:
        y = y + w["bias"]
    return y


# Shapes are shared between tests where possible: the XLA kernels compile once per
# (depth, input shape, dtype) and process.
HARNESS_SHAPE = (2, 13, 10, 8)
HARNESS_KWARGS = dict(filters=8, depth=3, strides=2, use_bias=True)
REFERENCE_CASES = [
    # 13x10 at stride 2: pooling cells padded by 1 and 3 rows in front (odd, > 1)
    (HARNESS_SHAPE, HARNESS_KWARGS),
    ((2, 9, 9, 6), dict(filters=8, depth=3)),  # odd size, 3 padded rows in front at f = 8
    ((1, 10, 12, 4), dict(filters=9, depth=2, strides=2, fuse=True)),
    ((2, 3, 5, 4), dict(filters=6, depth=4)),  # smaller than the deepest pool (16)
    ((1, 7, 7, 3), dict(filters=6, depth=5, kernel_size=1)),
    ((2, 11, 11, 4), dict(filters=4, depth=1, kernel_size=5, strides=2)),
]


def random_layer(input_shape, seed=0, layer_class=TreeConv2D, **kwargs):
    """A built layer with non-trivial gates (random biases, larger gate weights)."""
    kwargs.setdefault("gate_kernel_initializer", keras.initializers.RandomNormal(0, 0.7, seed))
    kwargs.setdefault("gate_bias_initializer", keras.initializers.RandomNormal(0, 1.0, seed + 1))
    if kwargs.get("use_bias"):
        kwargs.setdefault("bias_initializer", keras.initializers.RandomNormal(0, 1.0, seed + 2))
    layer = layer_class(**kwargs)
    layer.build(input_shape)
    return layer


def sample(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def assert_matches(layer, reference, shape, atol=1e-5):
    """Output and gradients (input, every trainable weight) equal the reference's."""
    case = LayerCase(
        factory=lambda: layer, input_shape=shape, reference=reference, atol=atol, rtol=1e-5
    )
    check_reference(case)
