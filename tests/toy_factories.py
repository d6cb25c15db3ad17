"""Toy factories for `convert` and the model builders, shared by the surgery and model tests.

- `copy_conv`: replaces a conv by a `CopyConv2D` (a plain Conv2D subclass), so weights copy over
  and outputs stay equal;
- `FoldingConv()`: a factory with `folds_zero_padding = True` building `ExplicitPadConv2D`, a
  Conv2D that pads its input itself (what ZeroPadding2D + conv computes);
- `scale_attention`: a trivial attention module, `ChannelScale` (per-channel learned scale,
  1.0 at init so it starts as an exact identity); `ChannelScale` is also the correct toy layer
  that tests/test_layer_harness.py runs the harness on.
"""

import keras

from keras_structconv.layers.conv_factory import ConvFactory

PACKAGE = "keras_structconv_tests"


@keras.saving.register_keras_serializable(package=PACKAGE)
class CopyConv2D(keras.layers.Conv2D):
    """A Conv2D subclass: a replacement whose weights have the original's shapes."""


@keras.saving.register_keras_serializable(package=PACKAGE)
class ExplicitPadConv2D(keras.layers.Conv2D):
    """Conv2D that zero-pads its input itself: what a folded ZeroPadding2D + conv must equal."""

    def __init__(self, zero_padding=((0, 0), (0, 0)), **kwargs):
        super().__init__(**kwargs)
        self.zero_padding = tuple(tuple(int(p) for p in pair) for pair in zero_padding)

    def _pad(self, inputs):
        (top, bottom), (left, right) = self.zero_padding
        return keras.ops.pad(inputs, [[0, 0], [top, bottom], [left, right], [0, 0]])

    def build(self, input_shape):
        super().build(self._padded_shape(input_shape))

    def _padded_shape(self, shape):
        (top, bottom), (left, right) = self.zero_padding
        height = None if shape[1] is None else shape[1] + top + bottom
        width = None if shape[2] is None else shape[2] + left + right
        return (shape[0], height, width, shape[3])

    def call(self, inputs):
        return super().call(self._pad(inputs))

    def compute_output_shape(self, input_shape):
        return super().compute_output_shape(self._padded_shape(input_shape))

    def get_config(self):
        return {**super().get_config(), "zero_padding": self.zero_padding}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ChannelScale(keras.layers.Layer):
    """y = x * w * scale: `w` a learned per-channel vector starting at `value`, `scale` a fixed
    factor (so the config, not only the weights, decides the output)."""

    def __init__(self, value=1.0, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.value = value
        self.scale = scale

    def build(self, input_shape):
        self.w = self.add_weight(
            shape=(input_shape[-1],), initializer=keras.initializers.Constant(self.value), name="w"
        )

    def call(self, inputs):
        return inputs * keras.ops.cast(self.w, inputs.dtype) * self.scale

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "value": self.value, "scale": self.scale}


def copy_conv(old_conv):
    return CopyConv2D.from_config(old_conv.get_config())


class FoldingConv(ConvFactory):
    """A factory that asks for the ZeroPadding2D before a conv to be folded into it."""

    def __init__(self):
        super().__init__(self._build, folds_zero_padding=True)
        object.__setattr__(self, "folded_paddings", [])

    def _build(self, old_conv, zero_padding=((0, 0), (0, 0))):
        self.folded_paddings.append(zero_padding)
        return ExplicitPadConv2D(zero_padding=zero_padding, **old_conv.get_config())


def scale_attention(channels):
    return ChannelScale()
