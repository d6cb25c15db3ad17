"""The quadtree decoder of the Quadtree Generating Network (QGN), with its propagation schemes.

Definition. Levels are numbered as in `tpyramid_labels`: level 0 is full resolution, level
L-1 = 5 is the encoder output (stride 32). The decoder takes the encoder features at strides 2,
4, ..., 2^(L-1) (levels 1..L-1) and
- level L-1: a 1x1 convolution + BN + ReLU of the stride-32 features to `top_filters` channels,
  every site active, and a prediction head (1x1 convolution with bias, K+1 logits: 0 composite,
  c+1 class c);
- each finer level l = L-2, ..., 0: the *propagated* sites of level l+1 ("all", "gt" or "pred",
  see `quadtree.propagation`) are upsampled to their four children (Eq. 11), which are the
  active sites of level l; a 1x1 skip convolution + BN of the encoder features at level l (none
  at level 0: the encoder has no stride-1 features) is added; `units[l]` basic residual units
  (`SparseResidualUnit`; the first one changes the width to `filters[l]`) run on the active
  sites; a prediction head gives the K+1 logits of level l.

Every layer is sparse (`quadtree.sparse`): activation memory, kept-for-backward memory included,
follows the number of active sites, and an empty active set flows through as zero-row tensors.
With `propagation="all"` and `dense_all=True` the same layers run on dense maps (same weights,
same values). Where this makes the paper precise: docs/design/quadtree.md.

Outputs (a dict; per-level tuples, index 0 = full resolution):
- `"logits"`: `output_mode="sparse"`: `[N_l, K+1]` at the active sites; `"dense"`:
  `[B, H_l, W_l, K+1]`, zero at inactive sites;
- `"indices"` (sparse mode only): `[N_l, 3]` int32 `(batch, row, col)` of the active sites;
- `"masks"`: `[B, H_l, W_l]` bool, the active sites of each level.

Reference: K. Chitta, J. M. Alvarez, M. Hebert, "Quadtree Generating Networks: Efficient
Hierarchical Scene Parsing with Sparse Convolutions", WACV 2020 (arXiv:1907.11821), Sec. 3.2-3.3,
Fig. 2 and Table 7 (decoder: a transposed ResNet, RedNet-style, 19 basic residual units = 38
layers).
"""

import keras
import tensorflow as tf

from keras_structconv._validation import int_in_range, one_of
from keras_structconv.layers._defaults import BN_EPSILON, BN_MOMENTUM
from keras_structconv.layers._defaults import he_normal_fan_out as default_kernel_initializer
from keras_structconv.quadtree._config import (
    decoder_kernel_initializer,
    keras_version,
    refuse_reload_on_old_keras,
    serialized_attributes,
)
from keras_structconv.quadtree.propagation import (
    PROPAGATIONS,
    check_composite_masks,
    check_propagation,
    composite_masks_from_labels,
    level_spatial_shapes,
    propagated_sites,
    sparse_level_labels,
)
from keras_structconv.quadtree.residual_unit import (
    SparseResidualUnit,
    decoder_batch_norm,
    decoder_conv,
)
from keras_structconv.quadtree.sparse import (
    active_mask,
    all_sites,
    densify,
    neighbour_table,
    upsample_dense,
    upsample_features,
    upsample_indices,
)

__all__ = [
    "BN_EPSILON",
    "BN_MOMENTUM",
    "OUTPUT_MODES",
    "PROPAGATIONS",
    "QuadtreeDecoder",
    "SparseResidualUnit",
    "check_propagation",
    "composite_masks_from_labels",
    "default_kernel_initializer",
    "sparse_level_labels",
]

OUTPUT_MODES = ("sparse", "dense")


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

    See the module docstring for the architecture and the outputs, `quadtree.propagation` for
    the propagation schemes.

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
        self.num_classes = int_in_range(num_classes, "num_classes", 1)
        self.num_levels = int_in_range(num_levels, "num_levels", 2)
        self.filters = _positive_int_tuple("filters", filters, self.num_levels - 1)
        self.units = _positive_int_tuple("units", units, self.num_levels - 1)
        self.top_filters = _positive_int_tuple("top_filters", [top_filters], 1)[0]
        self.propagation = check_propagation(propagation)
        self.output_mode = one_of(output_mode, "output_mode", OUTPUT_MODES)
        self.dense_all = bool(dense_all)
        self.kernel_initializer = decoder_kernel_initializer(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self._create_layers()

    def _create_layers(self):
        # Attribute order = the order of `weights` (checkpoints and `.keras` files rely on it).
        top = self.num_levels - 1
        self.top_conv = decoder_conv(self, self.top_filters, 1, f"level{top}_projection")
        self.top_norm = decoder_batch_norm(f"level{top}_bn")
        self.heads = [
            decoder_conv(self, self.num_classes + 1, 1, f"level{level}_head", use_bias=True)
            for level in range(self.num_levels)
        ]
        self.skip_convs, self.skip_norms = [], []
        for level in range(1, self.num_levels - 1):
            width = self._input_width(level)
            self.skip_convs.append(decoder_conv(self, width, 1, f"level{level}_skip"))
            self.skip_norms.append(decoder_batch_norm(f"level{level}_skip_bn"))
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

    def _input_width(self, level):
        """Channels entering level `level`'s block: those of level + 1's features."""
        return self.top_filters if level == self.num_levels - 2 else self.filters[level + 1]

    def build(self, input_shape):
        self._spatial = level_spatial_shapes(input_shape, self.num_levels)
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
        level_spatial_shapes([f.shape for f in features], self.num_levels)
        masks_in = None
        if propagation == "gt":
            masks_in = check_composite_masks(composite_masks, features)
        top = features[-1]
        x = tf.nn.relu(self.top_norm(self.top_conv.dense_call(top), training=training))
        top_logits = self.heads[-1].dense_call(x)
        if propagation == "all" and self.dense_all:
            return self._decode_dense(x, top_logits, features, training)
        return self._decode_sparse(x, top_logits, features, propagation, masks_in, training)

    def _decode_sparse(self, x, top_logits, features, propagation, masks_in, training):
        top = self.num_levels - 1
        batch_size = tf.shape(x)[0]
        indices = all_sites(batch_size, self._spatial[top])
        sites = tf.reshape(x, [-1, self.top_filters])
        logits = tf.reshape(top_logits, [-1, self.num_classes + 1])
        level_logits, level_indices = {top: logits}, {top: indices}
        for level in range(top - 1, -1, -1):
            keep = propagated_sites(propagation, level + 1, indices, logits, masks_in)
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
            active_mask(level_indices[level], batch_size, self._spatial[level]) for level in levels
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
            x = upsample_dense(x)
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
            "indices": tuple(all_sites(batch_size, self._spatial[level]) for level in levels),
            "masks": masks,
        }

    # ---------------------------------------------------------------------------- shapes

    def compute_output_shape(self, input_shape):
        spatial = level_spatial_shapes(input_shape, self.num_levels)
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

    @classmethod
    def from_config(cls, config):
        # Refuse rather than return a decoder that silently lost its weights.
        refuse_reload_on_old_keras("QuadtreeDecoder", keras_version())
        return super().from_config(config)

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
        )
        config.update(serialized_attributes(self, "kernel_initializer", "kernel_regularizer"))
        return config
