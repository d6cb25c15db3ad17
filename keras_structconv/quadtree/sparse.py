"""Sparse feature maps and submanifold operators for the quadtree decoder (QGN).

Reference: K. Chitta, J. M. Alvarez, M. Hebert, "Quadtree Generating Networks: Efficient
Hierarchical Scene Parsing with Sparse Convolutions", WACV 2020 (arXiv:1907.11821), Sec. 3.1
"Sparse activations" (Eq. 9) and Sec. 3.2 (Eq. 10-11); submanifold convolutions of B. Graham,
M. Engelcke, L. van der Maaten, "3D Semantic Segmentation with Submanifold Sparse Convolutional
Networks", CVPR 2018.

Representation. A sparse feature map over a grid of static size `(H, W)` and a batch of B images
is two plain dense tensors: `features [N, C]` (one row per *active site*) and `indices [N, 3]`
int32 `(batch, row, col)` of each row; sites absent from `indices` are inactive. No
`tf.RaggedTensor`/`tf.SparseTensor` crosses a Keras layer boundary (they break `fit`), and no
operator allocates anything of the dense grid's size: memory follows N.

Operators (each equals the *masked dense* computation, with a dense map that is zero at inactive
sites, restricted to the active sites):
- `SubmanifoldConv2D` (Eq. 10): a KxK convolution evaluated only at active sites, reading only
  active neighbours (inactive ones count as zero), so the active set never grows. A neighbour
  table (`neighbour_table`, `[N, K*K]`, built once per level and shared by every convolution of
  that level) lists, for every site and tap, the row of the neighbour (or N when it is inactive or
  outside the grid). The forward pass gathers, multiplies and accumulates tap by tap; the backward
  pass is a custom gradient that re-gathers tap by tap, so the gathered `[N, K*K, C]` block is
  never materialised, neither for the forward pass nor kept for the backward pass (kept: the
  input features, the kernel and the int32 table). `kernel_size=1` is the 1x1 convolution (a
  matmul, no table needed), also used as the prediction head (`use_bias=True`, K+1 filters).
- `SparseBatchNormalization`: batch normalisation whose statistics run over the active sites
  only. With no active site the output is empty, the gradients are zero and the moving
  statistics stay bit-identical.
- ReLU: any element-wise activation applies to `features` unchanged (`keras.layers.ReLU`).
- `SparseUpsampling2D` (Eq. 11): 2x2 nearest upsampling, each active site becomes its four
  children at the next finer level, with the parent's features.
- `SparseDenseAdd`: sparse + dense skip addition, `features + dense[indices]`.

Helpers: `sparsify` (a dense map at a mask), `densify` (back to a dense map, zeros elsewhere),
`upsample_indices`, `gather_dense`, `neighbour_table`, `check_sparse_map` (range and length
checks: ValueError eagerly, runtime assertions in graph mode).
"""

import keras
import numpy as np
import tensorflow as tf

# Order of the four children of a site in `upsample_indices` (row offset, col offset).
CHILD_OFFSETS = ((0, 0), (0, 1), (1, 0), (1, 1))


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _static_spatial_shape(spatial_shape, name="spatial_shape"):
    """`(H, W)` as two positive Python ints (the grid size must be static)."""
    try:
        height, width = (int(v) for v in spatial_shape)
    except (TypeError, ValueError):
        raise ValueError(
            f"`{name}` must be a static (height, width) pair of positive integers. "
            f"Received: {name}={spatial_shape!r}"
        ) from None
    if height < 1 or width < 1:
        raise ValueError(
            f"`{name}` must be a static (height, width) pair of positive integers. "
            f"Received: {name}={spatial_shape!r}"
        )
    return height, width


def _check_indices_rank(indices):
    if indices.shape.rank != 2 or (indices.shape[1] is not None and indices.shape[1] != 3):
        raise ValueError(
            "`indices` must have shape (N, 3): (batch, row, col) of each active site. "
            f"Received: indices.shape={indices.shape}"
        )


def _check_lengths(features, indices, name="features", other="indices"):
    """ValueError (static or eager) / assertion (graph) unless both have the same N rows."""
    n_features, n_indices = features.shape[0], indices.shape[0]
    if n_features is not None and n_indices is not None:
        if n_features != n_indices:
            raise ValueError(
                f"`{name}` and `{other}` must have the same number of rows (one per active "
                f"site). Received: {name}.shape={features.shape}, {other}.shape={indices.shape}"
            )
        return []
    return [
        tf.debugging.assert_equal(
            tf.shape(features)[0],
            tf.shape(indices)[0],
            message=f"`{name}` and `{other}` must have the same number of rows",
        )
    ]


def check_sparse_map(features, indices, spatial_shape, batch_size=None):
    """Check a sparse map: `indices` in range of the grid, one row of `features` per index.

    Eagerly (and for static shapes) raises ValueError; in graph mode with dynamic shapes returns
    runtime assertions (`tf.errors.InvalidArgumentError` when they fail) to use as control
    dependencies.

    Args:
        features: `[N, C]` tensor, or None to check `indices` alone.
        indices: `[N, 3]` integer `(batch, row, col)`.
        spatial_shape: static `(H, W)` of the grid.
        batch_size: optional number of images (checks the batch column too).

    Returns:
        A list of assertion ops (empty eagerly or when nothing is left to check at run time).
    """
    height, width = _static_spatial_shape(spatial_shape)
    indices = tf.convert_to_tensor(indices)
    _check_indices_rank(indices)
    checks = [] if features is None else _check_lengths(tf.convert_to_tensor(features), indices)
    indices = tf.cast(indices, tf.int64)
    upper = tf.constant([np.iinfo(np.int64).max, height, width], tf.int64)
    if batch_size is not None:
        upper = tf.concat([tf.reshape(tf.cast(batch_size, tf.int64), [1]), upper[1:]], axis=0)
    in_range = tf.reduce_all((indices >= 0) & (indices < upper))
    if tf.executing_eagerly():
        if not bool(in_range):
            outside = ~tf.reduce_all((indices >= 0) & (indices < upper), axis=1)
            bad = tf.boolean_mask(indices, outside)[:5]
            raise ValueError(
                "`indices` must lie in the grid: 0 <= batch"
                + ("" if batch_size is None else f" < {int(batch_size)}")
                + f", 0 <= row < {height}, 0 <= col < {width}. "
                f"Received: indices out of range such as {bad.numpy().tolist()}"
            )
        return checks
    return checks + [
        tf.debugging.Assert(
            in_range,
            [
                f"`indices` must lie in the grid (rows < {height}, cols < {width}"
                + ("" if batch_size is None else ", batch < batch_size")
                + "). Received: min/max",
                tf.reduce_min(indices, axis=0),
                tf.reduce_max(indices, axis=0),
            ],
        )
    ]


def _with_checks(tensor, checks):
    if not checks:
        return tensor
    with tf.control_dependencies(checks):
        return tf.identity(tensor)


# --------------------------------------------------------------------------------------------
# Conversions
# --------------------------------------------------------------------------------------------


def sparsify(dense, mask):
    """The sparse map of a dense map at the sites where `mask` is true.

    Args:
        dense: `[B, H, W, C]` tensor.
        mask: `[B, H, W]` boolean (or numeric, non-zero = active) tensor.

    Returns:
        `(features [N, C], indices [N, 3] int32)`, sites in row-major `(batch, row, col)` order.
    """
    dense = tf.convert_to_tensor(dense)
    mask = tf.convert_to_tensor(mask)
    if dense.shape.rank != 4 or mask.shape.rank != 3:
        raise ValueError(
            "`dense` must have shape (batch, height, width, channels) and `mask` (batch, height, "
            f"width). Received: dense.shape={dense.shape}, mask.shape={mask.shape}"
        )
    if mask.dtype != tf.bool:
        mask = tf.not_equal(mask, tf.zeros([], mask.dtype))
    indices = tf.cast(tf.where(mask), tf.int32)
    return tf.gather_nd(dense, indices), indices


def densify(features, indices, batch_size, spatial_shape):
    """The dense map `[B, H, W, C]` of a sparse map: its features at the active sites, 0 elsewhere.

    Args:
        features: `[N, C]`.
        indices: `[N, 3]` int32 `(batch, row, col)`, each site at most once.
        batch_size: B (int or scalar tensor).
        spatial_shape: static `(H, W)`.

    Raises:
        ValueError: indices out of the grid or a row-count mismatch (eagerly / static shapes;
            graph mode: `InvalidArgumentError` at run time).
    """
    height, width = _static_spatial_shape(spatial_shape)
    features = tf.convert_to_tensor(features)
    indices = tf.convert_to_tensor(indices)
    if features.shape.rank != 2:
        raise ValueError(
            f"`features` must have shape (N, channels). Received: features.shape={features.shape}"
        )
    checks = check_sparse_map(features, indices, (height, width), batch_size=batch_size)
    indices = _with_checks(tf.cast(indices, tf.int32), checks)
    shape = tf.stack(
        [tf.cast(batch_size, tf.int32), height, width, tf.shape(features)[1]], axis=0
    )
    return tf.scatter_nd(indices, features, shape)


def gather_dense(dense, indices):
    """The features of a dense map `[B, H, W, C]` at the sites `indices [N, 3]`: `[N, C]`.

    Out-of-range indices raise (ValueError eagerly; an assertion in graph mode). The gradient with
    respect to `dense` is dense (zero at the other sites).
    """
    dense = tf.convert_to_tensor(dense)
    indices = tf.convert_to_tensor(indices)
    if dense.shape.rank != 4:
        raise ValueError(
            f"`dense` must have shape (batch, height, width, channels). "
            f"Received: dense.shape={dense.shape}"
        )
    height, width = dense.shape[1], dense.shape[2]
    if height is None or width is None:
        raise ValueError(f"`dense` needs a static height and width. Received: {dense.shape}")
    checks = check_sparse_map(None, indices, (height, width), batch_size=tf.shape(dense)[0])
    indices = _with_checks(tf.cast(indices, tf.int32), checks)
    return tf.gather_nd(dense, indices)


def upsample_indices(indices):
    """The four children `(2r + i, 2c + j)` of every site, `[4N, 3]`, parent by parent (Eq. 11)."""
    indices = tf.convert_to_tensor(indices, tf.int32)
    _check_indices_rank(indices)
    scale = tf.constant([1, 2, 2], tf.int32)
    offsets = tf.constant([(0, r, c) for r, c in CHILD_OFFSETS], tf.int32)  # [4, 3]
    children = indices[:, tf.newaxis, :] * scale + offsets
    return tf.reshape(children, [-1, 3])


def upsample_features(features):
    """Each row repeated four times, aligned with `upsample_indices`: `[4N, C]`."""
    features = tf.convert_to_tensor(features)
    shape = tf.shape(features)
    repeated = tf.broadcast_to(features[:, tf.newaxis, :], [shape[0], 4, shape[1]])
    return tf.reshape(repeated, [-1, shape[1]])


# --------------------------------------------------------------------------------------------
# Neighbour table
# --------------------------------------------------------------------------------------------


def kernel_offsets(kernel_size):
    """Tap offsets `(d_row, d_col)` in the order of a `(K, K, ...)` kernel's first two axes."""
    radius = kernel_size // 2
    return [(ky - radius, kx - radius) for ky in range(kernel_size) for kx in range(kernel_size)]


def _check_kernel_size(kernel_size, name="kernel_size"):
    if (
        isinstance(kernel_size, bool)
        or not isinstance(kernel_size, (int, np.integer))
        or kernel_size < 1
        or kernel_size % 2 == 0
    ):
        raise ValueError(
            f"`{name}` must be a positive odd integer (submanifold convolutions keep every "
            f"site centred). Received: {name}={kernel_size!r}"
        )
    return int(kernel_size)


def neighbour_table(indices, spatial_shape, kernel_size=3):
    """For every active site and kernel tap, the row of the active neighbour, or N if none.

    Built with a sort and binary searches over the N sites (no dense grid is allocated), in any
    site order. Indices must be unique and in range (checked like `check_sparse_map`).

    Args:
        indices: `[N, 3]` int32 `(batch, row, col)`.
        spatial_shape: static `(H, W)` of the grid.
        kernel_size: odd K.

    Returns:
        int32 `[N, K*K]`; column t is the tap `kernel_offsets(K)[t]`, i.e. kernel element
        `(t // K, t % K)`. Entry N means "inactive or outside the grid" (reads as zero).
    """
    height, width = _static_spatial_shape(spatial_shape)
    kernel_size = _check_kernel_size(kernel_size)
    indices = tf.convert_to_tensor(indices, tf.int32)
    checks = check_sparse_map(None, indices, (height, width))
    indices = _with_checks(indices, checks)
    count = tf.shape(indices)[0]
    wide = tf.cast(indices, tf.int64)
    rows, cols = indices[:, 1], indices[:, 2]
    keys = (wide[:, 0] * height + wide[:, 1]) * width + wide[:, 2]
    order = tf.argsort(keys, stable=True)
    sorted_keys = tf.gather(keys, order)[tf.newaxis]
    columns = []
    for d_row, d_col in kernel_offsets(kernel_size):
        if d_row == 0 and d_col == 0:
            columns.append(tf.range(count))
            continue
        inside = (
            (rows + d_row >= 0) & (rows + d_row < height) & (cols + d_col >= 0)
            & (cols + d_col < width)
        )
        query = keys + (d_row * width + d_col)
        position = tf.searchsorted(sorted_keys, query[tf.newaxis], out_type=tf.int32)[0]
        clipped = tf.minimum(position, count - 1)
        found = inside & (position < count) & (tf.gather(sorted_keys[0], clipped) == query)
        columns.append(tf.where(found, tf.gather(order, clipped), count))
    return tf.stack(columns, axis=1)


# --------------------------------------------------------------------------------------------
# Submanifold convolution (gather / matmul / accumulate per tap, custom gradient)
# --------------------------------------------------------------------------------------------


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
    """
    kernel_size, _, in_channels, filters = kernel.shape
    num_taps = kernel_size * kernel_size
    if num_taps == 1:
        return tf.matmul(features, tf.reshape(kernel, [in_channels, filters]))
    center = num_taps // 2
    taps = tf.unstack(tf.transpose(neighbours), num=num_taps)  # contiguous [N] per tap

    @tf.custom_gradient
    def conv(x, w):
        w = tf.reshape(w, [num_taps, in_channels, filters])
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


def _regularizer_config(obj):
    return keras.saving.serialize_keras_object(obj) if obj is not None else None


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
        if isinstance(filters, bool) or not isinstance(filters, (int, np.integer)) or filters < 1:
            raise ValueError(f"`filters` must be a positive integer. Received: filters={filters!r}")
        self.filters = int(filters)
        self.kernel_size = _check_kernel_size(kernel_size)
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
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.filters,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )

    def _check_inputs(self, features, neighbours):
        if features.shape.rank != 2:
            raise ValueError(
                "`features` must have shape (N, channels). "
                f"Received: features.shape={features.shape}"
            )
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
        return _check_lengths(features, neighbours, other="neighbours")

    def call(self, features, neighbours=None):
        features = tf.convert_to_tensor(features)
        if neighbours is not None:
            neighbours = tf.cast(neighbours, tf.int32)
        checks = self._check_inputs(features, neighbours)
        features = _with_checks(tf.cast(features, self.compute_dtype), checks)
        kernel = tf.cast(self.kernel, self.compute_dtype)
        outputs = submanifold_conv(features, kernel, neighbours)
        if self.use_bias:
            outputs = outputs + tf.cast(self.bias, self.compute_dtype)
        return outputs

    def dense_call(self, inputs):
        """The same convolution on a dense map `[B, H, W, C]` with every site active."""
        inputs = tf.cast(inputs, self.compute_dtype)
        kernel = tf.cast(self.kernel, self.compute_dtype)
        if self.kernel_size == 1:
            shape = tf.shape(inputs)
            flat = tf.reshape(inputs, [-1, kernel.shape[2]])
            outputs = tf.matmul(flat, kernel[0, 0])
            outputs = tf.reshape(outputs, tf.concat([shape[:-1], [self.filters]], axis=0))
        else:
            outputs = tf.nn.conv2d(inputs, kernel, strides=1, padding="SAME")
        if self.use_bias:
            outputs = outputs + tf.cast(self.bias, self.compute_dtype)
        return outputs

    def compute_output_shape(self, features_shape, neighbours_shape=None):
        return (features_shape[0], self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            use_bias=self.use_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
            kernel_regularizer=_regularizer_config(self.kernel_regularizer),
            bias_regularizer=_regularizer_config(self.bias_regularizer),
            kernel_constraint=_regularizer_config(self.kernel_constraint),
            bias_constraint=_regularizer_config(self.bias_constraint),
        )
        return config


# --------------------------------------------------------------------------------------------
# Batch normalisation over the active sites
# --------------------------------------------------------------------------------------------


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
        self.gamma = self.beta = None
        if self.scale:
            self.gamma = self.add_weight(
                name="gamma", shape=shape, initializer=self.gamma_initializer,
                regularizer=self.gamma_regularizer, constraint=self.gamma_constraint,
                autocast=False,
            )
        if self.center:
            self.beta = self.add_weight(
                name="beta", shape=shape, initializer=self.beta_initializer,
                regularizer=self.beta_regularizer, constraint=self.beta_constraint,
                autocast=False,
            )
        self.moving_mean = self.add_weight(
            name="moving_mean", shape=shape, initializer=self.moving_mean_initializer,
            trainable=False, autocast=False,
        )
        self.moving_variance = self.add_weight(
            name="moving_variance", shape=shape, initializer=self.moving_variance_initializer,
            trainable=False, autocast=False,
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
        shape = tf.shape(inputs)
        # Fused kernels need float32 (or half) activations with float32 statistics, NHWC.
        flat = tf.reshape(inputs, [1, 1, -1, channels])
        if flat.dtype not in (tf.float32, tf.float16, tf.bfloat16):
            flat = tf.cast(flat, tf.float32)
        gamma, beta = self._scale_offset(channels)
        # As keras.layers.BatchNormalization: a frozen layer always uses its moving statistics.
        if training and self.trainable:
            outputs, mean, corrected_variance = tf.compat.v1.nn.fused_batch_norm(
                flat, gamma, beta, epsilon=self.epsilon, is_training=True
            )
            self._update_moving_statistics(tf.shape(flat)[2], mean, corrected_variance)
        else:
            outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
                flat, gamma, beta,
                mean=tf.convert_to_tensor(self.moving_mean),
                variance=tf.convert_to_tensor(self.moving_variance),
                epsilon=self.epsilon, is_training=False,
            )
        return tf.cast(tf.reshape(outputs, shape), self.compute_dtype)

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
            momentum=self.momentum,
            epsilon=self.epsilon,
            center=self.center,
            scale=self.scale,
            beta_initializer=keras.initializers.serialize(self.beta_initializer),
            gamma_initializer=keras.initializers.serialize(self.gamma_initializer),
            moving_mean_initializer=keras.initializers.serialize(self.moving_mean_initializer),
            moving_variance_initializer=keras.initializers.serialize(
                self.moving_variance_initializer
            ),
            beta_regularizer=_regularizer_config(self.beta_regularizer),
            gamma_regularizer=_regularizer_config(self.gamma_regularizer),
            beta_constraint=_regularizer_config(self.beta_constraint),
            gamma_constraint=_regularizer_config(self.gamma_constraint),
        )
        return config


# --------------------------------------------------------------------------------------------
# Upsampling and skip addition
# --------------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="keras_structconv")
class SparseUpsampling2D(keras.layers.Layer):
    """2x2 nearest upsampling of a sparse map (QGN Eq. 11): every active site `(b, r, c)` becomes
    its four children `(b, 2r + i, 2c + j)`, `i, j in {0, 1}`, with the parent's features.

    The result equals `UpSampling2D(2)` of the masked dense map, restricted to the children of
    the active sites (which are exactly the active sites of the upsampled mask).

    Call arguments: `features [N, C]`, `indices [N, 3]` int32.

    Returns: `(features [4N, C], indices [4N, 3])`, parent by parent in `CHILD_OFFSETS` order.

    Example:
        >>> children, child_indices = SparseUpsampling2D()(features, indices)

    Reference: Chitta et al., "Quadtree Generating Networks", WACV 2020, Eq. 11.
    """

    def call(self, features, indices):
        features = tf.convert_to_tensor(features)
        indices = tf.convert_to_tensor(indices)
        _check_indices_rank(indices)
        features = _with_checks(features, _check_lengths(features, indices))
        return upsample_features(features), upsample_indices(indices)

    def compute_output_shape(self, features_shape, indices_shape):
        rows = None if features_shape[0] is None else 4 * features_shape[0]
        return (rows, features_shape[-1]), (rows, 3)

    def compute_output_spec(self, features, indices):
        rows = None if features.shape[0] is None else 4 * features.shape[0]
        return (
            keras.KerasTensor((rows, features.shape[-1]), dtype=self.compute_dtype),
            keras.KerasTensor((rows, 3), dtype="int32"),
        )


@keras.saving.register_keras_serializable(package="keras_structconv")
class SparseDenseAdd(keras.layers.Layer):
    """Sparse + dense addition: `features + dense[indices]` (the decoder's encoder skip).

    Only the N active rows of the dense map are read; the gradient with respect to `dense` is
    dense, zero at the inactive sites. To add a 1x1 convolution of the dense map, gather first
    (`gather_dense`) and apply `SubmanifoldConv2D(filters, 1)` to the N rows: the projection then
    costs N rows, not the whole grid.

    Call arguments: `features [N, C]`, `indices [N, 3]` int32, `dense [B, H, W, C]` (static H, W).

    Output shape: `(N, C)`.

    Raises:
        ValueError: indices outside the dense map, row-count or channel mismatch.

    Reference: Chitta et al., "Quadtree Generating Networks", WACV 2020, Sec. 3.2 "Skip
    connections".
    """

    def call(self, features, indices, dense):
        features = tf.cast(features, self.compute_dtype)
        dense = tf.cast(dense, self.compute_dtype)
        indices = tf.convert_to_tensor(indices)
        _check_indices_rank(indices)
        if features.shape[-1] is not None and dense.shape[-1] is not None:
            if features.shape[-1] != dense.shape[-1]:
                raise ValueError(
                    "`features` and `dense` must have the same channels. Received: "
                    f"features.shape={features.shape}, dense.shape={dense.shape}"
                )
        features = _with_checks(features, _check_lengths(features, indices))
        return features + gather_dense(dense, indices)

    def compute_output_shape(self, features_shape, indices_shape, dense_shape):
        return tuple(features_shape)
