"""XLA helpers shared by the layers whose kernels are compiled on their own.

`jit(fn, *static)` compiles `fn` with its leading arguments bound (shapes, levels, factors:
values that select the computation, not tensors). Each kernel is its own XLA cluster because
XLA:CPU fuses greedily: one big cluster re-reads inputs many times over. `barrier` keeps XLA from
fusing across a point, and `in_xla_context` tells a layer that its caller is compiled already
(a model with `jit_compile=True`), where nested compiled functions are not allowed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import tensorflow as tf

from keras_structconv._internals import in_xla_context, optimization_barrier

__all__ = ["barrier", "in_xla_context", "jit"]


def jit(fn: Callable[..., Any], *static: Any) -> Callable[..., Any]:
    """`fn` with `static` bound first, compiled with XLA (no autograph).

    `functools.partial`, not a bound method: tf.function pools retracing statistics per code
    object, so many kernels made from one method would warn about retracing."""
    return tf.function(functools.partial(fn, *static), jit_compile=True, autograph=False)


def barrier(tensor: tf.Tensor) -> tf.Tensor:
    """`tensor` behind an XLA optimisation barrier."""
    return optimization_barrier(tensor)[0]
