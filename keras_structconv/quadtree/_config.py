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


# Keras 3.6-3.14 rebuild the quadtree decoder from its config (loading a `.keras` file) but
# restore its sublayers' weights wrongly or not at all, without an error.
MIN_KERAS_FOR_RELOAD = (3, 15)


def keras_version(version=None):
    """`(major, minor)` of `version` (default: the installed Keras)."""
    return tuple(int(part) for part in (version or keras.__version__).split(".")[:2])


def refuse_reload_on_old_keras(what, version):
    """ValueError when `version` (a `(major, minor)` pair) cannot rebuild `what` correctly."""
    if version < MIN_KERAS_FOR_RELOAD:
        raise ValueError(
            f"Rebuilding a {what} from its config (e.g. loading a .keras file) needs Keras >= "
            f"{'.'.join(map(str, MIN_KERAS_FOR_RELOAD))}: older versions do not restore the "
            f"decoder's weights. Received: keras.__version__={keras.__version__!r}"
        )
