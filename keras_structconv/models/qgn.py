"""Quadtree Generating Network (QGN): a ResNet encoder and the sparse quadtree decoder.

Reference: K. Chitta, J. M. Alvarez, M. Hebert, "Quadtree Generating Networks: Efficient
Hierarchical Scene Parsing with Sparse Convolutions", WACV 2020 (arXiv:1907.11821), Sec. 3 and
the appendix (training details).

Definition. An image `(H, W, 3)` goes through an ImageNet ResNet encoder (`qgn_encoder`:
`keras.applications.ResNet50`, not dilated, or our ResNet-18: 7x7 stem + max-pool), whose
features at strides 2, 4, 8, 16, 32 (the stem's ReLU and the last block of each stage) feed
`QuadtreeDecoder`. The decoder predicts, at every level l of a quadtree (level 0 = full
resolution, level L-1 = stride 32), K+1 logits per active cell: 0 = composite, c+1 = class c.
Which cells of level l+1 are refined at level l is the *propagation* scheme:

- "gt": the ground-truth composite cells (training; an upper-bound evaluation);
- "pred": the cells the network predicts composite (inference);
- "all": every cell (the dense baseline).

Training (`train_step`): the T-pyramid labels (`tpyramid_labels`) are computed inside the step
from the label maps (0..K-1, `ignore_index` = void), the level losses are the cross-entropies
over the supervised active cells, and the total loss is `L_0 + sum_l beta_l L_l` with the
adaptive (or fixed) level weights beta of `QuadtreeLossWeights`, a model weight saved with the
model. Inference (`predict_step`, `call`) assembles the full-resolution class map from the
leaves of the decoded quadtree (`assemble_prediction`): a pixel takes the best non-composite
class of its finest active cell.

Metrics (train and evaluate): the loss, the per-level losses, the pixel accuracy and the mean
IoU over the K classes, both with the `ignore_index` pixels left out (the mean IoU averages
the classes present in the labels or the predictions, as `keras.metrics.MeanIoU`).

The propagation scheme is an attribute (`model.propagation = "pred"`): it applies to `fit`,
`evaluate`, `predict` and `model(images)`; setting it drops Keras' compiled step functions so
that the next call retraces. `"gt"` needs the label maps (`model(images, labels=labels)`,
`predict` on `(images, labels)` pairs).

Geometry: the decoder works on a static grid, so a QGN is built for one `input_shape`; height
and width must be multiples of `2**(levels - 1)` (32 for 6 levels). CamVid's loader pads
360x480 frames to 384x480 (`pad_to="auto"`), with void labels in the padding.
"""

import keras
import numpy as np
import tensorflow as tf

from keras_structconv._validation import int_in_range, is_int, one_of
from keras_structconv.models.qgn_encoder import (
    ENCODERS,
    check_input_shape,
    check_levels,
    qgn_encoder,
)
from keras_structconv.quadtree._config import (
    MIN_KERAS_FOR_RELOAD,  # noqa: F401  (re-exported: the reload tests read it here)
    keras_version,
    refuse_reload_on_old_keras,
)
from keras_structconv.quadtree.assemble import assemble_prediction
from keras_structconv.quadtree.decoder import (
    QuadtreeDecoder,
    check_propagation,
    composite_masks_from_labels,
    sparse_level_labels,
)
from keras_structconv.quadtree.labels import tpyramid_labels
from keras_structconv.quadtree.losses import QuadtreeLossWeights, quadtree_level_losses

__all__ = ["QGN", "qgn_encoder"]

# Decoder defaults for 6 levels (Table 7; index 0 = full resolution), truncated for fewer levels.
DEFAULT_DECODER_FILTERS = (64, 64, 64, 128, 256)
DEFAULT_DECODER_UNITS = (3, 3, 3, 4, 6)


def _keras_version():
    return keras_version()


@keras.saving.register_keras_serializable(package="keras_structconv")
class QGN(keras.Model):
    """Quadtree Generating Network for semantic segmentation (see the module docstring).

    Args:
        num_classes: K, the number of classes of the label maps (0..K-1).
        encoder: "resnet50" (`keras.applications.ResNet50`) or "resnet18" (ours); random
            initialisation (no weights are downloaded here).
        propagation: "gt", "pred" or "all", the scheme used by `fit`, `evaluate`, `predict`
            and `call`; an attribute, changeable at any time (`model.propagation = "pred"`).
        levels: quadtree levels L (2..6); 6 uses all the encoder's strides 2..32.
        input_shape: static `(height, width, channels)`, height and width multiples of
            `2**(levels - 1)`. Default (384, 480, 3): CamVid padded by its loader.
        decoder_filters: channels of the decoder's residual units at levels 0..L-2
            (default Table 7: (64, 64, 64, 128, 256), the first L-1 entries).
        decoder_units: residual units per level 0..L-2 (default (3, 3, 3, 4, 6), first L-1).
        top_filters: channels of the projection of the stride-2**(L-1) features (default 512).
        loss_weighting: "adaptive" (beta_l running average of L_l / L_0) or "fixed"
            (beta_l = gamma**l); see `QuadtreeLossWeights`.
        gamma: ratio of the fixed level weights.
        beta_momentum: delta of the adaptive weights (0.99).
        ignore_index: label value of void pixels (255): not a class, never supervised, left
            out of the metrics.
        kernel_regularizer: of every decoder convolution (e.g. `keras.regularizers.L2(1e-4)`).
        **kwargs: base `keras.Model` arguments (name, dtype, ...).

    Call arguments:
        images: float `(batch, height, width, channels)` of the static size `input_shape`.
        labels: int `(batch, height, width)` label maps, needed when the scheme is "gt".
        propagation: overrides `self.propagation` for this call.
        training: BatchNorm mode.

    Returns (call, `predict`):
        `{"classes": int32 (batch, height, width), "levels": int32 (batch, height, width)}`:
        the predicted class of every pixel and the quadtree level of the leaf it was taken from
        (0 = full resolution).

    Example:
        >>> model = QGN(11, encoder="resnet18", input_shape=(384, 480, 3))
        >>> model.compile(optimizer=keras.optimizers.SGD(0.02, momentum=0.9))
        >>> model.fit(load_camvid("train", augment=True, crop_size=(384, 480)), epochs=1)
        >>> model.propagation = "pred"
        >>> model.evaluate(load_camvid("test"))         # loss, pixel_accuracy, mean_iou, ...
        >>> model.export("qgn_savedmodel")             # serves the "pred" path

    Reference: Chitta et al., "Quadtree Generating Networks", WACV 2020.
    """

    def __init__(
        self,
        num_classes,
        encoder="resnet50",
        propagation="gt",
        levels=6,
        input_shape=(384, 480, 3),
        decoder_filters=None,
        decoder_units=None,
        top_filters=512,
        loss_weighting="adaptive",
        gamma=1.0,
        beta_momentum=0.99,
        ignore_index=255,
        kernel_regularizer=None,
        **kwargs,
    ):
        kwargs.setdefault("name", "qgn")
        super().__init__(**kwargs)
        self.num_classes = int_in_range(num_classes, "num_classes", 1)
        self.encoder_name = one_of(encoder, "encoder", ENCODERS)
        self._propagation = check_propagation(propagation)
        self.levels = check_levels(levels)
        self.image_shape = check_input_shape(input_shape, self.levels)
        if not is_int(ignore_index) or 0 <= ignore_index < self.num_classes:
            raise ValueError(
                "`ignore_index` must be an integer that is not a class id "
                f"(0..{self.num_classes - 1}). Received: ignore_index={ignore_index!r}"
            )
        self.ignore_index = int(ignore_index)
        depth = self.levels - 1
        self.decoder_filters = tuple(
            DEFAULT_DECODER_FILTERS[:depth] if decoder_filters is None else decoder_filters
        )
        self.decoder_units = tuple(
            DEFAULT_DECODER_UNITS[:depth] if decoder_units is None else decoder_units
        )
        self.top_filters = top_filters

        self.encoder = qgn_encoder(encoder, self.image_shape, self.levels)
        self.decoder = QuadtreeDecoder(
            self.num_classes,
            num_levels=self.levels,
            filters=self.decoder_filters,
            units=self.decoder_units,
            top_filters=top_filters,
            propagation=self._propagation,
            output_mode="sparse",
            kernel_regularizer=kernel_regularizer,
            name="decoder",
        )
        self.decoder.build([tuple(output.shape) for output in self.encoder.outputs])
        self.quadtree_loss_weights = QuadtreeLossWeights(
            self.levels,
            weighting=loss_weighting,
            gamma=gamma,
            momentum=beta_momentum,
            name="quadtree_loss_weights",
        )
        self._loss_tracker = keras.metrics.Mean(name="loss")
        self._level_trackers = [
            keras.metrics.Mean(name=f"level{level}_loss") for level in range(self.levels)
        ]
        self._pixel_accuracy = keras.metrics.Accuracy(name="pixel_accuracy")
        self._mean_iou = keras.metrics.MeanIoU(
            self.num_classes,
            name="mean_iou",
            ignore_class=self.ignore_index,
            sparse_y_true=True,
            sparse_y_pred=True,
        )
        self.built = True

    # ------------------------------------------------------------------------ propagation

    @property
    def propagation(self):
        """The propagation scheme of fit/evaluate/predict/call: "gt", "pred" or "all"."""
        return self._propagation

    @propagation.setter
    def propagation(self, value):
        self._propagation = check_propagation(value)
        # Keras caches the traced step functions, which captured the previous scheme.
        self.train_function = self.test_function = self.predict_function = None

    # ------------------------------------------------------------------------ forward

    def _check_images(self, images):
        images = tf.convert_to_tensor(images)
        if tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(
                f"`images` must have shape (batch, {', '.join(map(str, self.image_shape))}), the "
                "static `input_shape` this QGN was built for (pad or resize the images, or "
                f"build a QGN for that size). Received: images.shape={tuple(images.shape)}"
            )
        return images

    def level_labels(self, labels):
        """The T-pyramid training labels of label maps `(B, H, W)` (`tpyramid_labels`)."""
        return tpyramid_labels(labels, self.levels, self.num_classes, self.ignore_index)

    def decode(self, images, level_labels=None, propagation=None, training=False):
        """Raw decoder outputs (sparse per-level logits, indices, masks; see QuadtreeDecoder).

        Args:
            images: `(B, H, W, C)` of the model's `input_shape`.
            level_labels: `self.level_labels(labels)`, needed for "gt".
            propagation: scheme (default `self.propagation`).
            training: BatchNorm mode.
        """
        propagation = check_propagation(propagation or self._propagation)
        images = self._check_images(images)
        composite_masks = None
        if propagation == "gt":
            if level_labels is None:
                raise ValueError(
                    'propagation="gt" needs the label maps: call the model as '
                    "`model(images, labels=labels)` or predict on (images, labels) pairs, or "
                    'use propagation="pred" for inference. Received: labels=None'
                )
            composite_masks = composite_masks_from_labels(level_labels)
        features = self.encoder(images, training=training)
        return self.decoder(
            list(features),
            composite_masks=composite_masks,
            propagation=propagation,
            training=training,
        )

    def call(self, images, labels=None, propagation=None, training=None):
        level_labels = None if labels is None else self.level_labels(labels)
        outputs = self.decode(images, level_labels, propagation, training=bool(training))
        classes, levels = assemble_prediction(outputs, return_levels=True)
        return {"classes": classes, "levels": levels}

    # ------------------------------------------------------------------------ steps

    @property
    def metrics(self):
        return [
            self._loss_tracker,
            *self._level_trackers,
            self._pixel_accuracy,
            self._mean_iou,
        ]

    def _unpack(self, data, require_labels):
        images, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        if labels is None and require_labels:
            raise ValueError(
                "Training and evaluation need (images, labels) pairs: labels are int label maps "
                f"(batch, height, width) with classes 0..{self.num_classes - 1} and "
                f"{self.ignore_index} for void. Received: images only"
            )
        return images, labels

    def _quadtree_losses(self, level_labels, outputs):
        """(total loss, level losses `(L,)`) on the active cells of each level."""
        active_labels = sparse_level_labels(level_labels, outputs["indices"])
        level_losses = quadtree_level_losses(active_labels, outputs["logits"])
        loss = self.quadtree_loss_weights(level_losses)
        if self.losses:  # weight regularizers
            loss = loss + tf.cast(tf.add_n(self.losses), loss.dtype)
        return loss, level_losses

    def _update_metrics(self, loss, level_losses, labels, outputs):
        self._loss_tracker.update_state(loss)
        for level, tracker in enumerate(self._level_trackers):
            tracker.update_state(level_losses[level])
        classes = assemble_prediction(outputs)
        labels = tf.cast(labels, tf.int32)
        valid = tf.cast(labels != self.ignore_index, tf.float32)
        self._pixel_accuracy.update_state(labels, classes, sample_weight=valid)
        self._mean_iou.update_state(labels, classes)
        return {metric.name: metric.result() for metric in self.metrics}

    def train_step(self, data):
        images, labels = self._unpack(data, require_labels=True)
        level_labels = self.level_labels(labels)
        with tf.GradientTape() as tape:
            outputs = self.decode(images, level_labels, training=True)
            loss, level_losses = self._quadtree_losses(level_labels, outputs)
            scaled_loss = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled_loss, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        self.quadtree_loss_weights.update(level_losses)
        return self._update_metrics(loss, level_losses, labels, outputs)

    def test_step(self, data):
        images, labels = self._unpack(data, require_labels=True)
        level_labels = self.level_labels(labels)
        outputs = self.decode(images, level_labels, training=False)
        loss, level_losses = self._quadtree_losses(level_labels, outputs)
        return self._update_metrics(loss, level_losses, labels, outputs)

    def predict_step(self, data):
        images, labels = self._unpack(data, require_labels=False)
        if labels is None and isinstance(images, (tuple, list)) and len(images) == 2:
            # `predict((images, labels))` on arrays arrives as one (images, labels) input.
            images, labels = images
        return self(images, labels=labels, training=False)

    def confusion_matrix(self):
        """The confusion matrix `(K, K)` (rows: labels, columns: predictions; void left out)
        accumulated by the mean-IoU metric since its last reset (the last fit epoch or
        evaluate call), as a float64 NumPy array."""
        return np.asarray(keras.ops.convert_to_numpy(self._mean_iou.total_cm), np.float64)

    def with_input_shape(self, input_shape):
        """A copy of this QGN built for another `input_shape`, with the same weights (BatchNorm
        statistics and the level weights beta included) and the same propagation scheme.

        The weights do not depend on the image size; the decoder's grid does, hence a copy.
        """
        config = self.get_config()
        config["input_shape"] = list(input_shape)
        # The constructor, not `from_config`: the weights are copied here, so the reload fault of
        # older Keras (`from_config`'s refusal) does not apply.
        copy = type(self)(**config)
        copy.set_weights(self.get_weights())
        return copy

    # ------------------------------------------------------------------------ export, config

    def export(
        self,
        filepath,
        format="tf_saved_model",
        verbose=None,
        input_signature=None,
        propagation="pred",
        **kwargs,
    ):
        """Export the inference path as a SavedModel: endpoint "serve", images -> {"classes",
        "levels"} with `propagation` ("pred" by default, or "all"; "gt" needs labels and is
        not exportable). Reload with `keras.layers.TFSMLayer(path, call_endpoint="serve",
        dtype="float32")`.
        """
        if format != "tf_saved_model":
            raise ValueError(
                f"QGN exports only format='tf_saved_model'. Received: format={format!r}"
            )
        if check_propagation(propagation) == "gt":
            raise ValueError(
                'The exported inference path cannot use propagation="gt" (it needs labels); '
                "use 'pred' or 'all'. Received: propagation='gt'"
            )
        if input_signature is None:
            input_signature = [tf.TensorSpec((None, *self.image_shape), tf.float32, name="images")]

        def serve(images):
            return self(images, propagation=propagation, training=False)

        archive = keras.export.ExportArchive()
        archive.track(self)
        archive.add_endpoint("serve", serve, input_signature=input_signature)
        archive.write_out(filepath, verbose=True if verbose is None else verbose, **kwargs)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "num_classes": self.num_classes,
            "encoder": self.encoder_name,
            "propagation": self._propagation,
            "levels": self.levels,
            "input_shape": list(self.image_shape),
            "decoder_filters": list(self.decoder_filters),
            "decoder_units": list(self.decoder_units),
            "top_filters": self.top_filters,
            "loss_weighting": self.quadtree_loss_weights.weighting,
            "gamma": self.quadtree_loss_weights.gamma,
            "beta_momentum": self.quadtree_loss_weights.momentum,
            "ignore_index": self.ignore_index,
            "kernel_regularizer": (
                None
                if self.decoder.kernel_regularizer is None
                else keras.regularizers.serialize(self.decoder.kernel_regularizer)
            ),
        }

    @classmethod
    def from_config(cls, config):
        # Refuse rather than return a model whose decoder silently lost its weights.
        refuse_reload_on_old_keras("QGN", _keras_version())
        return cls(**config)
