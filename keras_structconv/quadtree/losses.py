"""Quadtree loss: per-level cross-entropy and the level weights beta (fixed or adaptive).

Reference: K. Chitta, J. M. Alvarez, M. Hebert, "Quadtree Generating Networks", WACV 2020,
Sec. 3.1 "Loss function" and "Loss weighting", Eq. 4-8.

Definition (SPEC 5). With training labels from `tpyramid_labels` (0 composite, c+1 class c, -1
not supervised) and K+1 logits per cell:
- level loss `L_l` = mean cross-entropy over the cells of level l whose label is not -1, over
  the whole batch; 0 when no cell of the level is supervised (Eq. 4);
- total loss `L = L_0 + sum_{l>=1} beta_l L_l` (Eq. 6, beta_0 = 1);
- fixed weights `beta_l = gamma**l` (Eq. 7; the authors' default gamma = 1, 1.5 for SUN-RGBD);
- adaptive weights: beta_l starts at 1 and after every training step
  `beta_l <- delta * beta_l + (1 - delta) * stop_gradient(L_l / L_0)` with delta = 0.99. This is
  the authors' released code: Eq. 8 with the level loss normalised by the full-resolution loss.
  (The anytime-prediction paper cited for Eq. 8 uses the inverse, L_0 / L_l; not implemented.)

The beta's are model state: `QuadtreeLossWeights` is a small Keras layer owned by the model
(non-trainable weight, saved in `.keras` files); a state inside a `keras.losses.Loss` would not be
saved. Typical use in a custom `train_step`:

    level_losses = quadtree_level_losses(level_labels, level_logits)
    loss = self.quadtree_loss_weights(level_losses)      # L_0 + sum beta_l L_l
    ...apply gradients...
    self.quadtree_loss_weights.update(level_losses)      # adaptive: moves beta; fixed: no-op
"""

import keras
import numpy as np
import tensorflow as tf

from keras_structconv.quadtree.labels import NOT_SUPERVISED


def level_cross_entropy(labels, logits, from_logits=True):
    """Mean cross-entropy over the supervised cells of one level (0 when none is supervised).

    Args:
        labels: integer tensor of any shape `S` with values -1 (not supervised) or
            0..K (K+1 classes: 0 composite, c+1 class c), e.g. a level of `tpyramid_labels`
            `(B, h, w)`, or labels gathered at sparse sites `(N,)`.
        logits: float tensor `S + (K+1,)`: logits (or probabilities if `from_logits=False`).
        from_logits: whether `logits` are unnormalised.

    Returns:
        float32 scalar. Computed in float32 whatever the logits dtype (mixed precision).
    """
    labels = tf.convert_to_tensor(labels)
    logits = tf.cast(tf.convert_to_tensor(logits), tf.float32)
    if labels.shape.rank is not None and logits.shape.rank is not None:
        if logits.shape.rank != labels.shape.rank + 1:
            raise ValueError(
                "`logits` must have one more axis (the K+1 classes) than `labels`. "
                f"Received: labels.shape={labels.shape}, logits.shape={logits.shape}"
            )
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
    logits = tf.reshape(logits, [-1, tf.shape(logits)[-1]])
    supervised = labels != NOT_SUPERVISED
    # Unsupervised cells get a harmless class 0 and weight 0: no gather out of range, no NaN.
    safe_labels = tf.where(supervised, labels, 0)
    if from_logits:
        per_cell = tf.nn.sparse_softmax_cross_entropy_with_logits(safe_labels, logits)
    else:
        probabilities = tf.clip_by_value(logits, keras.config.epsilon(), 1.0)
        per_cell = -tf.math.log(tf.gather(probabilities, safe_labels, batch_dims=1))
    weights = tf.cast(supervised, tf.float32)
    return tf.math.divide_no_nan(tf.reduce_sum(per_cell * weights), tf.reduce_sum(weights))


def quadtree_level_losses(level_labels, level_logits, from_logits=True):
    """Level losses `[L_0, ..., L_{L-1}]` as a float32 tensor `(num_levels,)`.

    Args:
        level_labels: sequence of per-level label tensors (index 0 = full resolution), e.g. the
            output of `tpyramid_labels`.
        level_logits: sequence of per-level logits, `level_labels[l].shape + (K+1,)`.
        from_logits: whether the predictions are logits.
    """
    if len(level_labels) != len(level_logits) or len(level_labels) == 0:
        raise ValueError(
            "`level_labels` and `level_logits` must be non-empty sequences of the same length "
            f"(one entry per level). Received: {len(level_labels)} label levels and "
            f"{len(level_logits)} logit levels"
        )
    return tf.stack(
        [
            level_cross_entropy(labels, logits, from_logits=from_logits)
            for labels, logits in zip(level_labels, level_logits, strict=True)
        ]
    )


def fixed_level_weights(num_levels, gamma=1.0):
    """`[gamma**0, ..., gamma**(num_levels-1)]` (Eq. 7 with beta_0 = 1), a float64 NumPy array."""
    return np.asarray(float(gamma), np.float64) ** np.arange(num_levels, dtype=np.float64)


@keras.saving.register_keras_serializable(package="keras_structconv")
class QuadtreeLossWeights(keras.layers.Layer):
    """Level weights beta of the quadtree loss, held by the model (QGN, Eq. 6-8).

    Calling the layer on the level losses `(num_levels,)` returns `L_0 + sum_{l>=1} beta_l L_l`.
    `update(level_losses)` moves the adaptive weights after a training step
    (`beta_l <- momentum * beta_l + (1 - momentum) * L_l / L_0`, the authors' code; the weights
    are left unchanged when `L_0` is 0) and does nothing for fixed weights (`beta_l = gamma**l`).
    beta_0 is always 1. The weights are a non-trainable weight `beta`, saved with the model.

    Args:
        num_levels: number of quadtree levels (>= 1).
        weighting: "fixed" or "adaptive".
        gamma: ratio between consecutive fixed weights (> 0); ignored when adaptive.
        momentum: delta of Eq. 8, in [0, 1); ignored when fixed.
        **kwargs: base `Layer` arguments (name, ...).

    Input shape: `(num_levels,)` level losses (e.g. `quadtree_level_losses`).
    Output shape: `()` the weighted total, float32.

    Example:
        >>> weights = QuadtreeLossWeights(num_levels=3, weighting="adaptive")
        >>> losses = tf.constant([2.0, 1.0, 4.0])
        >>> float(weights(losses))
        7.0
        >>> weights.update(losses)
        >>> [round(float(beta), 3) for beta in weights.beta.numpy()]
        [1.0, 0.995, 1.01]

    Reference: K. Chitta et al., "Quadtree Generating Networks", WACV 2020, Eq. 6-8.
    """

    WEIGHTINGS = ("fixed", "adaptive")

    def __init__(self, num_levels, weighting="adaptive", gamma=1.0, momentum=0.99, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if (
            isinstance(num_levels, bool)
            or not isinstance(num_levels, (int, np.integer))
            or (num_levels < 1)
        ):
            raise ValueError(
                f"`num_levels` must be an integer >= 1. Received: num_levels={num_levels!r}"
            )
        if weighting not in self.WEIGHTINGS:
            raise ValueError(
                f"`weighting` must be one of {self.WEIGHTINGS}. Received: weighting={weighting!r}"
            )
        if not gamma > 0:
            raise ValueError(f"`gamma` must be > 0. Received: gamma={gamma!r}")
        if not 0 <= momentum < 1:
            raise ValueError(f"`momentum` must be in [0, 1). Received: momentum={momentum!r}")
        self.num_levels = int(num_levels)
        self.weighting = weighting
        self.gamma = float(gamma)
        self.momentum = float(momentum)
        # The weights do not depend on any input: build now, so that a model holding this layer
        # outside its call graph saves and reloads `beta`.
        self.build()

    def build(self, input_shape=None):
        if self.weighting == "fixed":
            initial = fixed_level_weights(self.num_levels, self.gamma)
        else:
            initial = np.ones(self.num_levels)
        self.beta = self.add_weight(
            name="beta",
            shape=(self.num_levels,),
            initializer=keras.initializers.Constant(initial.astype(np.float32)),
            dtype="float32",
            trainable=False,
            aggregation="mean",
        )
        self.built = True

    def _check_level_losses(self, level_losses):
        level_losses = tf.cast(tf.convert_to_tensor(level_losses), tf.float32)
        if level_losses.shape.rank != 1 or level_losses.shape[0] != self.num_levels:
            raise ValueError(
                f"`level_losses` must have shape ({self.num_levels},) (one loss per level). "
                f"Received: level_losses.shape={level_losses.shape}"
            )
        return level_losses

    def call(self, level_losses):
        level_losses = self._check_level_losses(level_losses)
        beta = tf.stop_gradient(tf.convert_to_tensor(self.beta))
        return level_losses[0] + tf.reduce_sum(beta[1:] * level_losses[1:])

    def update(self, level_losses):
        """Adaptive: one step of beta's running average (skipped when L_0 = 0). Fixed: no-op."""
        if self.weighting == "fixed":
            return
        level_losses = tf.stop_gradient(self._check_level_losses(level_losses))
        full_resolution = level_losses[0]
        ratios = tf.math.divide_no_nan(level_losses, full_resolution)
        beta = tf.convert_to_tensor(self.beta)
        moved = self.momentum * beta + (1.0 - self.momentum) * ratios
        moved = tf.concat([tf.ones([1]), moved[1:]], axis=0)  # beta_0 stays exactly 1
        self.beta.assign(tf.where(full_resolution > 0, moved, beta))

    def compute_output_shape(self, input_shape):
        return ()

    def get_config(self):
        config = super().get_config()
        config.update(
            num_levels=self.num_levels,
            weighting=self.weighting,
            gamma=self.gamma,
            momentum=self.momentum,
        )
        return config
