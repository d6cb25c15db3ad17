"""Learning-rate schedules of the zoo recipes, and small step/epoch helpers.

- `poly_decay_sgd`: SGD with the polynomial learning-rate decay of the segmentation literature,
  `lr = lr_0 (1 - i / i_max)^power` (QGN appendix: lr_0 = 0.02, power = 0.9).
- `current_learning_rate`: the rate an optimizer uses at its current step.
- `epochs_for`: epochs covering a number of steps.
"""

import math

import keras
import numpy as np

__all__ = ["current_learning_rate", "epochs_for", "poly_decay_sgd"]


def poly_decay_sgd(
    total_steps,
    initial_learning_rate=0.02,
    power=0.9,
    momentum=0.9,
    weight_decay=None,
    end_learning_rate=0.0,
):
    """SGD with `lr(i) = (lr_0 - lr_end) (1 - min(i, total_steps) / total_steps)^power + lr_end`.

    With `end_learning_rate=0` this is QGN's schedule (appendix: lr_0 = 0.02, power 0.9,
    i_max = 100,000 iterations). Momentum and weight decay are not given by the paper; the
    defaults (momentum 0.9, no decay) are ours. `weight_decay` is Keras' decoupled decay.

    Args:
        total_steps: i_max, the number of optimizer steps of the whole run (>= 1).
        initial_learning_rate: lr_0.
        power: the decay exponent rho.
        momentum: SGD momentum.
        weight_decay: None or the decoupled weight decay coefficient.
        end_learning_rate: learning rate from step `total_steps` on.

    Returns:
        A `keras.optimizers.SGD` with a `keras.optimizers.schedules.PolynomialDecay` schedule.
    """
    if isinstance(total_steps, bool) or not isinstance(total_steps, (int, np.integer)) or (
        total_steps < 1
    ):
        raise ValueError(f"`total_steps` must be an integer >= 1. Received: {total_steps!r}")
    if not initial_learning_rate > 0:
        raise ValueError(
            f"`initial_learning_rate` must be > 0. Received: {initial_learning_rate!r}"
        )
    if not power > 0:
        raise ValueError(f"`power` must be > 0. Received: power={power!r}")
    schedule = keras.optimizers.schedules.PolynomialDecay(
        initial_learning_rate,
        decay_steps=int(total_steps),
        end_learning_rate=end_learning_rate,
        power=power,
    )
    return keras.optimizers.SGD(schedule, momentum=momentum, weight_decay=weight_decay)


def current_learning_rate(optimizer):
    """The learning rate the optimizer uses at its current step, as a Python float."""
    rate = optimizer.learning_rate
    return float(np.asarray(keras.ops.convert_to_numpy(rate)))


def epochs_for(total_steps, steps_per_epoch):
    """Number of epochs of `steps_per_epoch` steps covering `total_steps` (rounded up)."""
    return math.ceil(total_steps / steps_per_epoch)
