"""A tiny residual network honouring the builders' factory protocol (`conv=`, `attention=`),
so that searches in tests take seconds: stem 3x3 (8), a block at 32x32 (8 channels) and a
stride-2 block at 16x16 (16 channels, 1x1 projection), both with two 3x3 convolutions."""

import keras

from keras_structconv.tuning.backbones import Backbone


def _conv(x, filters, strides, name, factory):
    template = keras.layers.Conv2D(
        filters, 3, strides=strides, padding="same", use_bias=False, name=name
    )
    layer = template if factory is None else factory(template)
    layer.name = name
    return layer(x)


def _block(x, filters, strides, name, conv, attention):
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, strides=strides, name=f"{name}_proj")(x)
    y = _conv(x, filters, strides, f"{name}_1_conv", conv)
    y = keras.layers.BatchNormalization(name=f"{name}_1_bn")(y)
    y = keras.layers.ReLU(name=f"{name}_1_relu")(y)
    y = _conv(y, filters, 1, f"{name}_2_conv", conv)
    y = keras.layers.BatchNormalization(name=f"{name}_2_bn")(y)
    if attention is not None:
        module = attention(filters)
        module.name = f"{name}_add_attention"
        y = module(y)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def tiny_resnet(*, input_shape=(32, 32, 3), classes=10, conv=None, attention=None):
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem_conv")(inputs)
    x = _block(x, 8, 1, "stage1", conv, attention)
    x = _block(x, 16, 2, "stage2", conv, attention)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="tiny_resnet")


TINY = Backbone("TinyResNet", "builder", tiny_resnet)
