"""AOGNet-12M against keras.applications.ResNet50 (same process, same input).

Issue 6 target: AOGNet-12M inference throughput >= ResNet-50's at 224x224, batch 16 (AOGNet-12M
has 2.19 GFLOPs vs 4.1, but ~90 small node operations per image where ResNet-50 has 16 large
bottlenecks, so CPU op overhead may eat the FLOP advantage). Rows:

- inference, batch 16, 224x224 (images/s in the table), plain and XLA (`jit_compile=True`; XLA
  fuses the elementwise tails of the many small node ops);
- one SGD train step at batch 8, 224x224.

`--quick` swaps in 64x64 inputs and batch 2 (the models are still the full-size ones).

Since 2026-12-06 the ResNet-50 has our `BatchNormalization` in place of Keras' (a clone, same
weights and math): AOGNet's builders use ours, whose fused training kernel would otherwise make
the train-step row compare BatchNorm implementations as well as architectures. Rows recorded
before that date compare against Keras' BatchNorm.
"""

import keras

from benchmarks.runner import register
from keras_structconv.layers import BatchNormalization
from keras_structconv.models import AOGNet12M


def _aognet12m(size):
    return AOGNet12M(weights=None, input_shape=(size, size, 3))


def _resnet50(size):
    """keras.applications' ResNet-50 with our BatchNormalization, as AOGNet's builders have."""
    model = keras.applications.ResNet50(weights=None, input_shape=(size, size, 3))

    def ours_for_keras_batch_norm(layer):
        if type(layer) is keras.layers.BatchNormalization:
            return BatchNormalization.from_config(layer.get_config())
        return layer.__class__.from_config(layer.get_config())

    clone = keras.models.clone_model(model, clone_function=ours_for_keras_batch_norm)
    clone.set_weights(model.get_weights())
    return clone


@register("aognet", description="AOGNet-12M vs ResNet-50: inference images/s, train step")
def aognet(bench):
    size = 64 if bench.quick else 224
    inference_batch, train_batch = (2, 2) if bench.quick else (16, 8)
    ours, reference = _aognet12m(size), _resnet50(size)  # built once, shared by every row
    shape = (inference_batch, size, size, 3)
    yield bench.compare_inference("AOGNet-12M vs ResNet-50", ours, reference, shape)
    yield bench.compare_inference(
        "AOGNet-12M vs ResNet-50 (XLA)", ours, reference, shape, jit_compile=True
    )
    yield bench.compare_train_steps(
        "AOGNet-12M vs ResNet-50", ours, reference, (train_batch, size, size, 3)
    )
