"""Configuration helpers shared by the quadtree decoder's layers."""

import keras

from keras_structconv.layers._defaults import he_normal_fan_out


def serialized_attributes(layer, *names):
    """`{name: serialized getattr(layer, name)}`, e.g. for the initializers, regularizers and
    constraints a layer's `get_config` returns (None stays None)."""
    return {name: keras.saving.serialize_keras_object(getattr(layer, name)) for name in names}


def decoder_kernel_initializer(kernel_initializer):
    """The decoder's convolution initializer: `kernel_initializer`, by default He normal over
    fan-out (torchvision's ResNets)."""
    return keras.initializers.get(kernel_initializer or he_normal_fan_out())
