"""An independent forward pass of our ResNets, in plain TF written from the PyTorch definitions.

It reads the Keras model's variables by layer name and recomputes the network with `tf.nn`
ops: symmetric PyTorch padding (`tf.pad` + 'VALID'), BatchNorm in inference mode with
epsilon 1e-5 written out, max-pooling with -inf padding (as PyTorch pads), option-A shortcuts
by slicing and concatenating zeros. Nothing here calls a Keras layer.
"""

import numpy as np
import tensorflow as tf

EPSILON = 1e-5


def randomize_batch_norms(model, seed=0):
    """Give every BatchNorm random gamma/beta/moving statistics, so BN is not an identity."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.__class__.__name__ == "BatchNormalization":
            channels = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 1.5, channels).astype("float32"))
            layer.beta.assign(rng.uniform(-0.2, 0.2, channels).astype("float32"))
            layer.moving_mean.assign(rng.uniform(-0.2, 0.2, channels).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, channels).astype("float32"))


class ReferenceResNet:
    """`ReferenceResNet(model, stem, block, stages, shortcut)(x)` -> logits (pre-activation).

    stem: "imagenet" (7×7/2 conv, BN, ReLU, 3×3/2 max-pool) or "cifar" (3×3 conv, BN, ReLU);
    block: "basic" or "bottleneck"; stages: [(filters, blocks, strides)]; shortcut: "A"/"B".
    """

    def __init__(self, model, stem, block, stages, shortcut="B"):
        self.model = model
        self.stem = stem
        self.block = block
        self.stages = stages
        self.shortcut = shortcut

    def _conv(self, x, name, strides, padding):
        kernel = self.model.get_layer(f"{name}_conv").kernel
        x = tf.pad(x, [[0, 0], [padding, padding], [padding, padding], [0, 0]])
        return tf.nn.conv2d(x, kernel, strides, "VALID")

    def _bn(self, x, name):
        layer = self.model.get_layer(f"{name}_bn")
        scale = layer.gamma / tf.sqrt(layer.moving_variance + EPSILON)
        return (x - layer.moving_mean) * scale + layer.beta

    def _conv_bn(self, x, name, strides, padding, relu=True):
        x = self._bn(self._conv(x, name, strides, padding), name)
        return tf.nn.relu(x) if relu else x

    def _shortcut(self, x, name, filters, strides):
        if strides == 1 and x.shape[-1] == filters:
            return x
        if self.shortcut == "A":
            x = x[:, ::strides, ::strides, :]
            extra = filters - x.shape[-1]
            before = tf.zeros_like(x[..., : extra // 2])
            after = tf.zeros_like(x[..., : extra - extra // 2])
            return tf.concat([before, x, after], axis=-1)
        return self._conv_bn(x, f"{name}_0", strides, 0, relu=False)

    def _block(self, x, name, filters, strides):
        if self.block == "basic":
            skip = self._shortcut(x, name, filters, strides)
            y = self._conv_bn(x, f"{name}_1", strides, 1)
            y = self._conv_bn(y, f"{name}_2", 1, 1, relu=False)
        else:
            skip = self._shortcut(x, name, 4 * filters, strides)
            y = self._conv_bn(x, f"{name}_1", 1, 0)
            y = self._conv_bn(y, f"{name}_2", strides, 1)
            y = self._conv_bn(y, f"{name}_3", 1, 0, relu=False)
        return tf.nn.relu(skip + y)

    def __call__(self, x):
        if self.stem == "imagenet":
            x = self._conv_bn(x, "conv1", 2, 3)
            x = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], constant_values=-np.inf)
            x = tf.nn.max_pool2d(x, 3, 2, "VALID")
        else:
            x = self._conv_bn(x, "conv1", 1, 1)
        for stage, (filters, blocks, strides) in enumerate(self.stages):
            for index in range(blocks):
                name = f"conv{stage + 2}_block{index + 1}"
                x = self._block(x, name, filters, strides if index == 0 else 1)
        features = tf.reduce_mean(x, axis=[1, 2])
        head = self.model.get_layer("predictions")
        return tf.matmul(features, head.kernel) + head.bias
