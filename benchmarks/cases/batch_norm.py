"""Our BatchNormalization (TensorFlow's fused kernel in training steps) against Keras' code path.

The reference is the same model or layer with `fused=False` on every BatchNormalization, which
runs `keras.layers.BatchNormalization`'s own code: the same architecture, weights and math, so
the ratio is what the fused kernel saves. Rows (batch 128, CIFAR's 32x32 images; `--quick`:
batch 2):

- one SGD train step of the CIFAR AOGNet (219 BatchNorms after 216 small convolutions: the case
  that made us write the layer) and of the CIFAR ResNet-20 (19 BatchNorms);
- the layer alone, forward+backward in training mode, at ResNet-20's first stage (32x32x16).
"""

from benchmarks.runner import FORWARD_BACKWARD, register
from keras_structconv.layers import BatchNormalization
from keras_structconv.layers._defaults import BN_EPSILON, BN_MOMENTUM
from keras_structconv.models import create_model


def _model(name, fused):
    """Registry model `name` for CIFAR-10 with every BatchNormalization's `fused` set."""
    model = create_model(name, classes=10, input_shape=(32, 32, 3))
    for layer in model._flatten_layers():
        if isinstance(layer, BatchNormalization):
            layer.fused = fused
    return model


@register("batch_norm", description="BatchNormalization: fused training kernel vs Keras' ops")
def batch_norm(bench):
    batch = 2 if bench.quick else 128
    shape = (batch, 32, 32, 3)
    for name, title in (("aognet_cifar", "CIFAR AOGNet"), ("resnet20", "CIFAR ResNet-20")):
        yield bench.compare_train_steps(
            f"{title}, fused vs Keras' BatchNorm", _model(name, True), _model(name, False), shape
        )
    yield from bench.compare_layers(
        "BatchNormalization, 32x32x16",
        ours=lambda: BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON),
        reference=lambda: BatchNormalization(
            momentum=BN_MOMENTUM, epsilon=BN_EPSILON, fused=False
        ),
        input_shape=(batch, 32, 32, 16),
        modes=(FORWARD_BACKWARD,),
    )
