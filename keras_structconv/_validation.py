"""Argument validation shared by the layers, models and data code.

Every check raises `ValueError` naming the argument and ending with `Received: name=value`, the
Keras core convention, and returns the normalised value so constructors read
`self.filters = positive_int(filters, "filters")`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = [
    "channels_last",
    "int_in_range",
    "int_pair",
    "is_int",
    "known_channels",
    "one_of",
    "positive_float",
    "positive_int",
    "square_int",
]


def is_int(value: Any) -> bool:
    """True for Python and NumPy integers, False for bools (which are ints in Python)."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def positive_int(value: Any, name: str) -> int:
    """`value` as an `int` >= 1."""
    if not is_int(value) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return int(value)


def int_in_range(value: Any, name: str, low: int, high: int | None = None) -> int:
    """`value` as an `int` with `low <= value` (and `value <= high` when `high` is given)."""
    if not is_int(value) or value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ValueError(f"`{name}` must be an integer {bound}. Received: {name}={value!r}")
    return int(value)


def int_pair(value: Any, name: str, *, odd: bool = False) -> tuple[int, int]:
    """An int or a pair of ints as a pair of positive ints (odd ones when `odd`)."""
    pair = (value, value) if is_int(value) else tuple(value) if _iterable(value) else (value,)
    if len(pair) != 2:
        raise ValueError(f"`{name}` must be an int or a pair of ints. Received: {name}={value!r}")
    if not all(is_int(v) and v >= 1 for v in pair):
        raise ValueError(f"`{name}` must hold positive integers. Received: {name}={value!r}")
    if odd and any(v % 2 == 0 for v in pair):
        raise ValueError(f"`{name}` must be odd. Received: {name}={value!r}")
    return int(pair[0]), int(pair[1])


def square_int(value: Any, name: str) -> Any:
    """An int, or a pair of equal ints, as the int (for layers that are square by definition).

    The value is returned unchecked otherwise; follow with `positive_int` or `int_in_range`."""
    if isinstance(value, tuple | list):
        if len(value) != 2 or value[0] != value[1]:
            raise ValueError(
                f"`{name}` must be an integer or a pair of equal integers. "
                f"Received: {name}={value!r}"
            )
        return value[0]
    return value


def positive_float(value: Any, name: str) -> float:
    """`value` as a finite `float` > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ValueError(f"`{name}` must be a positive number. Received: {name}={value!r}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"`{name}` must be a positive number. Received: {name}={value!r}")
    return float(value)


def one_of(value: Any, name: str, choices: Iterable[Any], *, lower: bool = False) -> Any:
    """`value` if it is one of `choices` (strings compared lower-cased when `lower`)."""
    choices = tuple(choices)
    candidate = value.lower() if lower and isinstance(value, str) else value
    if candidate not in choices:
        allowed = ", ".join(repr(choice) for choice in choices)
        raise ValueError(f"`{name}` must be one of {allowed}. Received: {name}={value!r}")
    return candidate


def channels_last(data_format: str | None, layer_name: str) -> str:
    """The data format (default: Keras' setting), which must be "channels_last"."""
    import keras

    data_format = data_format or keras.config.image_data_format()
    if data_format != "channels_last":
        raise ValueError(
            f"{layer_name} supports only data_format='channels_last' (NHWC). "
            f"Received: data_format={data_format!r}"
        )
    return data_format


def known_channels(input_shape: Any, layer_name: str, axis: int = -1) -> int:
    """The channel count of a 4-D `input_shape` (at `axis`), which must be known at build."""
    shape = tuple(input_shape)
    if len(shape) != 4:
        raise ValueError(f"{layer_name} expects a 4-D input. Received: input_shape={shape}")
    if shape[axis] is None:
        raise ValueError(
            f"The channel dimension of the input of {layer_name} must be known. "
            f"Received: input_shape={shape}"
        )
    return shape[axis]


def _iterable(value: Any) -> bool:
    return isinstance(value, Iterable) and not isinstance(value, str | bytes)
