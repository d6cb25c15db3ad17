"""ONNX export: `to_onnx` converts a model, traced on the portable path, with `tf2onnx`;
`onnx_predict` runs the file in `onnxruntime`.

Needs the `export` extra (`pip install 'keras_structconv[export]'`: tf2onnx, onnx and
onnxruntime). tf2onnx leaves an op it cannot convert in the graph and writes a file no runtime
loads; `to_onnx` raises `UnsupportedOpsError` instead, naming the layer, and writes nothing.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_structconv import _validation
from keras_structconv.export._files import PathLike, write_atomically
from keras_structconv.export._running import predict_in_batches
from keras_structconv.export._tracing import ShapeLike, portable_trace
from keras_structconv.export.errors import UnsupportedOpsError, import_optional, nodes_by_op
from keras_structconv.layers._portable import portable_ops

__all__ = ["onnx_predict", "to_onnx"]

# ONNX domains whose ops the opset versions; others are checked by name only.
DEFAULT_DOMAINS = ("", "ai.onnx")
# onnxruntime's contrib ops, which tf2onnx emits and `onnx.defs` does not list.
ONNXRUNTIME_DOMAIN = "com.microsoft"


def to_onnx(
    model: keras.Model,
    path: PathLike,
    *,
    opset: int = 17,
    input_shape: ShapeLike | Sequence[ShapeLike] | None = None,
    batch_size: int | None = 1,
    call_kwargs: dict[str, Any] | None = None,
) -> Any:
    """Converts `model` to ONNX with `tf2onnx`, traced on the portable path.

    Needs the `export` extra (`pip install 'keras_structconv[export]'`: tf2onnx and onnxruntime).

    Args:
        model: a built Keras model.
        path: where to write the `.onnx` file (atomically).
        opset: the ONNX opset (default 17).
        input_shape: the shape of one example, without the batch axis; default: the model's.
        batch_size: the batch size of the graph (default 1); None for a dynamic batch.
        call_kwargs: further keyword arguments of the model's call.

    Returns:
        The `onnx.ModelProto` written to `path`.

    Raises:
        ImportError: tf2onnx is not installed.
        UnsupportedOpsError: the graph has ops that ONNX at `opset` lacks (tf2onnx leaves
            them in and writes a graph no runtime loads); nothing is written.

    Example:

    ```python
    to_onnx(ksc.models.TAMCifarResNet18(), "tam_resnet18.onnx")
    logits = onnx_predict("tam_resnet18.onnx", images)
    ```
    """
    tf2onnx = import_optional("tf2onnx", "to_onnx")
    onnx = import_optional("onnx", "to_onnx")
    _validation.int_in_range(opset, "opset", 7)
    serve, concrete = portable_trace(
        model, input_shape=input_shape, batch_size=batch_size, call_kwargs=call_kwargs
    )
    with portable_ops(), _quiet_tf2onnx():
        proto, _ = tf2onnx.convert.from_function(
            serve, input_signature=serve.input_signature, opset=opset
        )
    _captured_constants_to_initializers(onnx, proto, concrete)
    unsupported = nodes_by_op(
        (node.op_type, node.name)
        for node in _graph_nodes(proto.graph)
        if not _is_defined(onnx, node, opset)
    )
    if unsupported:
        raise UnsupportedOpsError(f"ONNX opset {opset}", list(unsupported), unsupported)
    onnx.checker.check_model(proto)
    write_atomically(Path(path), proto.SerializeToString())
    return proto


@contextlib.contextmanager
def _quiet_tf2onnx() -> Iterator[None]:
    """tf2onnx logs every op it cannot convert at ERROR level and carries on; our own check
    reports them (with the layer names) instead, so its log is lowered while converting."""
    logger = logging.getLogger("tf2onnx")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _captured_constants_to_initializers(onnx: Any, proto: Any, concrete: Any) -> None:
    """Makes the tensors the traced function captured (constants that are not variables, e.g.
    the mean and variance of `keras.layers.Normalization`) initializers of the ONNX graph.

    tf2onnx freezes variables but leaves other captures as extra graph inputs (unused when it
    folded their values into constants), which a user would then have to feed."""
    arguments = len(concrete.inputs) - len(concrete.captured_inputs)
    captured = {
        placeholder.name: value
        for placeholder, value in zip(
            concrete.inputs[arguments:], concrete.captured_inputs, strict=True
        )
        if value.dtype != tf.resource
    }
    used = {name for node in proto.graph.node for name in node.input}
    for graph_input in list(proto.graph.input):
        if graph_input.name not in captured:
            continue
        proto.graph.input.remove(graph_input)
        if graph_input.name in used:  # often folded into constants already, then unused
            value = np.asarray(captured[graph_input.name].numpy())
            proto.graph.initializer.append(onnx.numpy_helper.from_array(value, graph_input.name))


def _graph_nodes(graph: Any) -> Iterator[Any]:
    """The nodes of an ONNX graph and, depth first, of the subgraphs in their attributes."""
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            for subgraph in [attribute.g, *attribute.graphs]:
                yield from _graph_nodes(subgraph)


def _is_defined(onnx: Any, node: Any, opset: int) -> bool:
    """Whether ONNX at `opset` (or the node's own domain, or onnxruntime) defines its op."""
    domain = node.domain or ""
    if domain in DEFAULT_DOMAINS:
        return onnx.defs.has(node.op_type, max_inclusive_version=opset, domain=domain)
    return onnx.defs.has(node.op_type, domain=domain) or domain == ONNXRUNTIME_DOMAIN


def onnx_predict(
    path: PathLike, x: Any
) -> np.ndarray | dict[str, np.ndarray] | list[np.ndarray]:
    """Runs an ONNX model in `onnxruntime` (CPU) on `x`, by chunks of its fixed batch size.

    Args:
        path: the `.onnx` file.
        x: an array (one input) or a list of arrays, one per input, with a batch axis.

    Returns:
        The output array for a single-output model; else the outputs as the model returns them
        (a dict for dict outputs, a list in order for several outputs).

    Example:

    ```python
    logits = onnx_predict("tam_resnet18.onnx", images)
    ```
    """
    onnxruntime = import_optional("onnxruntime", "onnx_predict")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    input_names = [tensor.name for tensor in session.get_inputs()]
    output_names = [tensor.name for tensor in session.get_outputs()]
    batch = session.get_inputs()[0].shape[0]
    batch = batch if isinstance(batch, int) else 0  # a name or None: dynamic

    # tf2onnx names the outputs of a function returning a dict after its keys, the others
    # after the graph's Identity ops: those become output_0, output_1, ... (a list).
    positional = all(re.fullmatch(r"Identity(_\d+)?:0", name) for name in output_names)
    keys = [f"output_{index}" for index in range(len(output_names))] if positional else (
        output_names
    )

    def run(feed):
        return dict(zip(keys, session.run(output_names, feed), strict=True))

    return predict_in_batches(run, x, input_names, batch)
