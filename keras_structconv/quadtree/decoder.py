"""The quadtree decoder of the Quadtree Generating Network (QGN), with its propagation schemes.

Reference: K. Chitta, J. M. Alvarez, M. Hebert, "Quadtree Generating Networks: Efficient
Hierarchical Scene Parsing with Sparse Convolutions", WACV 2020 (arXiv:1907.11821), Sec. 3.2-3.3,
Fig. 2 and Table 7 (decoder: a transposed ResNet, RedNet-style, 19 basic residual units = 38
layers).

Definition. Levels are numbered as in `tpyramid_labels`: level 0 is full resolution, level
L-1 = 5 is the encoder output (stride 32). The decoder takes the encoder features at strides 2,
4, ..., 2^(L-1) (levels 1..L-1) and
- level L-1: a 1x1 convolution + BN + ReLU of the stride-32 features to `top_filters` channels,
  every site active, and a prediction head (1x1 convolution with bias, K+1 logits: 0 composite,
  c+1 class c);
- each finer level l = L-2, ..., 0: the *propagated* sites of level l+1 are upsampled to their
  four children (Eq. 11), which are the active sites of level l; a 1x1 skip convolution + BN of
  the encoder features at level l (none at level 0: the encoder has no stride-1 features) is
  added; `units[l]` basic residual units (3x3 submanifold conv-BN-ReLU-conv-BN + shortcut, ReLU;
  the first unit changes the width to `filters[l]` through a 1x1 conv + BN shortcut) run on the
  active sites; a prediction head gives the K+1 logits of level l.

Propagation (which sites of level l+1 are upsampled to level l):
- "all": every site (the dense baseline);
- "gt": the sites whose ground-truth T-pyramid label is composite (training; an upper-bound
  evaluation), given as `composite_masks` (see `composite_masks_from_labels`);
- "pred": the sites the decoder itself predicts composite (argmax of the level's logits is 0;
  inference).

Design notes (where this differs from, or makes precise, the paper):
- The residual units of a level run *after* its upsampling, at the level's own resolution (the
  paper: "sparse convolutions followed by an upsampling"). Nearest upsampling copies a parent
  into four identical children and level 0 has no encoder skip, so convolutions after the
  upsampling are what makes full-resolution predictions differ inside a 2x2 block.
- Every layer is sparse (`sparse.py`): features exist only at the active sites, so activation
  memory, kept-for-backward memory included, follows the number of active sites. An empty active
  set (nothing propagated) flows through as zero-row tensors and costs nothing.
- With `propagation="all"` every site is active, so by default (`dense_all=True`) the decoder
  runs the *same* layers with the same weights on dense maps (`tf.nn.conv2d` instead of per-tap
  gathers): identical values, the fastest baseline. `dense_all=False` runs the sparse ops on all
  sites (used by the tests to check that both paths agree).

Outputs (a dict; per-level tuples, index 0 = full resolution):
- `"logits"`: `output_mode="sparse"`: `[N_l, K+1]` at the active sites; `"dense"`:
  `[B, H_l, W_l, K+1]`, zero at inactive sites;
- `"indices"` (sparse mode only): `[N_l, 3]` int32 `(batch, row, col)` of the active sites;
- `"masks"`: `[B, H_l, W_l]` bool, the active sites of each level.
"""

import keras
import numpy as np
import tensorflow as tf

from keras_structconv.quadtree.sparse import (
    SparseBatchNormalization,
    SubmanifoldConv2D,
    densify,
    neighbour_table,
    upsample_features,
    upsample_indices,
)

PROPAGATIONS = ("all", "gt", "pred")
OUTPUT_MODES = ("sparse", "dense")
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def default_kernel_initializer():
    """He normal over fan-out, as torchvision's ResNets (`kaiming_normal_(mode="fan_out")`)."""
    return keras.initializers.VarianceScaling(
        scale=2.0, mode="fan_out", distribution="untruncated_normal"
    )


def check_propagation(propagation):
    if propagation not in PROPAGATIONS:
        raise ValueError(
            f"`propagation` must be one of {PROPAGATIONS}. Received: propagation={propagation!r}"
        )
    return propagation


def composite_masks_from_labels(level_labels):
    """Ground-truth composite masks for `propagation="gt"` from `tpyramid_labels` output.

    Args:
        level_labels: per-level training labels, index 0 = full resolution (0 = composite).

    Returns:
        A list of `len(level_labels) - 1` boolean tensors, entry i for level i + 1 (the layout of
        the decoder's `encoder_features`): true where the cell is composite.
    """
    return [tf.equal(tf.cast(labels, tf.int32), 0) for labels in list(level_labels)[1:]]


def sparse_level_labels(level_labels, indices):
    """The training labels at the active sites of each level: `[labels_l[indices_l]]`.

    Use with the decoder's sparse outputs and `quadtree.level_cross_entropy(labels, logits)`.
    """
    if len(level_labels) != len(indices):
        raise ValueError(
            "`level_labels` and `indices` must have one entry per level. "
            f"Received: {len(level_labels)} and {len(indices)} levels"
        )
    return [
        tf.gather_nd(tf.cast(labels, tf.int32), tf.cast(sites, tf.int32))
        for labels, sites in zip(level_labels, indices, strict=True)
    ]


def _upsample_dense(x):
    """2x2 nearest upsampling of `[B, H, W, C]` (each site copied to its four children)."""
    shape = tf.shape(x)
    tiled = tf.broadcast_to(
        x[:, :, tf.newaxis, :, tf.newaxis, :],
        [shape[0], shape[1], 2, shape[2], 2, shape[3]],
    )
    return tf.reshape(tiled, [shape[0], 2 * shape[1], 2 * shape[2], shape[3]])


def _active_mask(indices, batch_size, spatial_shape):
    """Dense boolean mask `[B, H, W]` of the sites in `indices`."""
    shape = tf.stack([batch_size, spatial_shape[0], spatial_shape[1]])
    ones = tf.ones_like(indices[:, 0], dtype=tf.uint8)
    return tf.scatter_nd(indices, ones, shape) > 0


def _all_sites(batch_size, spatial_shape):
    """Indices `[B*H*W, 3]` of every site, row-major (the order of `reshape(x, [-1, C])`)."""
    mask = tf.ones(tf.stack([batch_size, spatial_shape[0], spatial_shape[1]]), tf.bool)
    return tf.cast(tf.where(mask), tf.int32)


@keras.saving.register_keras_serializable(package="keras_structconv")
class SparseResidualUnit(keras.layers.Layer):
    """Basic residual unit on a sparse map: `ReLU(BN(conv(ReLU(BN(conv(x))))) + shortcut(x))`.

    Both convolutions are 3x3 submanifold convolutions without bias; the shortcut is the
    identity, or a 1x1 convolution + BN when the width changes. `dense_call` runs the same unit
    (same weights) on a dense map with every site active.

    Args:
        filters: output channels.
        kernel_size: odd size of the two convolutions.
        kernel_initializer, kernel_regularizer: of every convolution.
        **kwargs: base `Layer` arguments.

    Call arguments: `features [N, C]`, `neighbours [N, K*K]` (`neighbour_table`), `training`.

    Output shape: `(N, filters)`.

    Reference: K. He et al., "Deep Residual Learning", CVPR 2016; QGN Table 7.
    """

    def __init__(
        self,
        filters,
        kernel_size=3,
        kernel_initializer=None,
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer or default_kernel_initializer()
        )
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.conv1 = self._conv(self.kernel_size, "conv1")
        self.norm1 = SparseBatchNormalization(BN_MOMENTUM, BN_EPSILON, name="bn1")
        self.conv2 = self._conv(self.kernel_size, "conv2")
        self.norm2 = SparseBatchNormalization(BN_MOMENTUM, BN_EPSILON, name="bn2")
        self.shortcut_conv = self.shortcut_norm = None

    def _conv(self, kernel_size, name):
        return SubmanifoldConv2D(
            self.filters,
            kernel_size,
            use_bias=False,
            kernel_initializer=self.kernel_initializer,
            kernel_regularizer=self.kernel_regularizer,
            name=name,
        )

    def build(self, features_shape, neighbours_shape=None):
        channels = int(features_shape[-1])
        self.conv1.build((None, channels))
        self.norm1.build((None, self.filters))
        self.conv2.build((None, self.filters))
        self.norm2.build((None, self.filters))
        if channels != self.filters:
            self.shortcut_conv = self._conv(1, "shortcut_conv")
            self.shortcut_norm = SparseBatchNormalization(
                BN_MOMENTUM, BN_EPSILON, name="shortcut_bn"
            )
            self.shortcut_conv.build((None, channels))
            self.shortcut_norm.build((None, self.filters))

    def call(self, features, neighbours, training=None):
        hidden = tf.nn.relu(self.norm1(self.conv1(features, neighbours), training=training))
        hidden = self.norm2(self.conv2(hidden, neighbours), training=training)
        shortcut = features
        if self.shortcut_conv is not None:
            shortcut = self.shortcut_norm(self.shortcut_conv(features), training=training)
        return tf.nn.relu(hidden + tf.cast(shortcut, hidden.dtype))

    def dense_call(self, inputs, training=None):
        """The same unit on a dense map `[B, H, W, C]` with every site active."""
        hidden = tf.nn.relu(self.norm1(self.conv1.dense_call(inputs), training=training))
        hidden = self.norm2(self.conv2.dense_call(hidden), training=training)
        shortcut = inputs
        if self.shortcut_conv is not None:
            shortcut = self.shortcut_norm(self.shortcut_conv.dense_call(inputs), training=training)
        return tf.nn.relu(hidden + tf.cast(shortcut, hidden.dtype))

    def compute_output_shape(self, features_shape, neighbours_shape=None):
        return (features_shape[0], self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            kernel_regularizer=(
                None
                if self.kernel_regularizer is None
                else keras.regularizers.serialize(self.kernel_regularizer)
            ),
        )
        return config


def _positive_int_tuple(name, values, length):
    try:
        values = tuple(int(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(
            f"`{name}` must be a sequence of {length} positive integers. "
            f"Received: {name}={values!r}"
        ) from None
    if len(values) != length or any(v < 1 for v in values):
        raise ValueError(
            f"`{name}` must be a sequence of {length} positive integers (one per level 0.."
            f"{length - 1}, index 0 = full resolution). Received: {name}={values!r}"
        )
    return values


@keras.saving.register_keras_serializable(package="keras_structconv")
class QuadtreeDecoder(keras.layers.Layer):
    """Sparse quadtree decoder of the QGN: per-level K+1 logits on the propagated sites.

    See the module docstring for the architecture, the propagation schemes and the outputs.

    Args:
        num_classes: K, the number of classes (the decoder predicts K+1 channels per level).
        num_levels: L, quadtree levels (the encoder's output stride is 2^(L-1)); default 6.
        filters: channels of the residual units of levels 0..L-2 (index 0 = full resolution).
            Default `(64, 64, 64, 128, 256)`: Table 7's Trans0..Trans4 outputs.
        units: residual units of levels 0..L-2. Default `(3, 3, 3, 4, 6)` (Table 7).
        top_filters: channels of the 1x1 projection of the stride-2^(L-1) features (Table 7's
            decoder input, 512).
        propagation: default scheme, "all", "gt" or "pred" (overridable per call).
        output_mode: "sparse" (logits at the active sites + their indices) or "dense" (logits
            scattered into `[B, H_l, W_l, K+1]`, zero at inactive sites).
        dense_all: run `propagation="all"` with dense convolutions (same weights and values).
        kernel_initializer: of every convolution (default He normal, fan-out).
        kernel_regularizer: of every convolution.
        **kwargs: base `Layer` arguments.

    Call arguments:
        encoder_features: list of L-1 dense maps, entry i at stride 2^(i+1) (levels 1..L-1, as a
            backbone yields them: /2, /4, /8, /16, /32), `[B, H/2^(i+1), W/2^(i+1), C_i]`,
            static spatial sizes.
        composite_masks: for "gt": list of L-1 boolean `[B, H/2^(i+1), W/2^(i+1)]`, entry i for
            level i+1 (`composite_masks_from_labels(tpyramid_labels(...))`).
        propagation: overrides the constructor's scheme for this call.
        training: BatchNorm mode.

    Returns:
        `{"logits": (...), "indices": (...), "masks": (...)}`, per-level tuples (index 0 = full
        resolution); no "indices" in dense output mode.

    Example:
        >>> decoder = QuadtreeDecoder(num_classes=11)
        >>> levels = tpyramid_labels(labels, num_levels=6, num_classes=11)
        >>> out = decoder(features, composite_masks=composite_masks_from_labels(levels),
        ...               propagation="gt", training=True)
        >>> loss = quadtree_level_losses(sparse_level_labels(levels, out["indices"]),
        ...                              out["logits"])

    Reference: Chitta et al., "Quadtree Generating Networks", WACV 2020, Sec. 3.2-3.3, Table 7.
    """

    def __init__(
        self,
        num_classes,
        num_levels=6,
        filters=(64, 64, 64, 128, 256),
        units=(3, 3, 3, 4, 6),
        top_filters=512,
        propagation="gt",
        output_mode="sparse",
        dense_all=True,
        kernel_initializer=None,
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
            raise ValueError(f"`num_classes` must be an integer >= 1. Received: {num_classes!r}")
        if num_classes < 1:
            raise ValueError(f"`num_classes` must be an integer >= 1. Received: {num_classes!r}")
        if isinstance(num_levels, bool) or not isinstance(num_levels, (int, np.integer)):
            raise ValueError(f"`num_levels` must be an integer >= 2. Received: {num_levels!r}")
        if num_levels < 2:
            raise ValueError(f"`num_levels` must be an integer >= 2. Received: {num_levels!r}")
        if output_mode not in OUTPUT_MODES:
            raise ValueError(
                f"`output_mode` must be one of {OUTPUT_MODES}. "
                f"Received: output_mode={output_mode!r}"
            )
        self.num_classes = int(num_classes)
        self.num_levels = int(num_levels)
        self.filters = _positive_int_tuple("filters", filters, self.num_levels - 1)
        self.units = _positive_int_tuple("units", units, self.num_levels - 1)
        self.top_filters = _positive_int_tuple("top_filters", [top_filters], 1)[0]
        self.propagation = check_propagation(propagation)
        self.output_mode = output_mode
        self.dense_all = bool(dense_all)
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer or default_kernel_initializer()
        )
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        top = self.num_levels - 1
        self.top_conv = self._conv(self.top_filters, 1, f"level{top}_projection")
        self.top_norm = SparseBatchNormalization(BN_MOMENTUM, BN_EPSILON, name=f"level{top}_bn")
        self.heads = [
            SubmanifoldConv2D(
                self.num_classes + 1,
                1,
                use_bias=True,
                kernel_initializer=self.kernel_initializer,
                kernel_regularizer=self.kernel_regularizer,
                name=f"level{level}_head",
            )
            for level in range(self.num_levels)
        ]
        self.skip_convs, self.skip_norms = [], []
        for level in range(1, self.num_levels - 1):
            self.skip_convs.append(self._conv(self._input_width(level), 1, f"level{level}_skip"))
            self.skip_norms.append(
                SparseBatchNormalization(BN_MOMENTUM, BN_EPSILON, name=f"level{level}_skip_bn")
            )
        self.blocks = [
            [
                SparseResidualUnit(
                    self.filters[level],
                    kernel_initializer=self.kernel_initializer,
                    kernel_regularizer=self.kernel_regularizer,
                    name=f"level{level}_unit{index}",
                )
                for index in range(self.units[level])
            ]
            for level in range(self.num_levels - 1)
        ]

    def _conv(self, filters, kernel_size, name):
        return SubmanifoldConv2D(
            filters,
            kernel_size,
            kernel_initializer=self.kernel_initializer,
            kernel_regularizer=self.kernel_regularizer,
            name=name,
        )

    def _input_width(self, level):
        """Channels entering level `level`'s block: those of level + 1's features."""
        return self.top_filters if level == self.num_levels - 2 else self.filters[level + 1]

    # ---------------------------------------------------------------------------- geometry

    def _check_feature_shapes(self, shapes):
        shapes = [tuple(s) for s in shapes]
        expected = self.num_levels - 1
        if len(shapes) != expected or any(len(s) != 4 for s in shapes):
            raise ValueError(
                f"`encoder_features` must be a list of {expected} maps (batch, height, width, "
                f"channels), strides 2..{2 ** (self.num_levels - 1)}. Received shapes: {shapes}"
            )
        top_height, top_width = shapes[-1][1], shapes[-1][2]
        if top_height is None or top_width is None:
            raise ValueError(
                f"`encoder_features` need static heights and widths. Received shapes: {shapes}"
            )
        for index, shape in enumerate(shapes):
            factor = 2 ** (self.num_levels - 2 - index)
            if shape[1:3] != (top_height * factor, top_width * factor) or shape[3] is None:
                raise ValueError(
                    f"`encoder_features[{index}]` (stride {2 ** (index + 1)}) must be "
                    f"{factor}x the size of the stride-{2 ** (self.num_levels - 1)} map, "
                    f"{top_height * factor}x{top_width * factor}, with known channels. "
                    f"Received shapes: {shapes}"
                )
        return [
            (top_height * 2 ** (self.num_levels - 1 - level),
             top_width * 2 ** (self.num_levels - 1 - level))
            for level in range(self.num_levels)
        ]

    def build(self, input_shape):
        self._spatial = self._check_feature_shapes(input_shape)
        top = self.num_levels - 1
        self.top_conv.build((None, int(input_shape[-1][-1])))
        self.top_norm.build((None, self.top_filters))
        self.heads[top].build((None, self.top_filters))
        for level in range(top - 1, -1, -1):
            width = self._input_width(level)
            if level >= 1:
                self.skip_convs[level - 1].build((None, int(input_shape[level - 1][-1])))
                self.skip_norms[level - 1].build((None, width))
            for unit in self.blocks[level]:
                unit.build((None, width))
                width = unit.filters
            self.heads[level].build((None, width))

    # ---------------------------------------------------------------------------- forward

    def call(self, encoder_features, composite_masks=None, propagation=None, training=None):
        propagation = check_propagation(propagation or self.propagation)
        features = [tf.cast(f, self.compute_dtype) for f in encoder_features]
        self._check_feature_shapes([f.shape for f in features])
        masks_in = None
        if propagation == "gt":
            masks_in = self._check_composite_masks(composite_masks, features)
        top = features[-1]
        x = tf.nn.relu(self.top_norm(self.top_conv.dense_call(top), training=training))
        top_logits = self.heads[-1].dense_call(x)
        if propagation == "all" and self.dense_all:
            return self._decode_dense(x, top_logits, features, training)
        return self._decode_sparse(x, top_logits, features, propagation, masks_in, training)

    def _check_composite_masks(self, composite_masks, features):
        expected = self.num_levels - 1
        if composite_masks is None or len(composite_masks) != expected:
            raise ValueError(
                f'propagation="gt" needs `composite_masks`: a list of {expected} boolean masks '
                "(batch, height, width), entry i for level i+1 "
                "(`composite_masks_from_labels(tpyramid_labels(...))`). Received: "
                f"composite_masks={'None' if composite_masks is None else len(composite_masks)}"
                f"{'' if composite_masks is None else ' entries'}"
            )
        masks = []
        for index, (mask, feature) in enumerate(zip(composite_masks, features, strict=True)):
            mask = tf.convert_to_tensor(mask)
            if mask.shape.rank != 3 or tuple(mask.shape[1:]) != tuple(feature.shape[1:3]):
                raise ValueError(
                    f"`composite_masks[{index}]` must have shape (batch, "
                    f"{feature.shape[1]}, {feature.shape[2]}) (level {index + 1}). "
                    f"Received: composite_masks[{index}].shape={mask.shape}"
                )
            masks.append(mask if mask.dtype == tf.bool else tf.not_equal(mask, 0))
        return masks

    def _propagated(self, propagation, level, indices, logits, masks_in):
        """Which rows of level `level` are upsampled to level - 1 (None: every row)."""
        if propagation == "all":
            return None
        if propagation == "gt":
            return tf.gather_nd(masks_in[level - 1], indices)
        return tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), 0)

    def _decode_sparse(self, x, top_logits, features, propagation, masks_in, training):
        top = self.num_levels - 1
        batch_size = tf.shape(x)[0]
        indices = _all_sites(batch_size, self._spatial[top])
        sites = tf.reshape(x, [-1, self.top_filters])
        logits = tf.reshape(top_logits, [-1, self.num_classes + 1])
        level_logits, level_indices = {top: logits}, {top: indices}
        for level in range(top - 1, -1, -1):
            keep = self._propagated(propagation, level + 1, indices, logits, masks_in)
            if keep is not None:
                sites = tf.boolean_mask(sites, keep)
                indices = tf.boolean_mask(indices, keep)
            sites = upsample_features(sites)
            indices = upsample_indices(indices)
            if level >= 1:
                skip = self.skip_convs[level - 1](tf.gather_nd(features[level - 1], indices))
                sites = sites + self.skip_norms[level - 1](skip, training=training)
            table = neighbour_table(indices, self._spatial[level], 3)
            for unit in self.blocks[level]:
                sites = unit(sites, table, training=training)
            logits = self.heads[level](sites)
            level_logits[level], level_indices[level] = logits, indices
        return self._sparse_outputs(level_logits, level_indices, batch_size)

    def _sparse_outputs(self, level_logits, level_indices, batch_size):
        levels = range(self.num_levels)
        masks = tuple(
            _active_mask(level_indices[level], batch_size, self._spatial[level]) for level in levels
        )
        if self.output_mode == "sparse":
            return {
                "logits": tuple(level_logits[level] for level in levels),
                "indices": tuple(level_indices[level] for level in levels),
                "masks": masks,
            }
        logits = tuple(
            densify(level_logits[level], level_indices[level], batch_size, self._spatial[level])
            for level in levels
        )
        return {"logits": logits, "masks": masks}

    def _decode_dense(self, x, top_logits, features, training):
        top = self.num_levels - 1
        level_logits = {top: top_logits}
        for level in range(top - 1, -1, -1):
            x = _upsample_dense(x)
            if level >= 1:
                skip = self.skip_convs[level - 1].dense_call(features[level - 1])
                x = x + self.skip_norms[level - 1](skip, training=training)
            for unit in self.blocks[level]:
                x = unit.dense_call(x, training=training)
            level_logits[level] = self.heads[level].dense_call(x)
        batch_size = tf.shape(x)[0]
        levels = range(self.num_levels)
        masks = tuple(
            tf.ones(tf.stack([batch_size, *self._spatial[level]]), tf.bool) for level in levels
        )
        if self.output_mode == "dense":
            return {"logits": tuple(level_logits[level] for level in levels), "masks": masks}
        return {
            "logits": tuple(
                tf.reshape(level_logits[level], [-1, self.num_classes + 1]) for level in levels
            ),
            "indices": tuple(_all_sites(batch_size, self._spatial[level]) for level in levels),
            "masks": masks,
        }

    # ---------------------------------------------------------------------------- shapes

    def compute_output_shape(self, input_shape):
        spatial = self._check_feature_shapes(input_shape)
        batch = input_shape[0][0]
        channels = self.num_classes + 1
        if self.output_mode == "sparse":
            logits = tuple((None, channels) for _ in spatial)
        else:
            logits = tuple((batch, h, w, channels) for h, w in spatial)
        shapes = {"logits": logits, "masks": tuple((batch, h, w) for h, w in spatial)}
        if self.output_mode == "sparse":
            shapes["indices"] = tuple((None, 3) for _ in spatial)
        return shapes

    def compute_output_spec(
        self, encoder_features, composite_masks=None, propagation=None, training=None
    ):
        shapes = self.compute_output_shape([f.shape for f in encoder_features])
        dtypes = {"logits": self.compute_dtype, "masks": "bool", "indices": "int32"}
        return {
            key: tuple(keras.KerasTensor(shape, dtype=dtypes[key]) for shape in value)
            for key, value in shapes.items()
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            num_classes=self.num_classes,
            num_levels=self.num_levels,
            filters=list(self.filters),
            units=list(self.units),
            top_filters=self.top_filters,
            propagation=self.propagation,
            output_mode=self.output_mode,
            dense_all=self.dense_all,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            kernel_regularizer=(
                None
                if self.kernel_regularizer is None
                else keras.regularizers.serialize(self.kernel_regularizer)
            ),
        )
        return config
