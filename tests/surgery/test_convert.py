"""`keras_structconv.convert` end to end: training the converted model leaves the original alone,
export and reload, argument errors."""

import keras
import numpy as np
import pytest
from keras import layers

from keras_structconv import convert
from keras_structconv.models import ResNet20
from tests.surgery.helpers import random_images
from tests.toy_factories import ChannelScale, copy_conv, scale_attention


@pytest.fixture(scope="module")
def small_pair():
    keras.backend.clear_session()
    model = ResNet20(input_shape=(16, 16, 3), classes=4)
    converted = convert(model, conv=copy_conv, attention=lambda c: ChannelScale(1.5))
    return model, converted


def test_original_weights_untouched_by_training_the_converted(small_pair):
    model, converted = small_pair
    before = [w.copy() for w in model.get_weights()]
    trainable_before = [w.numpy().copy() for w in converted.trainable_weights]
    converted.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    images = random_images((8, 16, 16, 3))
    labels = np.arange(8) % 4
    converted.fit(images, labels, epochs=1, batch_size=8, verbose=0)
    # The converted model did train (every trainable weight moved, attention scales included)...
    for old, variable in zip(trainable_before, converted.trainable_weights, strict=True):
        assert not np.array_equal(old, variable.numpy()), variable.path
    # ...and the original, moving statistics included, did not.
    for old, now in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, now)


def test_export_and_reload(small_pair, tmp_path):
    _, converted = small_pair
    path = str(tmp_path / "converted")
    converted.export(path, verbose=False)
    reloaded = keras.layers.TFSMLayer(path, call_endpoint="serve", dtype="float32")
    images = random_images((3, 16, 16, 3))
    np.testing.assert_allclose(
        reloaded(images), converted(images, training=False), rtol=1e-5, atol=1e-6
    )


# ---------------------------------------------------------------------------------- errors
class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.conv = layers.Conv2D(4, 3)

    def call(self, inputs):
        return self.conv(inputs)


def test_subclassed_model_is_refused():
    model = Subclassed()
    model(np.zeros((1, 8, 8, 3), "float32"))
    with pytest.raises(ValueError, match="subclassed model.*Received: model of type Subclassed"):
        convert(model, conv=copy_conv)


def test_attention_on_sequential_is_refused():
    model = keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(4, 3)])
    with pytest.raises(ValueError, match="`attention` is not supported on a Sequential"):
        convert(model, attention=scale_attention)


def test_factory_must_return_a_new_layer():
    model = keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(4, 3), layers.Conv2D(4, 3)])
    with pytest.raises(ValueError, match="`conv` must return a new keras Layer"):
        convert(model, conv=lambda old: old)
    with pytest.raises(ValueError, match="`conv` must be callable"):
        convert(model, conv="psconv")
