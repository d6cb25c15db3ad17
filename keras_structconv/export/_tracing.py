"""Tracing a model for export: input signatures, the serving function, the portable trace.

Every exporter traces the model's inference call with a fixed input signature inside
`keras_structconv.layers.portable_ops()`, where each layer builds its formulation from ops that
TFLite's builtin set and ONNX both have.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

from keras_structconv import _validation
from keras_structconv.layers._portable import portable_ops

ShapeLike = Sequence[int | None]


def serving_function(
    model: keras.Model,
    *,
    input_shape: ShapeLike | Sequence[ShapeLike] | None = None,
    batch_size: int | None = 1,
    call_kwargs: dict[str, Any] | None = None,
) -> tf.types.experimental.GenericFunction:
    """The model's inference call as a `tf.function` with a fixed input signature.

    Call `.get_concrete_function()` on it inside `portable_ops()` to trace the portable path
    (the exporters of this module do). Positional inputs in the order of `model.inputs`; the
    model receives them in the structure it was built with.

    Args:
        model: a built Keras model.
        input_shape: the shape of one example, without the batch axis (a list of shapes for
            several inputs); default: the model's input shapes, which must then be fully known.
        batch_size: the batch size of the signature; None for a dynamic batch.
        call_kwargs: further keyword arguments of the model's call (e.g.
            `{"propagation": "pred"}` for `QGN`).

    Returns:
        A `tf.function` taking one tensor per model input, `training=False`.

    Example:

    ```python
    serve = serving_function(model, input_shape=(32, 32, 3))
    with portable_ops():
        concrete = serve.get_concrete_function()
    ```
    """
    specs = input_specs(model, input_shape, batch_size)
    structure = _call_structure(model, len(specs))

    call_kwargs = dict(call_kwargs or {})

    def serve(*inputs):
        inputs = tf.nest.pack_sequence_as(structure, list(inputs))
        return model(inputs, training=False, **call_kwargs)

    return tf.function(serve, input_signature=specs)


def portable_trace(
    model: keras.Model,
    *,
    input_shape: ShapeLike | Sequence[ShapeLike] | None,
    batch_size: int | None,
    call_kwargs: dict[str, Any] | None,
) -> tuple[tf.types.experimental.GenericFunction, Any]:
    """`serving_function(model, ...)` and its concrete function, traced in `portable_ops()`."""
    serve = serving_function(
        model, input_shape=input_shape, batch_size=batch_size, call_kwargs=call_kwargs
    )
    with portable_ops():
        concrete = serve.get_concrete_function()
    return serve, concrete


def input_specs(
    model: keras.Model, input_shape: ShapeLike | Sequence[ShapeLike] | None, batch_size: int | None
) -> list[tf.TensorSpec]:
    """One `tf.TensorSpec` per model input: `(batch_size, *shape)`, shapes from `input_shape`
    (without the batch axis; a list of them for several inputs) or the model's inputs."""
    if batch_size is not None:
        _validation.positive_int(batch_size, "batch_size")
    model_inputs = _model_inputs(model)
    if input_shape is None:
        if model_inputs is None:
            raise ValueError(
                "The model has no symbolic inputs (a subclassed model called on no data); pass "
                f"the shape of one example. Received: input_shape={input_shape}"
            )
        shapes = [tuple(tensor.shape[1:]) for tensor in model_inputs]
    else:
        shapes = _shape_list(input_shape, 1 if model_inputs is None else len(model_inputs))
    if model_inputs is None:
        dtypes = ["float32"] * len(shapes)
        names = [f"input_{index}" for index in range(len(shapes))]
    else:
        dtypes = [tensor.dtype for tensor in model_inputs]
        names = [tensor.name for tensor in model_inputs]
    for shape in shapes:
        if any(size is None for size in shape):
            raise ValueError(
                "Exports have a fixed input shape, and the model's input leaves some sizes "
                f"unknown; pass `input_shape` (without the batch axis). Received: "
                f"input_shape={input_shape} (model input shape {shape})"
            )
    return [
        tf.TensorSpec((batch_size, *shape), dtype, name=_sanitized(name or f"input_{index}"))
        for index, (shape, dtype, name) in enumerate(zip(shapes, dtypes, names, strict=True))
    ]


def _model_inputs(model: keras.Model) -> list[Any] | None:
    try:
        inputs = model.inputs
    except AttributeError:
        return None
    return None if not inputs else list(inputs)


def _shape_list(input_shape: Any, count: int) -> list[tuple[int, ...]]:
    """`input_shape` as a list of `count` shapes; one shape is allowed for one input."""
    is_single = all(size is None or _validation.is_int(size) for size in input_shape)
    shapes = [tuple(input_shape)] if is_single else [tuple(shape) for shape in input_shape]
    if len(shapes) != count or not all(
        size is None or (_validation.is_int(size) and size > 0)
        for shape in shapes
        for size in shape
    ):
        raise ValueError(
            f"`input_shape` must be the shape of one example (no batch axis) for each of the "
            f"model's {count} input(s). Received: input_shape={input_shape}"
        )
    return shapes


def _sanitized(name: str) -> str:
    """A tensor name TFLite signatures and ONNX accept (letters, digits, underscores)."""
    cleaned = re.sub(r"\W", "_", name)
    return cleaned if cleaned[:1].isalpha() else f"input_{cleaned}"


def _call_structure(model: keras.Model, count: int) -> Any:
    """The nesting in which `model` takes its inputs: a dict, a list, or one tensor."""
    from keras_structconv._internals import model_input_struct

    try:
        structure = model_input_struct(model)
    except AttributeError:
        structure = None
    if structure is None:
        return list(range(count)) if count > 1 else 0
    return tf.nest.map_structure(lambda _: 0, structure)
