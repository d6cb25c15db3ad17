"""Train-step time measured inside `fit`, for a trial's model and its vanilla backbone.

A step is timed from `on_train_batch_begin` to `on_train_batch_end` (TensorFlow runs the step
function synchronously, so this is the step with its input fetch from the prefetched pipeline).
The first `warmup_steps` steps (tracing, XLA compilation of the operators' kernels, allocator
warm-up) are skipped and the median of the next `timed_steps` is kept. The vanilla backbone is
timed the same way, with the same pipeline and batch size, in the same process right before the
trial trains, so that the ratio compares like with like on a machine whose load changes.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import keras
import numpy as np

__all__ = ["StepTimer", "measure_step_seconds"]


class StepTimer(keras.callbacks.Callback):
    """Times training steps; calls `on_measured(timer)` once `timed_steps` are timed.

    Args:
        warmup_steps: steps skipped before timing.
        timed_steps: steps whose median is `seconds`.
        on_measured: optional callback, e.g. a budget check that sets
            `timer.model.stop_training = True` (Keras stops at the end of that step).
        clock: a function returning seconds.

    Example:

    ```python
    timer = StepTimer(warmup_steps=2, timed_steps=10)
    model.fit(dataset, epochs=1, callbacks=[timer])
    print(timer.seconds)  # median seconds per step
    ```
    """

    def __init__(
        self,
        warmup_steps: int = 2,
        timed_steps: int = 10,
        on_measured: Callable[[StepTimer], None] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ):
        super().__init__()
        self.warmup_steps = warmup_steps
        self.timed_steps = timed_steps
        self.on_measured = on_measured
        self.clock = clock
        self.durations: list[float] = []
        self.steps_seen = 0
        self._started = None

    @property
    def seconds(self) -> float | None:
        """Median of the timed steps (None before any)."""
        return statistics.median(self.durations) if self.durations else None

    @property
    def complete(self) -> bool:
        return len(self.durations) >= self.timed_steps

    def on_train_batch_begin(self, batch, logs=None):
        self._started = self.clock()

    def on_train_batch_end(self, batch, logs=None):
        elapsed = self.clock() - self._started
        self.steps_seen += 1
        if self.steps_seen <= self.warmup_steps or self.complete:
            return
        self.durations.append(elapsed)
        if self.complete and self.on_measured is not None:
            self.on_measured(self)


def measure_step_seconds(model: keras.Model, dataset, warmup_steps: int, timed_steps: int) -> float:
    """Median seconds of a training step of the compiled `model` on `dataset` (repeated).

    The model trains for `warmup_steps + timed_steps` steps: use a throwaway model (the vanilla
    reference), not one whose training matters.
    """
    timer = StepTimer(warmup_steps, timed_steps)
    model.fit(
        dataset.repeat(), epochs=1, steps_per_epoch=warmup_steps + timed_steps, verbose=0,
        callbacks=[timer], shuffle=False,
    )
    return float(timer.seconds)


def trainable_parameters(model: keras.Model) -> int:
    """Number of trainable weights (scalars) of `model`."""
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))
