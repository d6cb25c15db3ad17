"""Helpers shared by the `convert` tests: inspecting converted graphs, images, small blocks."""

import keras
import numpy as np
from keras import layers


def all_layers(model):
    return list(model._flatten_layers(include_self=True, recursive=True))


def random_images(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, size=shape).astype("float32")


def input_names(model, layer_name):
    """Names of the layers producing the inputs of `layer_name` in `model`."""
    inputs = keras.tree.flatten(model.get_layer(layer_name).input)
    return [tensor._keras_history.operation.name for tensor in inputs]


def conv_bn(x, name, filters=4, kernel_size=3):
    x = layers.Conv2D(filters, kernel_size, padding="same", name=f"{name}_conv")(x)
    return layers.BatchNormalization(name=f"{name}_bn")(x)
