"""The one place that touches Keras and TensorFlow internals.

Model surgery needs the functional graph (nodes, the history of a symbolic tensor), the layers'
XLA kernels need an optimisation barrier and to know whether they are traced inside an XLA
cluster, and the conv formulations depend on whether TensorFlow was built to use oneDNN. None of
this is public API; keeping every such access here means a Keras or TensorFlow upgrade breaks
this module only, and `tests/test_internals.py` fails first, naming what moved.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import tensorflow as tf

__all__ = [
    "AddOperation",
    "Functional",
    "functional_like_constructor",
    "inbound_nodes",
    "in_xla_context",
    "keras_history",
    "model_input_struct",
    "node_call_arguments",
    "sequential_graph",
    "model_output_struct",
    "nodes_by_depth",
    "onednn_enabled",
    "optimization_barrier",
    "prebuild_for_multiworker",
]

# ------------------------------------------------------------------------------- Keras graph
from keras.src.models.functional import (  # noqa: E402
    Functional,
    functional_like_constructor,
)
from keras.src.ops.numpy import Add as AddOperation  # noqa: E402


def keras_history(tensor: Any) -> tuple[Any, int, int]:
    """`(operation, node_index, tensor_index)` that produced a symbolic Keras tensor."""
    history = tensor._keras_history
    return history.operation, history.node_index, history.tensor_index


def inbound_nodes(layer: Any) -> list[Any]:
    """The nodes (calls) of `layer` in the functional graphs it was called in."""
    return list(layer._inbound_nodes)


def nodes_by_depth(model: Any) -> dict[int, list[Any]]:
    """A functional model's nodes keyed by depth (0 = the outputs)."""
    return model._nodes_by_depth


def sequential_graph(model: Any) -> Any:
    """The functional graph a built `keras.Sequential` runs (None before it is built)."""
    return getattr(model, "_functional", None)


def node_call_arguments(node: Any, tensor_map: dict[int, Any]) -> tuple[tuple, dict]:
    """A node's call `(args, kwargs)` with each symbolic tensor `t` replaced by
    `tensor_map[id(t)]` (non-tensor arguments kept as they were)."""
    return node.arguments.fill_in(tensor_map)


def model_input_struct(model: Any) -> Any:
    """A functional model's inputs in the structure it was built with (dict, list, tensor)."""
    return model._inputs_struct


def model_output_struct(model: Any) -> Any:
    """A functional model's outputs in the structure it was built with."""
    return model._outputs_struct


# --------------------------------------------------------------------------- TensorFlow / XLA
def optimization_barrier(*tensors: tf.Tensor) -> list[tf.Tensor]:
    """XLA's optimisation barrier: XLA may not fuse computations across it."""
    from tensorflow.compiler.tf2xla.python.xla import optimization_barrier as barrier

    return barrier(*tensors)


def in_xla_context() -> bool:
    """Whether ops created now land in an XLA cluster (e.g. a model compiled with jit_compile)."""
    from tensorflow.python.ops import control_flow_util

    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


@functools.cache
def onednn_enabled() -> bool:
    """Whether TensorFlow's CPU kernels use oneDNN in this process.

    TensorFlow decides once, at import: `TF_ENABLE_ONEDNN_OPTS=1`/`0` forces it; unset, x86 Linux
    builds turn it on only on CPUs with AVX-512 VNNI/BF16 or AMX. Without oneDNN the CPU kernels
    differentiate neither dilated nor grouped `tf.nn.conv2d`, and allocator statistics are off.
    """
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())


def onednn_setting() -> str:
    """`TF_ENABLE_ONEDNN_OPTS` as set in the environment, or "unset"."""
    return os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset")



# ------------------------------------------------------------------------ tf.distribute + fit
def prebuild_for_multiworker(model: Any, data_batch: Any) -> None:
    """Builds `model`'s optimizer and metric variables from a local batch, and stops `fit` from
    doing it again (Keras 3 on TensorFlow cannot fit under `MultiWorkerMirroredStrategy`
    otherwise: keras-team/keras#20585).

    `TensorFlowTrainer._maybe_symbolic_build` takes the first distributed batch and averages it
    with `strategy.reduce("MEAN", (x, y), axis=None)`; `MultiWorkerMirroredStrategy` rejects a
    tuple there ("Attempt to convert a value (PerReplica...) to a Tensor"). Only the batch's
    shapes and dtypes matter to the symbolic build, so a batch of the undistributed dataset
    serves as well. Call inside nothing: the build enters `model.distribute_strategy.scope()`.
    """
    with model.distribute_strategy.scope():
        model._symbolic_build(data_batch=data_batch)

    def already_built(iterator=None, data_batch=None):
        return None

    model._maybe_symbolic_build = already_built
