"""BatchNormalization: Keras' `BatchNormalization`, trained with TensorFlow's fused kernel.

Reference: S. Ioffe, C. Szegedy, "Batch Normalization: Accelerating Deep Network Training by
Reducing Internal Covariate Shift", ICML 2015, Algorithm 1.

Definition (Keras' own): in a training step, `y = gamma * (x - mean) / sqrt(var + epsilon) + beta`
with the mean and the biased variance of each channel over the batch and spatial axes, and
`moving = momentum * moving + (1 - momentum) * batch statistic` (biased variance); in inference,
the moving statistics.

Why: Keras 3 builds a training-mode BatchNormalization from separate ops (moments, then the
normalisation: 21 ops forward, 51 with the backward pass, constants and variable reads not
counted). TensorFlow's `FusedBatchNormV3` does each pass in one kernel (15 and 20 ops here, most
of them the moving averages). In a network of many small convolutions the difference is large:
a training step of the CIFAR AOGNet (219 BatchNorms) takes 0.63x the time, of the CIFAR
ResNet-20 0.70x (0.90x and 0.92x with oneDNN off; `benchmarks/RESULTS.md`, case `batch_norm`).
The kernel returns the Bessel-corrected batch variance, so the moving variance is updated with
it rescaled by (n - 1) / n: Keras' convention, not PyTorch's.

Everything but a 4-D channels-last training step runs Keras' code unchanged: inference (and
exports), other ranks or axes, masks, `renorm`, `synchronized`, float64, other backends.

The class keeps Keras' name on purpose: Keras keys the weights of a model's layers in a
`.weights.h5` file by their class names, so a checkpoint written with either layer loads into
the other.
"""

from __future__ import annotations

import keras
import tensorflow as tf

__all__ = ["BatchNormalization"]

# Activation dtypes the fused kernel takes (its statistics, scale and offset are float32).
_FUSED_DTYPES = ("float16", "bfloat16", "float32")


@keras.saving.register_keras_serializable(package="keras_structconv")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` whose 4-D channels-last training steps run TensorFlow's
    fused kernel (`FusedBatchNormV3`): the same outputs, gradients and moving statistics (to
    float rounding), in fewer, faster ops.

    Same arguments, weights, config and inference as `keras.layers.BatchNormalization`, and the
    same class name, so a checkpoint of one loads into the other. The fused path is taken in a
    training step of a trainable layer when the input is 4-D with the channels last (`axis=-1`
    or 3), float16, bfloat16 or float32, without a mask, `renorm` or `synchronized`, on the
    TensorFlow backend; every other call is Keras' own.

    Args:
        fused: whether training steps take the fused path where it applies (default True);
            False runs Keras' code for every call (what `benchmarks/` compares against).
        *args, **kwargs: `keras.layers.BatchNormalization`'s arguments.

    Example:

    >>> layer = BatchNormalization(momentum=0.9, epsilon=1e-5)
    >>> layer(keras.ops.ones((2, 4, 4, 8)), training=True).shape
    (2, 4, 4, 8)
    """

    def __init__(self, *args, fused: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        if not isinstance(fused, bool):
            raise ValueError(f"`fused` must be True or False. Received: fused={fused!r}")
        self.fused = fused

    def call(self, inputs, training=None, mask=None):
        if not self._takes_fused_path(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        x = tf.cast(inputs, "float32")  # as Keras: statistics and normalisation in float32
        channels = x.shape[-1]
        gamma = tf.cast(self.gamma, "float32") if self.scale else tf.ones([channels])
        beta = tf.cast(self.beta, "float32") if self.center else tf.zeros([channels])
        empty = tf.constant([], "float32")
        outputs, mean, corrected_variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=x, scale=gamma, offset=beta, mean=empty, variance=empty, epsilon=self.epsilon,
            exponential_avg_factor=1.0, data_format="NHWC", is_training=True,
        )  # fmt: skip
        count = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), "float32")
        variance = corrected_variance * tf.math.divide_no_nan(count - 1.0, count)
        self._update_moving_statistics(mean, variance)
        return tf.cast(outputs, self.compute_dtype)

    def _takes_fused_path(self, inputs, training, mask):
        return (
            self.fused
            and bool(training)
            and self.trainable
            and mask is None
            and keras.backend.backend() == "tensorflow"
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and not getattr(self, "renorm", False)
            and not self.synchronized
            and keras.backend.standardize_dtype(inputs.dtype) in _FUSED_DTYPES
        )

    def get_config(self):
        config = super().get_config()
        # Only when not the default: the config of a default layer is Keras' own, so a `.keras`
        # file loads with `custom_objects` mapping this class to `keras.layers.BatchNormalization`.
        if not self.fused:
            config["fused"] = False
        return config

    def _update_moving_statistics(self, mean, variance):
        """Keras' update: `moving = momentum * moving + (1 - momentum) * batch`."""
        for moving, batch in ((self.moving_mean, mean), (self.moving_variance, variance)):
            moving.assign(
                tf.cast(moving, "float32") * self.momentum + batch * (1.0 - self.momentum)
            )
