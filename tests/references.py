"""Independent references and export checks shared by several test modules.

- `numpy_conv2d`: a textbook grouped, dilated, strided convolution in NumPy (float64) with its
  backward pass, written from the definition.
- `portable_trace`, `tflite_outputs`, `onnx_outputs`: a layer traced in `portable_ops()`, run in
  TFLite's interpreter with builtin ops only, or through tf2onnx (opset 17) in onnxruntime.
- `assert_relative_close`: max |error| relative to the largest expected value.
- `tree_attention_logit`: TreeAttention's tree written with plain loops over groups, one channel
  at a time, from the layer's weights (NumPy arrays or TF tensors).
"""

import importlib.util

import numpy as np
import pytest
import tensorflow as tf

from keras_structconv.layers._portable import portable_ops

HAS_ONNX = all(
    importlib.util.find_spec(module) is not None for module in ("tf2onnx", "onnxruntime")
)
needs_onnx = pytest.mark.skipif(
    not HAS_ONNX, reason="tf2onnx/onnxruntime not installed (pip install tf2onnx onnxruntime)"
)


def numpy_conv2d(x, kernel, strides, dilation, padding):
    """Textbook grouped convolution: zero-pad per side, then sum over taps (float64).

    Returns the output and a function mapping an output cotangent to (dx, dkernel)."""
    x = np.asarray(x, "float64")
    kernel = np.asarray(kernel, "float64")
    (pt, pb), (pl, pr) = padding
    sh, sw = strides
    kh, kw, cin_group, cout = kernel.shape
    groups = x.shape[-1] // cin_group
    cout_group = cout // groups
    xp = np.pad(x, [(0, 0), (pt, pb), (pl, pr), (0, 0)])
    ho = (xp.shape[1] - dilation * (kh - 1) - 1) // sh + 1
    wo = (xp.shape[2] - dilation * (kw - 1) - 1) // sw + 1

    def window(i, j):
        r0, c0 = i * dilation, j * dilation
        rows = slice(r0, r0 + sh * (ho - 1) + 1, sh)
        return (slice(None), rows, slice(c0, c0 + sw * (wo - 1) + 1, sw))

    y = np.zeros((x.shape[0], ho, wo, cout))
    for g in range(groups):
        ci = slice(g * cin_group, (g + 1) * cin_group)
        co = slice(g * cout_group, (g + 1) * cout_group)
        for i in range(kh):
            for j in range(kw):
                y[..., co] += xp[window(i, j) + (ci,)] @ kernel[i, j, :, co]

    def backward(dy):
        dy = np.asarray(dy, "float64")
        dxp = np.zeros_like(xp)
        dk = np.zeros_like(kernel)
        for g in range(groups):
            ci = slice(g * cin_group, (g + 1) * cin_group)
            co = slice(g * cout_group, (g + 1) * cout_group)
            for i in range(kh):
                for j in range(kw):
                    patch = xp[window(i, j) + (ci,)]
                    dk[i, j, :, co] += np.einsum("nhwc,nhwo->co", patch, dy[..., co])
                    dxp[window(i, j) + (ci,)] += dy[..., co] @ kernel[i, j, :, co].T
        dx = dxp[:, pt : pt + x.shape[1], pl : pl + x.shape[2], :]
        return dx, dk

    return y, backward


def assert_relative_close(actual, expected, rtol):
    """max |actual - expected| <= rtol * max |expected|."""
    actual, expected = np.asarray(actual, "float64"), np.asarray(expected, "float64")
    assert actual.shape == expected.shape
    error = np.abs(actual - expected).max() / np.abs(expected).max()
    assert error <= rtol, f"max error {error:.2e} of the largest output, more than {rtol}"


def portable_trace(layer, shape):
    """The inference concrete function of `layer` for `shape`, traced inside portable_ops()."""
    fn = tf.function(lambda x: layer(x, training=False))
    with portable_ops():
        return fn.get_concrete_function(tf.TensorSpec(shape, tf.float32))


def tflite_outputs(layer, x):
    """`layer(x)` converted with TFLite's builtin ops only and run in tf.lite.Interpreter."""
    # An empty trackable freezes the variables into constants (given the Keras layer, the
    # converter keeps them as resource variables that the interpreter never initialises).
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [portable_trace(layer, x.shape)], tf.Module()
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = tf.lite.Interpreter(model_content=converter.convert())
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def onnx_outputs(layer, x):
    """`layer(x)` converted by tf2onnx (opset 17) and run in onnxruntime."""
    import onnxruntime
    import tf2onnx

    fn = tf.function(lambda v: layer(v, training=False))
    with portable_ops():
        proto, _ = tf2onnx.convert.from_function(
            fn, input_signature=[tf.TensorSpec(x.shape, tf.float32, name="x")], opset=17
        )
    session = onnxruntime.InferenceSession(
        proto.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def tree_attention_logit(channels, weights, group_size, prelu):
    """The logit `Z` of TreeAttention's gate `sigmoid(Z)`: levels of g-channel groups, each unit
    `bias[j] + sum_k z[j*g + k] * kernel[0, 0, k, j]` followed by `prelu(unit, alpha[j])` unless
    the level reaches one channel, while the count is divisible by g; then a 1x1 convolution to
    one channel if more are left.

    Args:
        channels: the input's channels, one `(N, H, W)` array or tensor each.
        weights: the layer's weights by name (`kernel_i`, `bias_i`, `alpha_i`).
        group_size: g.
        prelu: `prelu(unit, alpha) -> activation`, in the caller's array library.
    """
    g = group_size
    z, level = list(channels), 0
    while len(z) % g == 0 and len(z) > 1:
        kernel, bias = weights[f"kernel_{level}"], weights[f"bias_{level}"]
        out = []
        for j in range(len(z) // g):
            unit = bias[j] + sum(z[j * g + k] * kernel[0, 0, k, j] for k in range(g))
            if len(z) // g > 1:
                unit = prelu(unit, weights[f"alpha_{level}"][j])
            out.append(unit)
        z, level = out, level + 1
    if len(z) > 1:
        kernel, bias = weights[f"kernel_{level}"], weights[f"bias_{level}"]
        z = [bias[0] + sum(z[c] * kernel[0, 0, c, 0] for c in range(len(z)))]
    return z[0]
