"""GroupedConv2D: `keras.layers.Conv2D(groups > 1)` on TensorFlow's native grouped kernel.

Reference: grouped convolution as used by ResNeXt, Xie et al., "Aggregated Residual
Transformations for Deep Neural Networks", CVPR 2017, https://arxiv.org/abs/1611.05431.

Definition: input channels and filters are split into `groups` contiguous groups; output group g
is an ordinary convolution of input group g with its own `K×K×(C_in/groups)×(filters/groups)`
kernel; the outputs are concatenated. This is exactly `keras.layers.Conv2D(..., groups=groups)`,
same arguments, same weights, same padding semantics (TF 'same'/'valid').

Why a layer: Keras 3's TensorFlow backend runs `Conv2D(groups > 1)` through XLA on CPU, which
trains about 50x slower than `tf.nn.conv2d` on an input with `groups` times the kernel's input
channels (oneDNN's grouped kernel). This subclass only replaces the convolution call (see
`layers/_conv_ops.py`, which also computes half precision in float32 and keeps gradients where
TensorFlow's own CPU kernels have none). Being a `Conv2D` subclass, it is picked up by
`keras_structconv.convert` like any convolution (e.g. to become a PSConv2D).

Example:

```python
layer = GroupedConv2D(128, 3, padding="same", groups=32, use_bias=False)
y = layer(np.zeros((2, 14, 14, 128), "float32"))  # (2, 14, 14, 128), 4,608 weights
```
"""

import keras

from keras_structconv.layers import _conv_ops

__all__ = ["GroupedConv2D"]


@keras.saving.register_keras_serializable(package="keras_structconv")
class GroupedConv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` whose (grouped) convolution calls `tf.nn.conv2d` directly.

    Args: those of `keras.layers.Conv2D`; `data_format` must be "channels_last", and a stride
    together with a dilation needs static height and width under `padding="same"`.

    Input shape: `(batch, height, width, channels)`, channels divisible by `groups`.
    Output shape: `(batch, new_height, new_width, filters)` as `Conv2D`'s.

    Example:

    >>> GroupedConv2D(64, 3, groups=8, padding="same")(np.zeros((1, 8, 8, 64), "f4")).shape
    TensorShape([1, 8, 8, 64])
    """

    def __init__(self, filters, kernel_size, **kwargs):
        super().__init__(filters, kernel_size, **kwargs)
        if self.data_format != "channels_last":
            raise ValueError(
                "GroupedConv2D supports only data_format='channels_last' (NHWC). "
                f"Received: data_format={self.data_format!r}"
            )

    def convolution_op(self, inputs, kernel):
        padding = self._explicit_padding(inputs.shape)
        return _conv_ops.conv2d(
            inputs,
            kernel,
            strides=self.strides,
            dilation=self._dilation(),
            padding=padding,
            groups=self.groups,
        )

    def _dilation(self):
        rows, cols = self.dilation_rate
        if rows != cols:
            raise ValueError(
                "GroupedConv2D needs the same dilation on both axes. "
                f"Received: dilation_rate={self.dilation_rate}"
            )
        return rows

    def _explicit_padding(self, input_shape):
        """Per-side zero padding equal to TF's 'valid'/'same' for this input."""
        if self.padding == "valid":
            return 0
        dilation = self._dilation()
        pads = []
        for axis in range(2):
            size, kernel, stride = input_shape[axis + 1], self.kernel_size[axis], self.strides[axis]
            if size is None:
                if stride > 1 and dilation > 1:
                    raise ValueError(
                        "GroupedConv2D with padding='same', a stride and a dilation needs static "
                        f"height and width. Received: input_shape={input_shape}"
                    )
                # TF 'SAME' pads (k-1)d split bottom/right-heavy at stride 1; with a stride and
                # no dilation it depends on the size: run TF's own 'SAME' at call time.
                if stride > 1:
                    return "same"
                total = dilation * (kernel - 1)
                pads.append((total // 2, total - total // 2))
            else:
                pads.append(_conv_ops.tf_same_padding(size, kernel, stride, dilation))
        return tuple(pads)
