"""Independent references of PSConv2D, written from the definition: the paper's Eq. 3 with the
block dilation matrix as one dilated convolution per (output block, input block) pair, in NumPy
float64 (values and gradients) and in plain TF (a sum over kernel taps, differentiable by every
TensorFlow runtime); the slot layout unpacked with loops; the helpers the PSConv2D test modules
share."""

import numpy as np
import tensorflow as tf

from keras_structconv.layers.ps_conv import PSConv2D
from tests.references import numpy_conv2d


def block_dilations(pattern, cin, cout, groups):
    """SPEC's block D per group: D[o, k] = pattern[(k // (cin_g/t) - o // (cout_g/t)) mod t],
    written out channel by channel (C_out/groups × C_in/groups)."""
    t = len(pattern)
    cin_g, cout_g = cin // groups, cout // groups
    return np.array(
        [
            [pattern[(k // (cin_g // t) - o // (cout_g // t)) % t] for k in range(cin_g)]
            for o in range(cout_g)
        ]
    )


def slot_kernel_to_dense_loops(slots, groups):
    """The documented slot layout, unpacked with plain loops (independent of the layer's code):
    kernel[s, :, :, i, c] with c in input block b of group g feeds output block (b - s) mod t."""
    t, kh, kw, bi, cout = slots.shape
    bo = cout // (groups * t)
    dense = np.zeros((kh, kw, t * bi, cout), slots.dtype)
    for s in range(t):
        for g in range(groups):
            for b in range(t):
                ob = (b - s) % t
                src = slice(g * t * bo + b * bo, g * t * bo + (b + 1) * bo)
                dst = slice(g * t * bo + ob * bo, g * t * bo + (ob + 1) * bo)
                dense[:, :, b * bi : (b + 1) * bi, dst] = slots[s, :, :, :, src]
    return dense


def literal_reference(x, dense, strides, padding, pattern, groups):
    """Eq. 3 with SPEC's block D, one dilated conv per (output block, input block) pair, in
    NumPy float64. Returns y and backward(dy) -> (dx, d dense kernel)."""
    t = len(pattern)
    kh, kw, cin_g, cout = dense.shape
    cout_g = cout // groups
    bi, bo = cin_g // t, cout_g // t
    pieces = []
    for g in range(groups):
        for ob in range(t):
            for kb in range(t):
                r = pattern[(kb - ob) % t]
                extra = 0 if padding == "same" else 1
                pads = (((r - extra) * (kh - 1) // 2,) * 2, ((r - extra) * (kw - 1) // 2,) * 2)
                ci = slice(g * cin_g + kb * bi, g * cin_g + (kb + 1) * bi)
                co = slice(g * cout_g + ob * bo, g * cout_g + (ob + 1) * bo)
                k_in = slice(kb * bi, (kb + 1) * bi)
                y, back = numpy_conv2d(x[..., ci], dense[:, :, k_in, co], strides, r, pads)
                pieces.append((ci, co, k_in, y, back))
    y = np.zeros(pieces[0][3].shape[:3] + (cout,))
    for _, co, _, part, _ in pieces:
        y[..., co] += part

    def backward(dy):
        dx = np.zeros(x.shape)
        dk = np.zeros(dense.shape)
        for ci, co, k_in, _, back in pieces:
            dxi, dki = back(dy[..., co])
            dx[..., ci] += dxi
            dk[:, :, k_in, co] += dki
        return dx, dk

    return y, backward


def dilated_conv_by_taps(x, kernel, dilation):
    """'VALID' dilated convolution written as a sum over the kernel taps of shifted inputs times
    the tap's matrix: plain slices and matmuls, differentiable by every TensorFlow runtime."""
    kh, kw = kernel.shape[:2]
    out_h = x.shape[1] - dilation * (kh - 1)
    out_w = x.shape[2] - dilation * (kw - 1)
    y = 0.0
    for i in range(kh):
        for j in range(kw):
            window = x[:, i * dilation : i * dilation + out_h, j * dilation : j * dilation + out_w]
            y = y + tf.einsum("nhwc,co->nhwo", window, kernel[i, j])
    return y


def tf_literal_reference(layer, x):
    """Differentiable TF version of the literal reference, for the shared harness: one dilated
    conv (a sum over taps) per (output block, input block) pair, stride taken by slicing the
    stride-1 output."""
    t, groups = layer.cyclic_interval, layer.groups
    kernel = tf.cast(layer.kernel, "float32")
    x = tf.cast(x, "float32")
    _, kh, kw, bi, cout = kernel.shape
    bo = cout // (groups * t)
    outputs = [[0.0] * t for _ in range(groups)]
    for s in range(t):
        r = layer.dilation_pattern[s]
        extra = 0 if layer.padding == "same" else 1
        ph, pw = (r - extra) * (kh - 1) // 2, (r - extra) * (kw - 1) // 2
        for g in range(groups):
            for b in range(t):
                xb = x[..., (g * t + b) * bi : (g * t + b + 1) * bi]
                xb = tf.pad(xb, [[0, 0], [ph, ph], [pw, pw], [0, 0]])
                w = kernel[s, :, :, :, (g * t + b) * bo : (g * t + b + 1) * bo]
                y = dilated_conv_by_taps(xb, w, r)
                y = y[:, :: layer.strides[0], :: layer.strides[1], :]
                outputs[g][(b - s) % t] = outputs[g][(b - s) % t] + y
    y = tf.concat([block for group in outputs for block in group], axis=-1)
    if layer.use_bias:
        y = y + layer.bias
    return y


def _cotangent(shape):
    return (np.arange(np.prod(shape)).reshape(shape) % 5 - 2).astype("float64")


def _layer_values_and_grads(layer, x, cot):
    x = tf.constant(x, "float32")
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(y * tf.constant(cot, "float32"))
    dx, dkernel = tape.gradient(loss, [x, layer.kernel])
    return y.numpy(), dx.numpy(), dkernel.numpy()


def ps_layer(*args, formulation=None, **kwargs):
    """A PSConv2D computed with `formulation` (None: the one the layer picks)."""
    layer = PSConv2D(*args, **kwargs)
    layer._formulation = formulation
    return layer


def check_against_literal(shape, filters, kernel_size, strides, padding, pattern, groups, seed=0,
                          formulation=None):
    """A random PSConv2D (computed with `formulation`) against `literal_reference`: output,
    input gradient and kernel gradient for a random input of `shape`."""
    rng = np.random.default_rng(seed)
    t = len(pattern)
    layer = ps_layer(filters, kernel_size, strides=strides, padding=padding, cyclic_interval=t,
                     dilation_pattern=pattern, groups=groups, formulation=formulation)
    x = rng.standard_normal(shape).astype("float32")
    layer.build(x.shape)
    assert layer._formulation == (formulation or layer._formulation)
    layer.kernel.assign(rng.standard_normal(layer.kernel.shape).astype("float32"))
    dense = slot_kernel_to_dense_loops(layer.kernel.numpy(), groups)
    y_ref, backward = literal_reference(x, dense.astype("float64"), layer.strides, padding,
                                        pattern, groups)
    cot = _cotangent(y_ref.shape)
    y, dx, dslots = _layer_values_and_grads(layer, x, cot)
    dx_ref, ddense_ref = backward(cot)
    assert y.shape == tuple(layer.compute_output_shape(x.shape))
    np.testing.assert_allclose(y, y_ref, atol=1e-5 * max(1.0, np.abs(y_ref).max()), rtol=1e-5)
    np.testing.assert_allclose(dx, dx_ref, atol=1e-5 * max(1.0, np.abs(dx_ref).max()), rtol=1e-5)
    ddense = slot_kernel_to_dense_loops(dslots, groups)
    np.testing.assert_allclose(
        ddense, ddense_ref, atol=1e-5 * max(1.0, np.abs(ddense_ref).max()), rtol=1e-5
    )
