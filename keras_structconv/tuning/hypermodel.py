"""`StructconvHyperModel`: a KerasTuner HyperModel over the operators of a backbone.

`build(hp)` declares the operators' hyper-parameters stage by stage (see
`keras_structconv.tuning.space`) and the training ones (learning rate, weight decay, batch size),
then builds the backbone with the chosen operators and compiles it (SGD with momentum and
decoupled weight decay). `fit(hp, model, x, y, validation_data=(x_val, y_val), epochs=...)`
trains on `keras_structconv.datasets`' CIFAR pipeline (shuffle, pad-4 crop + flip, per-channel
standardisation) at the chosen batch size, with a cosine learning-rate decay over the run.

Every trial reports, next to the objective: `params` (trainable weights), `step_time_seconds`
(median train step, see `keras_structconv.tuning.timing`), `vanilla_step_time_seconds` and
`step_time_ratio` (the backbone without operators, timed in the same process right before the
trial), `train_steps` (optimizer steps of the run) and `replicas` (the devices of the trial's
`tf.distribute` strategy). With a budget
(`max_params`, `max_step_time_ratio`) a trial over it raises `BudgetExceededError`, a
`keras_tuner.errors.FailedTrialError`: KerasTuner records the trial as FAILED with the reason
and the search goes on. The parameter budget is checked before training, the time budget as
soon as the timed steps are done (training stops there).
"""

from __future__ import annotations

import math
from typing import Any

import keras
import keras_tuner
import numpy as np

from keras_structconv.datasets import cifar10_dataset
from keras_structconv.tuning import space
from keras_structconv.tuning.backbones import get_backbone
from keras_structconv.tuning.timing import StepTimer, measure_step_seconds, trainable_parameters

__all__ = ["OBJECTIVES", "BudgetExceededError", "StructconvHyperModel"]

OBJECTIVES = {"val_accuracy": "max", "val_loss": "min"}
SCHEDULES = ("cosine", "constant")


class BudgetExceededError(keras_tuner.errors.FailedTrialError):
    """A trial over its parameter or step-time budget (KerasTuner marks it FAILED)."""

    def __init__(self, reason: str, measurements: dict[str, float]):
        super().__init__(reason)
        self.reason = reason
        self.measurements = dict(measurements)


class StructconvHyperModel(keras_tuner.HyperModel):
    """Searches the operators of a backbone (and the learning rate, weight decay, batch size).

    Args:
        backbone: a name accepted by `keras_structconv.tuning.get_backbone` ("ResNet20",
            "CifarResNet50", "AOGNetCIFAR", "keras.applications.MobileNetV2", ...).
        operators: which operators to search, among "psconv", "treeconv", "tam" and "aog"
            (AOGNetCIFAR only), as a list or a comma-separated string.
        per_stage: one choice per stage (conditional hyper-parameters, so a stage can keep the
            vanilla conv) or one for the whole network.
        input_shape: the images' shape.
        classes: number of classes.
        learning_rate: a float (fixed) or `(low, high)` searched on a log scale.
        weight_decay: a float (fixed; 0 for none) or `(low, high)` searched on a log scale.
        batch_size: an int (fixed) or a sequence of sizes to choose from.
        momentum: SGD momentum.
        schedule: "cosine" (decay to 0 over the run's steps) or "constant".
        augment: random pad-4 crop and flip of the training images.
        objective: "val_accuracy" or "val_loss".
        max_params: budget of trainable weights, or None.
        max_step_time_ratio: budget of train-step time over the vanilla backbone's, or None.
        time_vanilla: time the vanilla backbone for every trial (always done with
            `max_step_time_ratio`).
        timing_warmup_steps: train steps skipped before timing.
        timing_steps: train steps timed (their median is the step time).
        seed: seed of the data order and augmentation (None: new each trial).
        name: optional name of the hypermodel.

    Example:

    ```python
    hypermodel = StructconvHyperModel("ResNet20", operators="psconv,treeconv,tam")
    tuner = keras_structconv.tuning.make_tuner(hypermodel, "random", max_trials=20,
                                               directory="search")
    (x, y), _ = keras_structconv.datasets.load_embedded_cifar10()
    tuner.search(x[:1500], y[:1500], validation_data=(x[1500:], y[1500:]), epochs=3)
    ```
    """

    def __init__(
        self,
        backbone: str = "ResNet20",
        operators: str | tuple[str, ...] = ("psconv", "treeconv", "tam"),
        *,
        per_stage: bool = True,
        input_shape: tuple[int, int, int] = (32, 32, 3),
        classes: int = 10,
        learning_rate: float | tuple[float, float] = 0.1,
        weight_decay: float | tuple[float, float] = 5e-4,
        batch_size: int | tuple[int, ...] = 128,
        momentum: float = 0.9,
        schedule: str = "cosine",
        augment: bool = True,
        objective: str = "val_accuracy",
        max_params: int | None = None,
        max_step_time_ratio: float | None = None,
        time_vanilla: bool = True,
        timing_warmup_steps: int = 2,
        timing_steps: int = 10,
        seed: int | None = None,
        name: str | None = None,
    ):
        super().__init__(name=name)
        self.backbone = get_backbone(backbone)
        self.operators = space.parse_operators(operators)
        unsupported = [op for op in self.operators if op not in self.backbone.supports]
        if unsupported:
            raise ValueError(
                f"Backbone {self.backbone.name!r} takes the operators "
                f"{', '.join(self.backbone.supports)}. Received: operators={list(self.operators)}"
            )
        self.per_stage = bool(per_stage)
        self.input_shape = tuple(input_shape)
        self.classes = _positive_int(classes, "classes")
        self.learning_rate = _value_or_range(learning_rate, "learning_rate")
        self.weight_decay = _value_or_range(weight_decay, "weight_decay", allow_zero=True)
        self.batch_size = _batch_sizes(batch_size)
        self.momentum = float(momentum)
        if schedule not in SCHEDULES:
            raise ValueError(f"`schedule` must be one of {SCHEDULES}. Received: {schedule=}")
        self.schedule = schedule
        self.augment = bool(augment)
        if objective not in OBJECTIVES:
            raise ValueError(
                f"`objective` must be one of {', '.join(OBJECTIVES)}. Received: {objective=}"
            )
        self.objective = keras_tuner.Objective(objective, OBJECTIVES[objective])
        self.max_params = None if max_params is None else _positive_int(max_params, "max_params")
        if max_step_time_ratio is not None and not max_step_time_ratio > 0:
            raise ValueError(
                f"`max_step_time_ratio` must be > 0 or None. Received: {max_step_time_ratio=}"
            )
        self.max_step_time_ratio = max_step_time_ratio
        self.time_vanilla = bool(time_vanilla) or max_step_time_ratio is not None
        self.timing_warmup_steps = _positive_int(timing_warmup_steps, "timing_warmup_steps", 0)
        self.timing_steps = _positive_int(timing_steps, "timing_steps")
        self.seed = seed
        self.last_measurements: dict[str, float] = {}
        self._layout = None
        self._vanilla_models: dict[int, keras.Model] = {}

    # ---------------------------------------------------------------------- search space
    @property
    def layout(self):
        """Where the backbone's operators sit (probed once per process)."""
        if self._layout is None:
            self._layout = self.backbone.layout(self.input_shape, self.classes)
        return self._layout

    def declare_hyperparameters(self, hp: keras_tuner.HyperParameters) -> None:
        """Declares every hyper-parameter (all conditional branches) without building."""
        self.plan(hp)

    def plan(self, hp: keras_tuner.HyperParameters) -> space.OperatorPlan:
        """Declares the hyper-parameters in `hp`; the operators its values choose (defaults for
        the active ones `hp.values` lacks)."""
        hp.ensure_active_values()
        plan = space.declare_operators(hp, self.layout, self.operators, self.per_stage)
        if isinstance(self.learning_rate, tuple):
            low, high = self.learning_rate
            hp.Float("learning_rate", low, high, sampling="log", default=_log_middle(low, high))
        if isinstance(self.weight_decay, tuple):
            low, high = self.weight_decay
            hp.Float("weight_decay", low, high, sampling="log", default=_log_middle(low, high))
        if len(self.batch_size) > 1:
            hp.Choice("batch_size", list(self.batch_size))
        return plan

    def training_values(self, hp: keras_tuner.HyperParameters) -> dict[str, Any]:
        """Learning rate, weight decay and batch size of `hp` (fixed ones included)."""
        def value(name, setting):
            return hp.get(name) if name in hp.values else setting

        batch = self.batch_size[0] if len(self.batch_size) == 1 else hp.get("batch_size")
        return {
            "learning_rate": float(value("learning_rate", self.learning_rate)),
            "weight_decay": float(value("weight_decay", self.weight_decay)),
            "batch_size": int(batch),
        }

    # -------------------------------------------------------------------------- building
    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        """The backbone with the operators `hp` chooses, compiled (constant learning rate)."""
        model = self._build_model(self.plan(hp))
        self._compile(model, hp, steps=None)
        return model

    def build_vanilla(self) -> keras.Model:
        """The backbone without operators (AOGNetCIFAR: its preset)."""
        return self.backbone.build(self.input_shape, self.classes)

    def _build_model(self, plan: space.OperatorPlan) -> keras.Model:
        if self.backbone.kind == "aog":
            return self.backbone.build(self.input_shape, self.classes, aog=plan.aog_config())
        return self.backbone.build(
            self.input_shape,
            self.classes,
            conv=plan.conv_factory(),
            attention=plan.attention_factory(),
            select=plan.select() if self.backbone.kind == "application" else None,
        )

    def _compile(self, model, hp, steps):
        values = self.training_values(hp)
        learning_rate = values["learning_rate"]
        if steps is not None and self.schedule == "cosine":
            learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, max(steps, 1))
        # The optimizer's variables belong to the model's tf.distribute strategy.
        with model.distribute_strategy.scope():
            optimizer = keras.optimizers.SGD(
                learning_rate,
                momentum=self.momentum,
                weight_decay=values["weight_decay"] or None,
            )
            model.compile(
                optimizer=optimizer,
                loss=keras.losses.SparseCategoricalCrossentropy(),
                metrics=["accuracy"],
            )

    # -------------------------------------------------------------------------- training
    def fit(
        self,
        hp: keras_tuner.HyperParameters,
        model: keras.Model,
        x: np.ndarray | None = None,
        y: np.ndarray | None = None,
        validation_data: tuple[np.ndarray, np.ndarray] | None = None,
        epochs: int = 1,
        initial_epoch: int = 0,
        callbacks: list | None = None,
        verbose: Any = "auto",
        **kwargs: Any,
    ) -> dict[str, float]:
        """Trains `model` on uint8 images `x` / labels `y`; returns the trial's metrics.

        Returns:
            The metrics of the best epoch by the objective (`val_accuracy`, `val_loss`,
            `accuracy`, `loss`) with `params`, `step_time_seconds`, `vanilla_step_time_seconds`,
            `step_time_ratio`, `train_steps` and `replicas`.

        Raises:
            BudgetExceededError: the model is over `max_params` or `max_step_time_ratio`.
        """
        if kwargs:
            raise ValueError(
                f"Unsupported arguments of StructconvHyperModel.fit. Received: {sorted(kwargs)}"
            )
        if x is None or y is None or validation_data is None:
            raise ValueError(
                "`x`, `y` and `validation_data=(x_val, y_val)` are required (uint8 images and "
                "integer labels). Received: "
                f"x={type(x).__name__}, y={type(y).__name__}, "
                f"validation_data={type(validation_data).__name__}"
            )
        batch_size = self.training_values(hp)["batch_size"]
        train = cifar10_dataset(
            x, y, batch_size=batch_size, augment=self.augment, shuffle=True, seed=self.seed
        )
        validation = cifar10_dataset(*validation_data, batch_size=batch_size)
        strategy = model.distribute_strategy
        measurements = self.last_measurements = {
            "params": float(trainable_parameters(model)),
            "replicas": float(strategy.num_replicas_in_sync),
        }
        if self.max_params is not None and measurements["params"] > self.max_params:
            raise BudgetExceededError(
                f"over budget: {int(measurements['params']):,} trainable parameters > "
                f"max_params={self.max_params:,}",
                measurements,
            )
        if self.time_vanilla:
            measurements["vanilla_step_time_seconds"] = self._vanilla_step_seconds(
                strategy, train
            )
        steps = math.ceil(len(x) / batch_size) * max(epochs - initial_epoch, 1)
        self._compile(model, hp, steps=steps)
        timer = StepTimer(self.timing_warmup_steps, self.timing_steps, self._check_step_budget)
        history = model.fit(
            train,
            validation_data=validation,
            epochs=epochs,
            initial_epoch=initial_epoch,
            callbacks=[*(callbacks or []), timer],
            verbose=verbose,
            shuffle=False,  # the pipeline shuffles
        )
        measurements["train_steps"] = float(keras.ops.convert_to_numpy(model.optimizer.iterations))
        if not timer.complete and not model.stop_training:
            # Too few steps to time: time more after training (the best epoch is saved already).
            remaining = self.timing_warmup_steps + self.timing_steps - timer.steps_seen
            model.fit(
                train.repeat(), epochs=1, steps_per_epoch=remaining, callbacks=[timer], verbose=0,
                shuffle=False,
            )
        self._record_step_time(timer)
        if getattr(timer, "over_budget", None):
            raise BudgetExceededError(timer.over_budget, measurements)
        return {**self._best_epoch(history.history), **measurements}

    def _vanilla_step_seconds(self, strategy, dataset) -> float:
        key = id(strategy)
        if key not in self._vanilla_models:
            with strategy.scope():
                vanilla = self.build_vanilla()
                vanilla.compile(
                    optimizer=keras.optimizers.SGD(0.01, momentum=self.momentum, weight_decay=1e-4),
                    loss=keras.losses.SparseCategoricalCrossentropy(),
                    metrics=["accuracy"],
                )
            self._vanilla_models[key] = vanilla
        return measure_step_seconds(
            self._vanilla_models[key], dataset, self.timing_warmup_steps, self.timing_steps
        )

    def _check_step_budget(self, timer: StepTimer) -> None:
        self._record_step_time(timer)
        ratio = self.last_measurements.get("step_time_ratio")
        if self.max_step_time_ratio is not None and ratio is not None and (
            ratio > self.max_step_time_ratio
        ):
            seconds = self.last_measurements["step_time_seconds"]
            vanilla = self.last_measurements["vanilla_step_time_seconds"]
            timer.over_budget = (
                f"over budget: train step {seconds * 1e3:.1f} ms = {ratio:.2f} x the vanilla "
                f"{self.backbone.name}'s {vanilla * 1e3:.1f} ms > "
                f"max_step_time_ratio={self.max_step_time_ratio:g}"
            )
            timer.model.stop_training = True

    def _record_step_time(self, timer: StepTimer) -> None:
        if timer.seconds is None:
            return
        self.last_measurements["step_time_seconds"] = timer.seconds
        vanilla = self.last_measurements.get("vanilla_step_time_seconds")
        if vanilla:
            self.last_measurements["step_time_ratio"] = timer.seconds / vanilla

    def _best_epoch(self, history: dict[str, list[float]]) -> dict[str, float]:
        name, direction = self.objective.name, self.objective.direction
        values = history[name]
        best = int(np.nanargmax(values) if direction == "max" else np.nanargmin(values))
        return {key: float(series[best]) for key, series in history.items()}


# ---------------------------------------------------------------------- argument checks
def _positive_int(value, name, low=1):
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"`{name}` must be an integer >= {low}. Received: {name}={value!r}")
    return int(value)


def _value_or_range(value, name, allow_zero=False):
    if isinstance(value, tuple | list):
        if len(value) != 2 or not 0 < value[0] < value[1]:
            raise ValueError(
                f"`{name}` must be a number or a range (low, high) with 0 < low < high. "
                f"Received: {name}={value!r}"
            )
        return (float(value[0]), float(value[1]))
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or (
        value == 0 and not allow_zero
    ):
        raise ValueError(f"`{name}` must be a positive number. Received: {name}={value!r}")
    return float(value)


def _batch_sizes(value):
    sizes = (value,) if isinstance(value, int | np.integer) else tuple(value)
    if not sizes or any(
        isinstance(s, bool) or not isinstance(s, int | np.integer) or s < 1 for s in sizes
    ):
        raise ValueError(
            "`batch_size` must be a positive integer or a sequence of them. "
            f"Received: batch_size={value!r}"
        )
    return tuple(int(s) for s in sizes)


def _log_middle(low, high):
    return float(math.sqrt(low * high))
