"""Batch normalisation over the active sites of a sparse feature map.

`y = gamma * (x - mean) / sqrt(var + epsilon) + beta`, with the statistics of each channel over
the N active sites only (the masked dense batch normalisation, read at the active sites).

Reference: K. Chitta, J. M. Alvarez, M. Hebert, "Quadtree Generating Networks: Efficient
Hierarchical Scene Parsing with Sparse Convolutions", WACV 2020, Sec. 3.2; S. Ioffe, C. Szegedy,
"Batch Normalization", ICML 2015, Sec. 3.
"""

import keras
import tensorflow as tf

from keras_structconv.quadtree._config import serialized_attributes


@keras.saving.register_keras_serializable(package="keras_structconv")
class SparseBatchNormalization(keras.layers.Layer):
    """Batch normalisation over the active sites of a sparse map.

    Training (and `trainable`; a frozen layer normalises with its moving statistics, as
    `keras.layers.BatchNormalization`): `y = gamma * (x - mean) / sqrt(var + epsilon) + beta`
    with the mean and the biased
    variance of each channel over the N active sites (over every axis but the last, so a dense
    map `[B, H, W, C]` with every site active works too), and
    `moving = momentum * moving + (1 - momentum) * batch statistic` (Keras' convention: biased
    variance). Inference: the moving statistics. Statistics are computed in float32 whatever the
    compute dtype. With N = 0 the output is empty, the gradients are zero and the moving
    statistics are left bit-identical.

    Memory: one fused kernel (`FusedBatchNormV3`), which keeps only its input and two per-channel
    vectors for the backward pass.

    Args:
        momentum: momentum of the moving statistics (our builders use 0.9).
        epsilon: added to the variance (our builders use 1e-5).
        center, scale: whether to learn beta and gamma.
        beta_initializer, gamma_initializer, moving_mean_initializer,
        moving_variance_initializer, beta_regularizer, gamma_regularizer, beta_constraint,
        gamma_constraint: as in `keras.layers.BatchNormalization`.
        **kwargs: base `Layer` arguments.

    Input shape: `(N, C)` (or any `(..., C)`). Output shape: the input shape.

    Example:
        >>> normalized = SparseBatchNormalization()(features, training=True)

    Reference: Chitta et al., "Quadtree Generating Networks", WACV 2020, Sec. 3.2; S. Ioffe,
    C. Szegedy, "Batch Normalization", ICML 2015.
    """

    # Constructor arguments `get_config` serialises, in its order.
    _SERIALIZED = (
        "beta_initializer",
        "gamma_initializer",
        "moving_mean_initializer",
        "moving_variance_initializer",
        "beta_regularizer",
        "gamma_regularizer",
        "beta_constraint",
        "gamma_constraint",
    )

    def __init__(
        self,
        momentum=0.9,
        epsilon=1e-5,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not 0 <= momentum < 1:
            raise ValueError(f"`momentum` must be in [0, 1). Received: momentum={momentum!r}")
        if not epsilon > 0:
            raise ValueError(f"`epsilon` must be > 0. Received: epsilon={epsilon!r}")
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = keras.initializers.get(beta_initializer)
        self.gamma_initializer = keras.initializers.get(gamma_initializer)
        self.moving_mean_initializer = keras.initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = keras.initializers.get(moving_variance_initializer)
        self.beta_regularizer = keras.regularizers.get(beta_regularizer)
        self.gamma_regularizer = keras.regularizers.get(gamma_regularizer)
        self.beta_constraint = keras.constraints.get(beta_constraint)
        self.gamma_constraint = keras.constraints.get(gamma_constraint)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"The channel axis must be known. Received: input_shape={input_shape}")
        shape = (int(channels),)
        # Creation order gamma, beta, moving_mean, moving_variance: checkpoints rely on it.
        self.gamma = self._add_channel_weight("gamma", shape) if self.scale else None
        self.beta = self._add_channel_weight("beta", shape) if self.center else None
        self.moving_mean = self._add_channel_weight("moving_mean", shape, trainable=False)
        self.moving_variance = self._add_channel_weight(
            "moving_variance", shape, trainable=False
        )

    def _add_channel_weight(self, name, shape, trainable=True):
        """A float32 per-channel weight configured by the `{name}_initializer/_regularizer/
        _constraint` arguments (the moving statistics have an initializer only)."""
        return self.add_weight(
            name=name,
            shape=shape,
            initializer=getattr(self, f"{name}_initializer"),
            regularizer=getattr(self, f"{name}_regularizer", None),
            constraint=getattr(self, f"{name}_constraint", None),
            trainable=trainable,
            autocast=False,
        )

    def _scale_offset(self, channels):
        gamma = tf.ones([channels]) if self.gamma is None else tf.cast(self.gamma, tf.float32)
        beta = tf.zeros([channels]) if self.beta is None else tf.cast(self.beta, tf.float32)
        return gamma, beta

    def call(self, inputs, training=None):
        inputs = tf.cast(inputs, self.compute_dtype)
        channels = self.moving_mean.shape[0]
        if inputs.shape[-1] is not None and inputs.shape[-1] != channels:
            raise ValueError(
                f"The input has {inputs.shape[-1]} channels, the layer was built for {channels}. "
                f"Received: inputs.shape={inputs.shape}"
            )
        gamma, beta = self._scale_offset(channels)
        # As keras.layers.BatchNormalization: a frozen layer always uses its moving statistics.
        if not (training and self.trainable):
            return self._normalize_with_moving_statistics(inputs, gamma, beta)
        shape = tf.shape(inputs)
        # Fused kernels need float32 (or half) activations with float32 statistics, NHWC.
        flat = tf.reshape(inputs, [1, 1, -1, channels])
        if flat.dtype not in (tf.float32, tf.float16, tf.bfloat16):
            flat = tf.cast(flat, tf.float32)
        outputs, mean, corrected_variance = tf.compat.v1.nn.fused_batch_norm(
            flat, gamma, beta, epsilon=self.epsilon, is_training=True
        )
        self._update_moving_statistics(tf.shape(flat)[2], mean, corrected_variance)
        return tf.cast(tf.reshape(outputs, shape), self.compute_dtype)

    def _normalize_with_moving_statistics(self, inputs, gamma, beta):
        """Inference: element-wise on `[N, C]`, in float32 (exports, and N = 0, need no fused
        kernel; TFLite and ONNX reject the fused op's reshapes of an empty map)."""
        scale = gamma * tf.math.rsqrt(tf.convert_to_tensor(self.moving_variance) + self.epsilon)
        offset = beta - tf.convert_to_tensor(self.moving_mean) * scale
        outputs = tf.cast(inputs, tf.float32) * scale + offset
        return tf.cast(outputs, self.compute_dtype)

    def _update_moving_statistics(self, count, mean, corrected_variance):
        """Keras' update with the biased batch variance; no change at all when count == 0."""
        count_f = tf.cast(count, tf.float32)
        # The fused kernel returns the Bessel-corrected variance (and 0 for a single site).
        variance = corrected_variance * tf.math.divide_no_nan(count_f - 1.0, count_f)
        mean = tf.stop_gradient(mean)
        variance = tf.stop_gradient(variance)
        active = count > 0
        for moving, batch_value in ((self.moving_mean, mean), (self.moving_variance, variance)):
            old = tf.convert_to_tensor(moving)
            new = old * self.momentum + batch_value * (1.0 - self.momentum)
            moving.assign(tf.where(active, new, old))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            momentum=self.momentum, epsilon=self.epsilon, center=self.center, scale=self.scale
        )
        config.update(serialized_attributes(self, *self._SERIALIZED))
        return config
