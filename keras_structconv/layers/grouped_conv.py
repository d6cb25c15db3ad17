"""GroupedConv2D: `keras.layers.Conv2D(groups > 1)` computed with `tf.nn` directly.

Reference: grouped convolution as used by ResNeXt, Xie et al., "Aggregated Residual
Transformations for Deep Neural Networks", CVPR 2017, Section 3.3 (Fig. 3c),
https://arxiv.org/abs/1611.05431.

Definition: input channels and filters are split into `groups` contiguous groups; output group g
is an ordinary convolution of input group g with its own `K×K×(C_in/groups)×(filters/groups)`
kernel; the outputs are concatenated. This is exactly `keras.layers.Conv2D(..., groups=groups)`,
same arguments, same weights, same padding semantics (TF 'same'/'valid').

Keras 3's TensorFlow backend runs `Conv2D(groups > 1)` through XLA on CPU, which trains about 50x
slower; this subclass only replaces the convolution call by `layers/_conv_ops.conv2d` (one native
grouped `tf.nn.conv2d` with oneDNN, one convolution per group with TensorFlow's own CPU kernels,
whose grouped convolutions have no gradient; half precision computed in float32). Being a
`Conv2D` subclass, `keras_structconv.convert` treats it as any convolution (e.g. to become a
PSConv2D).

Example:

```python
layer = GroupedConv2D(128, 3, padding="same", groups=32, use_bias=False)
y = layer(np.zeros((2, 14, 14, 128), "float32"))  # (2, 14, 14, 128), 4,608 weights
```
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from keras_structconv import _validation
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

    def __init__(self, filters: int, kernel_size: int | tuple[int, int], **kwargs: Any):
        super().__init__(filters, kernel_size, **kwargs)
        _validation.channels_last(self.data_format, "GroupedConv2D")

    def convolution_op(self, inputs: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
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
