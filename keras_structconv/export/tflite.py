"""TFLite export: `to_tflite` converts a model, traced on the portable path, to a flatbuffer;
`tflite_predict` runs one in LiteRT (`ai_edge_litert`) or `tf.lite.Interpreter`.

By default the flatbuffer holds TFLite builtin ops only, which every TFLite and LiteRT runtime
has; an op outside that set raises `UnsupportedOpsError` naming the layer that uses it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_structconv import _validation
from keras_structconv.export._files import PathLike, write_atomically
from keras_structconv.export._running import predict_in_batches
from keras_structconv.export._tracing import ShapeLike, portable_trace
from keras_structconv.export.errors import UnsupportedOpsError, nodes_by_op

__all__ = ["tflite_predict", "to_tflite"]

INTERPRETERS = ("auto", "litert", "tensorflow")


def to_tflite(
    model: keras.Model,
    path: PathLike | None = None,
    *,
    input_shape: ShapeLike | Sequence[ShapeLike] | None = None,
    batch_size: int | None = 1,
    builtin_only: bool = True,
    call_kwargs: dict[str, Any] | None = None,
) -> bytes:
    """Converts `model` to a TFLite flatbuffer, traced on the portable path.

    Args:
        model: a built Keras model (functional, sequential, or subclassed with `input_shape`).
        path: where to write the `.tflite` file (atomically: a complete file or none); None
            only returns the bytes.
        input_shape: the shape of one example, without the batch axis (a list of shapes for
            several inputs); default: the model's input shapes.
        batch_size: the batch size of the converted model (default 1); None for a dynamic
            batch (the interpreter then resizes its input).
        builtin_only: True (default) allows only TFLite builtin ops, which every TFLite and
            LiteRT runtime has; False also allows TensorFlow ops through Flex (`SELECT_TF_OPS`),
            which needs the Flex delegate linked into the runtime.
        call_kwargs: further keyword arguments of the model's call.

    Returns:
        The flatbuffer's bytes.

    Raises:
        UnsupportedOpsError: with `builtin_only=True`, the model has ops outside the builtin
            set; the message names the ops and the graph nodes (layers) using them.

    Example:

    ```python
    flatbuffer = to_tflite(ksc.models.PSResNet20(), "ps_resnet20.tflite")
    probabilities = tflite_predict(flatbuffer, images)
    ```
    """
    _, concrete = portable_trace(
        model, input_shape=input_shape, batch_size=batch_size, call_kwargs=call_kwargs
    )
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [concrete], _variables_holder(model)
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if not builtin_only:
        converter.target_spec.supported_ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
    try:
        flatbuffer = converter.convert()
    except Exception as error:  # tf.lite's ConverterError is not public API
        ops = _ops_rejected_by_tflite(str(error))
        if not ops:
            raise
        raise UnsupportedOpsError(
            "TFLite's builtin op set" if builtin_only else "TFLite (builtin and Flex ops)",
            ops,
            nodes_by_op(_graph_nodes(concrete), ops),
            detail=(
                "`builtin_only=False` allows TensorFlow ops through Flex, which only "
                "runtimes built with the Flex delegate can run." if builtin_only else ""
            ),
        ) from error
    if path is not None:
        write_atomically(Path(path), flatbuffer)
    return flatbuffer


def _variables_holder(model: keras.Model) -> tf.Module:
    """A `tf.Module` tracking the TensorFlow variables behind the model's Keras variables.

    The TFLite converter freezes the variables its trackable object tracks; it does not see
    through Keras 3 variables (given the model, it converts garbage weights). Keras' own LiteRT
    export writes a SavedModel first, which takes 2-3 times as long."""
    holder = tf.Module()
    holder.variables_to_freeze = [variable.value for variable in model.variables]
    return holder


def _ops_rejected_by_tflite(message: str) -> list[str]:
    """The TF op types the converter's message says it could not lower."""
    ops = set(re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", message))
    for line in re.findall(r"(?:TF Select|Custom) ops: ([^\n]*)", message):
        ops.update(op.strip() for op in line.split(",") if op.strip())
    ops.update(re.findall(r"'tf\.(\w+)' op is not supported", message))
    return sorted(ops)


def _graph_nodes(concrete: Any) -> list[tuple[str, str]]:
    """`(op type, node name)` of the nodes of the traced graph and of its functions."""
    graph_def = concrete.graph.as_graph_def()
    nodes = list(graph_def.node)
    for function in graph_def.library.function:
        nodes.extend(function.node_def)
    return [(node.op, node.name) for node in nodes]


def tflite_predict(
    tflite: bytes | PathLike, x: Any, *, interpreter: str = "auto"
) -> np.ndarray | dict[str, np.ndarray] | list[np.ndarray]:
    """Runs a TFLite model on `x`, example by example when its batch size is fixed to 1.

    Args:
        tflite: the flatbuffer's bytes (as `to_tflite` returns) or the path of a `.tflite` file.
        x: an array (one input) or a list of arrays (one per model input, in the order of
            `model.inputs`), with a batch axis.
        interpreter: "litert" (`ai_edge_litert`, the maintained runtime), "tensorflow"
            (`tf.lite.Interpreter`, deprecated in TF), or "auto": LiteRT when installed.

    Returns:
        The output array for a single-output model; else the outputs as the model returns them
        (a dict for dict outputs, a list in order for several outputs).

    Example:

    ```python
    probabilities = tflite_predict("resnet20.tflite", images)  # (N, 10)
    ```
    """
    content = bytes(tflite) if isinstance(tflite, bytes | bytearray) else Path(tflite).read_bytes()
    runtime = _tflite_interpreter(content, interpreter)
    runner = runtime.get_signature_runner()
    # The signature lists its inputs by name; the subgraph keeps the function's argument order.
    position = {detail["index"]: order for order, detail in enumerate(runtime.get_input_details())}
    signature_inputs = runner.get_input_details()
    input_names = sorted(
        signature_inputs, key=lambda name: position[signature_inputs[name]["index"]]
    )
    details = signature_inputs[input_names[0]]
    batch = int(details.get("shape_signature", details["shape"])[0])  # -1: dynamic

    def run(feed):
        # Copies: the arrays may view the interpreter's buffers, which the next call reuses.
        return {name: np.array(value, copy=True) for name, value in runner(**feed).items()}

    return predict_in_batches(run, x, input_names, batch)


def _tflite_interpreter(content: bytes, interpreter: str) -> Any:
    """An interpreter with allocated tensors: LiteRT's, or TensorFlow's (see `tflite_predict`)."""
    choice = _validation.one_of(interpreter, "interpreter", INTERPRETERS)
    runtime = None
    if choice in ("auto", "litert"):
        runtime = _litert_interpreter(content, required=choice == "litert")
    if runtime is None:
        runtime = tf.lite.Interpreter(model_content=content)
    runtime.allocate_tensors()
    return runtime


def _litert_interpreter(content: bytes, required: bool) -> Any:
    """LiteRT's interpreter; None when `ai_edge_litert` is missing and not `required`."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        if required:
            raise ImportError(
                "interpreter='litert' needs the `ai-edge-litert` package: "
                "`pip install ai-edge-litert`."
            ) from None
        return None
    return Interpreter(model_content=content)
