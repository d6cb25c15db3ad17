"""Submanifold KxK convolution of a sparse feature map (QGN Eq. 10).

`y[i] = sum_t x[neighbours[i, t]] @ kernel[t // K, t % K]` at every active site i, with inactive
neighbours reading as zero: a stride-1 'same' convolution of the masked dense map, read at the
active sites, so the active set never grows. The forward pass gathers, multiplies and
accumulates tap by tap; the backward pass is a custom gradient that re-gathers tap by tap, so the
gathered `[N, K*K, C]` block is never materialised (kept for the backward pass: the input
features, the kernel and the int32 neighbour table).

Reference: K. Chitta, J. M. Alvarez, M. Hebert, "Quadtree Generating Networks: Efficient
Hierarchical Scene Parsing with Sparse Convolutions", WACV 2020, Sec. 3.2, Eq. 10; B. Graham,
M. Engelcke, L. van der Maaten, "3D Semantic Segmentation with Submanifold Sparse Convolutional
Networks", CVPR 2018.
"""

import keras
import tensorflow as tf

from keras_structconv._validation import positive_int
from keras_structconv.layers._defaults import add_bias_weight
from keras_structconv.layers._portable import portable_ops_enabled
from keras_structconv.quadtree._config import serialized_attributes
from keras_structconv.quadtree.sparse.maps import check_features_rank, check_lengths, with_checks
from keras_structconv.quadtree.sparse.neighbours import check_kernel_size


def _append_zero_row(x):
    return tf.concat([x, tf.zeros([1, tf.shape(x)[1]], x.dtype)], axis=0)


def _accumulate_taps(source, taps, kernel, center, transpose):
    """sum_t gather(source + zero row, taps[t]) @ kernel[t'] with t' = t (forward) or the
    mirrored tap K*K-1-t and the kernel transposed (input gradient)."""
    padded = _append_zero_row(source)
    num_taps = kernel.shape[0]
    total = None
    for tap in range(num_taps):
        weight = kernel[num_taps - 1 - tap] if transpose else kernel[tap]
        # Serialise the taps: without this dependency a graph executor may gather every tap
        # before the first matmul, holding K*K gathered blocks at once.
        dependencies = [] if total is None else [total]
        with tf.control_dependencies(dependencies):
            rows = source if tap == center else tf.gather(padded, taps[tap])
            term = tf.matmul(rows, weight, transpose_b=transpose)
        total = term if total is None else total + term
    return total


def submanifold_conv(features, kernel, neighbours):
    """Submanifold KxK convolution of a sparse map (no bias).

    `y[i] = sum_t x[neighbours[i, t]] @ kernel[t // K, t % K]`, with x's row N reading as zero.
    Memory: neither pass materialises the gathered `[N, K*K, C]`; the backward pass keeps only
    `features`, `kernel` and `neighbours`, and re-gathers tap by tap (the input gradient gathers
    the output gradient through the mirrored taps, since the neighbour relation between active
    sites is symmetric).

    Args:
        features: `[N, C]`.
        kernel: `[K, K, C, F]` (the layout of `keras.layers.Conv2D`'s kernel).
        neighbours: int32 `[N, K*K]` from `neighbour_table`.

    Returns:
        `[N, F]` in the dtype of `features`.

    Example:

    >>> table = neighbour_table(indices, (H, W), 3)
    >>> outputs = submanifold_conv(features, kernel, table)  # kernel [3, 3, C, F]
    """
    kernel_size, _, in_channels, filters = kernel.shape
    num_taps = kernel_size * kernel_size
    if num_taps == 1:
        return tf.matmul(features, tf.reshape(kernel, [in_channels, filters]))
    center = num_taps // 2
    # Row t: the [N] neighbour rows of tap t, contiguous. Indexed, not unstacked: TFLite's
    # UNPACK refuses an empty input (a level without active sites).
    taps = tf.transpose(neighbours)
    if portable_ops_enabled():
        # Exports trace inference only: the plain forward pass, without the custom gradient.
        weights = tf.reshape(kernel, [num_taps, in_channels, filters])
        return _accumulate_taps(features, taps, weights, center, transpose=False)

    @tf.custom_gradient
    def conv(x, w):
        # An eager GradientTape also records the ops run inside a custom gradient's forward
        # function, keeping their inputs (every gathered tap) alive until the tape is freed,
        # though the custom gradient never uses them; from `stop_gradient` copies it records
        # nothing. (Traced functions are not affected.)
        x = tf.stop_gradient(x)
        w = tf.reshape(tf.stop_gradient(w), [num_taps, in_channels, filters])
        outputs = _accumulate_taps(x, taps, w, center, transpose=False)

        def grad(upstream):
            grad_x = _accumulate_taps(upstream, taps, w, center, transpose=True)
            padded = _append_zero_row(x)
            grad_w = []
            for tap in range(num_taps):
                dependencies = grad_w[-1:] if grad_w else [grad_x]
                with tf.control_dependencies(dependencies):
                    rows = x if tap == center else tf.gather(padded, taps[tap])
                    grad_w.append(tf.matmul(rows, upstream, transpose_a=True))
            grad_w = tf.reshape(
                tf.stack(grad_w), [kernel_size, kernel_size, in_channels, filters]
            )
            return grad_x, grad_w

        return outputs, grad

    return conv(features, kernel)


@keras.saving.register_keras_serializable(package="keras_structconv")
class SubmanifoldConv2D(keras.layers.Layer):
    """Submanifold KxK convolution on a sparse feature map (QGN Eq. 10; Graham et al. 2018).

    Equals a stride-1 'same' `Conv2D` applied to the dense map that is zero at inactive sites,
    read at the active sites: the active set never changes. `kernel_size=1` is the 1x1
    convolution (a matmul per site, no neighbour table), and with `use_bias=True` and K+1 filters
    the quadtree prediction head. The kernel has `Conv2D`'s layout `(K, K, C, filters)`.

    Memory: see `submanifold_conv` (per-tap accumulation, custom gradient; nothing of size
    `[N, K*K, C]` exists at any time).

    `dense_call(x)` computes the same convolution on a dense map `[B, H, W, C]` where every site
    is active (`tf.nn.conv2d`, 'SAME'); the decoder uses it for the `all` propagation scheme.

    Args:
        filters: output channels.
        kernel_size: odd integer K (1 or 3 in the decoder).
        use_bias: whether to add a bias.
        kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
        kernel_constraint, bias_constraint: as in `keras.layers.Conv2D`.
        **kwargs: base `Layer` arguments.

    Call arguments:
        features: `[N, C]` features of the active sites.
        neighbours: int32 `[N, K*K]` from `neighbour_table(indices, (H, W), K)`; not needed
            (and ignored) when `kernel_size=1`.

    Input shape: `features (N, C)`, `neighbours (N, K*K)`.
    Output shape: `(N, filters)`.

    Example:
        >>> features, indices = sparsify(dense, mask)
        >>> table = neighbour_table(indices, dense.shape[1:3], kernel_size=3)
        >>> outputs = SubmanifoldConv2D(64, 3)(features, table)   # (N, 64)

    Reference: Chitta et al., "Quadtree Generating Networks", WACV 2020, Eq. 10.
    """

    def __init__(
        self,
        filters,
        kernel_size=3,
        use_bias=False,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = positive_int(filters, "filters")
        self.kernel_size = check_kernel_size(kernel_size)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)

    def build(self, features_shape, neighbours_shape=None):
        channels = features_shape[-1]
        if channels is None:
            raise ValueError(
                f"The channel axis of `features` must be known. Received: {features_shape}"
            )
        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.kernel_size, self.kernel_size, int(channels), self.filters),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.bias = add_bias_weight(self, self.filters) if self.use_bias else None

    def _check_inputs(self, features, neighbours):
        check_features_rank(features)
        if self.kernel_size == 1:
            return []
        if neighbours is None:
            raise ValueError(
                f"A {self.kernel_size}x{self.kernel_size} submanifold convolution needs the "
                "neighbour table (`neighbour_table(indices, (H, W), kernel_size)`). "
                "Received: neighbours=None"
            )
        taps = self.kernel_size**2
        if neighbours.shape.rank != 2 or neighbours.shape[1] not in (None, taps):
            raise ValueError(
                f"`neighbours` must have shape (N, {taps}) for kernel_size={self.kernel_size}. "
                f"Received: neighbours.shape={neighbours.shape}"
            )
        return check_lengths(features, neighbours, other="neighbours")

    def call(self, features, neighbours=None):
        features = tf.convert_to_tensor(features)
        if neighbours is not None:
            neighbours = tf.cast(neighbours, tf.int32)
        checks = self._check_inputs(features, neighbours)
        features = with_checks(tf.cast(features, self.compute_dtype), checks)
        outputs = submanifold_conv(features, self._cast_kernel(), neighbours)
        return self._add_bias(outputs)

    def dense_call(self, inputs):
        """The same convolution on a dense map `[B, H, W, C]` with every site active."""
        inputs = tf.cast(inputs, self.compute_dtype)
        kernel = self._cast_kernel()
        if self.kernel_size == 1:
            shape = tf.shape(inputs)
            flat = tf.reshape(inputs, [-1, kernel.shape[2]])
            outputs = tf.matmul(flat, kernel[0, 0])
            outputs = tf.reshape(outputs, tf.concat([shape[:-1], [self.filters]], axis=0))
        else:
            outputs = tf.nn.conv2d(inputs, kernel, strides=1, padding="SAME")
        return self._add_bias(outputs)

    def _cast_kernel(self):
        return tf.cast(self.kernel, self.compute_dtype)

    def _add_bias(self, outputs):
        if self.use_bias:
            outputs = outputs + tf.cast(self.bias, self.compute_dtype)
        return outputs

    def compute_output_shape(self, features_shape, neighbours_shape=None):
        return (features_shape[0], self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size, use_bias=self.use_bias)
        config.update(
            serialized_attributes(
                self,
                "kernel_initializer",
                "bias_initializer",
                "kernel_regularizer",
                "bias_regularizer",
                "kernel_constraint",
                "bias_constraint",
            )
        )
        return config
