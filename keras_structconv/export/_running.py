"""Running a converted model in its runtime (TFLite or onnxruntime) the same way for both.

The caller gives one function that runs the runtime once on a feed `{input name: array}` and
returns `{output name: array}`; `predict_in_batches` checks the inputs, cuts them into the
batches a fixed-batch model takes, and returns the outputs in the model's structure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Feed = dict[str, np.ndarray]
Outputs = dict[str, np.ndarray]


def predict_in_batches(
    run: Callable[[Feed], Outputs], x: Any, input_names: Sequence[str], batch: int
) -> np.ndarray | dict[str, np.ndarray] | list[np.ndarray]:
    """`run` on `x` (an array, or one array per input name), by chunks of `batch` examples.

    Args:
        run: runs the converted model once: `{input name: array}` -> `{output name: array}`,
            where outputs `output_0, output_1, ...` stand for a list in that order.
        x: an array (one input) or a list of arrays, one per input, with a batch axis.
        input_names: the model's input names, in the order of `x`.
        batch: the model's fixed batch size; 0 or less for a dynamic batch.

    Returns:
        The output array for a single-output model; else the list of positional outputs in
        order, or the dict of named ones.
    """
    inputs = _input_arrays(x, len(input_names))

    def run_arrays(arrays: list[np.ndarray]) -> Outputs:
        return run(dict(zip(input_names, arrays, strict=True)))

    return _ordered_outputs(_run_in_batches(run_arrays, inputs, batch))


def _input_arrays(x: Any, count: int) -> list[np.ndarray]:
    """`x` as a list of `count` arrays; float64 ones become float32 (the models' dtype)."""
    arrays = [x] if count == 1 and not isinstance(x, list | tuple) else list(x)
    if len(arrays) != count:
        raise ValueError(
            f"The model has {count} input(s); pass one array per input. "
            f"Received: x with {len(arrays)} array(s)"
        )
    return [np.asarray(array, np.float32) if np.asarray(array).dtype == np.float64
            else np.asarray(array) for array in arrays]


def _run_in_batches(
    run: Callable[[list[np.ndarray]], Outputs], inputs: list[np.ndarray], batch: int
) -> Outputs:
    """`run` on the whole input when the model's batch is dynamic (<= 0) or equals it; else on
    consecutive chunks of `batch` examples (the input's size must be a multiple of it)."""
    size = len(inputs[0])
    if batch <= 0 or batch == size:
        return run(inputs)
    if size % batch:
        raise ValueError(
            f"The exported model has a fixed batch size of {batch}; pass a multiple of it. "
            f"Received: x with batch size {size}"
        )
    chunks = [run([array[start : start + batch] for array in inputs])
              for start in range(0, size, batch)]
    return {name: np.concatenate([chunk[name] for chunk in chunks]) for name in chunks[0]}


def _ordered_outputs(outputs: Outputs) -> Any:
    """One array, the list `output_0..output_n` in order, or the dict of named outputs."""
    if len(outputs) == 1:
        return next(iter(outputs.values()))
    positional = [f"output_{index}" for index in range(len(outputs))]
    if sorted(outputs) == sorted(positional):
        return [outputs[name] for name in positional]
    return outputs
