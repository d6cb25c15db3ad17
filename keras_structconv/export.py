"""Deploying models: TFLite, ONNX and SavedModel exports, and loading `.keras` files.

Some layers of this package train fastest with ops that deployment runtimes lack (XLA-compiled
functions with custom gradients, `tf.roll`, bitcasts, complex numbers). Every export here traces
the model inside `keras_structconv.layers.portable_ops()`, where each layer builds an
inference formulation made only of ops that TFLite's builtin op set and ONNX (opset 17) have;
its outputs equal the training formulation's. The exported graph has a fixed input shape
(`batch_size` x the model's input shape) unless stated otherwise.

- `to_tflite(model, path)` -> the `.tflite` flatbuffer (builtin ops only by default);
  `tflite_predict(tflite, x)` runs it (LiteRT's `ai_edge_litert` when installed, else
  `tf.lite.Interpreter`).
- `to_onnx(model, path)` -> an ONNX model written by `tf2onnx` (the `export` extra:
  `pip install keras_structconv[export]`); `onnx_predict(path, x)` runs it in `onnxruntime`.
- `export_saved_model(model, path)` -> a SavedModel for TF-Serving and `keras.layers.TFSMLayer`,
  traced on the portable path too (no XLA-compiled functions inside).
- `load_model(path)` -> `keras.saving.load_model` with this package's classes registered, and an
  error that says what to do when a class named in the file is unknown.

Example:

```python
import keras_structconv as ksc
from keras_structconv import export

model = ksc.models.TreeResNet20()
export.to_tflite(model, "tree_resnet20.tflite")              # builtin ops, batch 1
probabilities = export.tflite_predict("tree_resnet20.tflite", images)
export.to_onnx(model, "tree_resnet20.onnx")                  # opset 17
probabilities = export.onnx_predict("tree_resnet20.onnx", images)
export.export_saved_model(model, "tree_resnet20_savedmodel")
serving = keras.layers.TFSMLayer("tree_resnet20_savedmodel", call_endpoint="serve",
                                 dtype="float32")
model.save("tree_resnet20.keras")
reloaded = ksc.load_model("tree_resnet20.keras")
```
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_structconv import _validation
from keras_structconv.layers._portable import portable_ops

__all__ = [
    "UnsupportedOpsError",
    "export_saved_model",
    "load_model",
    "missing_package_hint",
    "onnx_predict",
    "registered_names_in_file",
    "serving_function",
    "tflite_predict",
    "to_onnx",
    "to_tflite",
]

PathLike = str | os.PathLike
ShapeLike = Sequence[int | None]

EXPORT_EXTRA_HINT = "pip install 'keras_structconv[export]'"
REGISTERED_PACKAGE = "keras_structconv"


class UnsupportedOpsError(ValueError):
    """A model traced for a runtime contains ops that the runtime does not have.

    Attributes:
        runtime: "TFLite builtin ops" or "ONNX opset N".
        ops: the unsupported op types, sorted.
        locations: op type -> the graph nodes (name scopes name the layers) that use it.
    """

    def __init__(self, runtime: str, ops: Sequence[str], locations: dict[str, list[str]],
                 detail: str = ""):
        self.runtime = runtime
        self.ops = tuple(sorted(ops))
        self.locations = locations
        lines = [f"The model uses ops that {runtime} does not support: {', '.join(self.ops)}."]
        for op in self.ops:
            nodes = locations.get(op, [])
            if nodes:
                shown = ", ".join(nodes[:3]) + (f" and {len(nodes) - 3} more" if len(nodes) > 3
                                                else "")
                lines.append(f"  {op}: {shown}")
        lines.append(
            "Layers of keras_structconv trace portable ops inside export functions; a layer "
            "named above has no portable inference path (or it is not a keras_structconv layer)."
        )
        if detail:
            lines.append(detail)
        super().__init__("\n".join(lines))


# ------------------------------------------------------------------------------ tracing
def _input_specs(
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
        dtypes = [tensor.dtype for tensor in model_inputs]
        names = [tensor.name for tensor in model_inputs]
    else:
        shapes = _shape_list(input_shape, 1 if model_inputs is None else len(model_inputs))
        dtypes = ["float32"] * len(shapes) if model_inputs is None else [
            tensor.dtype for tensor in model_inputs
        ]
        names = [f"input_{index}" for index in range(len(shapes))] if model_inputs is None else [
            tensor.name for tensor in model_inputs
        ]
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
    specs = _input_specs(model, input_shape, batch_size)
    structure = _call_structure(model, len(specs))

    call_kwargs = dict(call_kwargs or {})

    def serve(*inputs):
        inputs = tf.nest.pack_sequence_as(structure, list(inputs))
        return model(inputs, training=False, **call_kwargs)

    return tf.function(serve, input_signature=specs)


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


def _variables_holder(model: keras.Model) -> tf.Module:
    """A `tf.Module` tracking the TensorFlow variables behind the model's Keras variables.

    The TFLite converter freezes the variables its trackable object tracks; it does not see
    through Keras 3 variables (given the model, it converts garbage weights). Keras' own LiteRT
    export writes a SavedModel first, which takes 2-3 times as long."""
    holder = tf.Module()
    holder.variables_to_freeze = [variable.value for variable in model.variables]
    return holder


# ------------------------------------------------------------------------------- TFLite
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
    serve = serving_function(
        model, input_shape=input_shape, batch_size=batch_size, call_kwargs=call_kwargs
    )
    with portable_ops():
        concrete = serve.get_concrete_function()
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
            _op_locations(concrete, ops),
            detail=(
                "`builtin_only=False` allows TensorFlow ops through Flex, which only "
                "runtimes built with the Flex delegate can run." if builtin_only else ""
            ),
        ) from error
    if path is not None:
        _write_atomically(Path(path), flatbuffer)
    return flatbuffer


def _ops_rejected_by_tflite(message: str) -> list[str]:
    """The TF op types the converter's message says it could not lower."""
    ops = set(re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", message))
    for line in re.findall(r"(?:TF Select|Custom) ops: ([^\n]*)", message):
        ops.update(op.strip() for op in line.split(",") if op.strip())
    ops.update(re.findall(r"'tf\.(\w+)' op is not supported", message))
    return sorted(ops)


def _op_locations(concrete: Any, ops: Sequence[str]) -> dict[str, list[str]]:
    """Op type -> names of the nodes of that type in the traced graph and its functions."""
    graph_def = concrete.graph.as_graph_def()
    nodes = list(graph_def.node)
    for function in graph_def.library.function:
        nodes.extend(function.node_def)
    locations: dict[str, list[str]] = {op: [] for op in ops}
    for node in nodes:
        if node.op in locations and node.name not in locations[node.op]:
            locations[node.op].append(node.name)
    return locations


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
    inputs = _input_arrays(x, len(input_names))
    details = signature_inputs[input_names[0]]
    batch = int(details.get("shape_signature", details["shape"])[0])  # -1: dynamic

    def run(arrays):
        outputs = runner(**dict(zip(input_names, arrays, strict=True)))
        # Copies: the arrays may view the interpreter's buffers, which the next call reuses.
        return {name: np.array(value, copy=True) for name, value in outputs.items()}

    return _ordered_outputs(_run_in_batches(run, inputs, batch))


def _tflite_interpreter(content: bytes, interpreter: str) -> Any:
    choice = _validation.one_of(interpreter, "interpreter", ("auto", "litert", "tensorflow"))
    if choice in ("auto", "litert"):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            if choice == "litert":
                raise ImportError(
                    "interpreter='litert' needs the `ai-edge-litert` package: "
                    "`pip install ai-edge-litert`."
                ) from None
        else:
            runtime = Interpreter(model_content=content)
            runtime.allocate_tensors()
            return runtime
    runtime = tf.lite.Interpreter(model_content=content)
    runtime.allocate_tensors()
    return runtime


def _input_arrays(x: Any, count: int) -> list[np.ndarray]:
    arrays = [x] if count == 1 and not isinstance(x, list | tuple) else list(x)
    if len(arrays) != count:
        raise ValueError(
            f"The model has {count} input(s); pass one array per input. "
            f"Received: x with {len(arrays)} array(s)"
        )
    return [np.asarray(array, np.float32) if np.asarray(array).dtype == np.float64
            else np.asarray(array) for array in arrays]


def _run_in_batches(
    run: Callable[[list[np.ndarray]], dict[str, np.ndarray]], inputs: list[np.ndarray],
    batch: int
) -> dict[str, np.ndarray]:
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


def _ordered_outputs(outputs: dict[str, np.ndarray]) -> Any:
    """One array, the list `output_0..output_n` in order, or the dict of named outputs."""
    if len(outputs) == 1:
        return next(iter(outputs.values()))
    positional = [f"output_{index}" for index in range(len(outputs))]
    if sorted(outputs) == sorted(positional):
        return [outputs[name] for name in positional]
    return outputs


# --------------------------------------------------------------------------------- ONNX
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
    tf2onnx = _import_optional("tf2onnx", "to_onnx")
    onnx = _import_optional("onnx", "to_onnx")
    _validation.int_in_range(opset, "opset", 7)
    serve = serving_function(
        model, input_shape=input_shape, batch_size=batch_size, call_kwargs=call_kwargs
    )
    with portable_ops(), _quiet_tf2onnx():
        concrete = serve.get_concrete_function()
        proto, _ = tf2onnx.convert.from_function(
            serve, input_signature=serve.input_signature, opset=opset
        )
    _captured_constants_to_initializers(onnx, proto, concrete)
    unsupported = _ops_missing_from_onnx(onnx, proto, opset)
    if unsupported:
        raise UnsupportedOpsError(f"ONNX opset {opset}", list(unsupported), unsupported)
    onnx.checker.check_model(proto)
    _write_atomically(Path(path), proto.SerializeToString())
    return proto


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


def _ops_missing_from_onnx(onnx: Any, proto: Any, opset: int) -> dict[str, list[str]]:
    """Op type -> node names, for the nodes (subgraphs included) no ONNX domain defines."""
    missing: dict[str, list[str]] = {}

    def visit(graph):
        for node in graph.node:
            domain = node.domain or ""
            known = (
                onnx.defs.has(node.op_type, max_inclusive_version=opset, domain=domain)
                if domain in ("", "ai.onnx")
                else onnx.defs.has(node.op_type, domain=domain) or domain == "com.microsoft"
            )
            if not known:
                missing.setdefault(node.op_type, []).append(node.name)
            for attribute in node.attribute:
                for subgraph in [attribute.g, *attribute.graphs]:
                    visit(subgraph)

    visit(proto.graph)
    return missing


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
    onnxruntime = _import_optional("onnxruntime", "onnx_predict")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    input_names = [tensor.name for tensor in session.get_inputs()]
    output_names = [tensor.name for tensor in session.get_outputs()]
    inputs = _input_arrays(x, len(input_names))
    batch = session.get_inputs()[0].shape[0]
    batch = batch if isinstance(batch, int) else 0

    # tf2onnx names the outputs of a function returning a dict after its keys, the others
    # after the graph's Identity ops: those become output_0, output_1, ... (a list).
    positional = all(re.fullmatch(r"Identity(_\d+)?:0", name) for name in output_names)
    keys = [f"output_{index}" for index in range(len(output_names))] if positional else (
        output_names
    )

    def run(arrays):
        values = session.run(output_names, dict(zip(input_names, arrays, strict=True)))
        return dict(zip(keys, values, strict=True))

    return _ordered_outputs(_run_in_batches(run, inputs, batch))


def _import_optional(module: str, caller: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"`{caller}` needs `{module}`, part of the `export` extra: {EXPORT_EXTRA_HINT} "
            f"(tf2onnx, onnx and onnxruntime)."
        ) from error


# ----------------------------------------------------------------------------- SavedModel
def export_saved_model(
    model: keras.Model,
    path: PathLike,
    *,
    input_shape: ShapeLike | Sequence[ShapeLike] | None = None,
    verbose: bool = False,
    **kwargs: Any,
) -> None:
    """Exports `model` as a SavedModel (endpoint "serve"), traced on the portable path.

    This is `model.export(path)` inside `portable_ops()`: the serving function contains no
    XLA-compiled functions, custom gradients or complex numbers, so TF-Serving, the TFLite
    converter and `keras.layers.TFSMLayer` load it on any TensorFlow build. The batch axis stays
    dynamic; spatial sizes follow the model's inputs unless `input_shape` fixes them.

    Args:
        model: a built Keras model (models with their own `export`, like `QGN`, use theirs).
        path: the SavedModel folder.
        input_shape: the shape of one example, without the batch axis; default: the model's.
        verbose: print Keras' summary of the endpoints.
        **kwargs: passed to `model.export` (e.g. `propagation=` for QGN).

    Example:

    ```python
    export_saved_model(model, "model_savedmodel")
    serving = keras.layers.TFSMLayer("model_savedmodel", call_endpoint="serve",
                                     dtype="float32")
    probabilities = serving(images)
    ```
    """
    if input_shape is not None:
        kwargs["input_signature"] = _input_specs(model, input_shape, None)
    with portable_ops():
        model.export(str(path), format="tf_saved_model", verbose=verbose, **kwargs)


# ------------------------------------------------------------------------------- loading
def load_model(
    filepath: PathLike,
    custom_objects: dict[str, Any] | None = None,
    compile: bool = True,
    safe_mode: bool = True,
) -> keras.Model:
    """`keras.saving.load_model` with every keras_structconv class registered.

    A `.keras` file names this package's layers as `keras_structconv>TreeAttention` and so on;
    Keras resolves those names only after `import keras_structconv` has run the registrations.
    This function is also `keras_structconv.load_model`.

    Args:
        filepath: a `.keras` (or legacy `.h5`) file.
        custom_objects: further classes and functions, as for `keras.saving.load_model`.
        compile: compile the model with its saved optimizer and losses.
        safe_mode: refuse to deserialize lambdas (Keras' default, True).

    Returns:
        The model.

    Raises:
        TypeError: the file names a keras_structconv class that this version does not have
            (the message lists them and this version).

    Example:

    ```python
    import keras_structconv as ksc

    model = ksc.load_model("tree_resnet20.keras")
    ```
    """
    import keras_structconv  # noqa: F401  (runs every registration, models and quadtree too)

    try:
        return keras.saving.load_model(
            filepath, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode
        )
    except TypeError as error:
        if "Could not locate" not in str(error):
            raise
        unknown = [
            name for name in registered_names_in_file(filepath)
            if keras.saving.get_registered_object(name) is None
        ]
        if not unknown:
            raise
        raise TypeError(
            f"{filepath} names {', '.join(unknown)}, which this keras_structconv "
            f"({keras_structconv.__version__}) does not have: the file was saved by another "
            "version of the package. Install that version, or pass the classes in "
            f"`custom_objects`. Keras said: {error}"
        ) from error


def registered_names_in_file(filepath: PathLike) -> list[str]:
    """The `keras_structconv>Name` registered names a `.keras` file's config refers to.

    Example:

    ```python
    registered_names_in_file("tree_resnet20.keras")  # ['keras_structconv>TreeConv2D']
    ```
    """
    try:
        with zipfile.ZipFile(filepath) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError):
        return []
    found: set[str] = set()

    def visit(value):
        if isinstance(value, dict):
            name = value.get("registered_name")
            if isinstance(name, str) and name.startswith(f"{REGISTERED_PACKAGE}>"):
                found.add(name)
            for item in value.values():
                visit(item)
        elif isinstance(value, list):
            for item in value:
                visit(item)

    visit(config)
    return sorted(found)


def missing_package_hint(filepath: PathLike) -> str | None:
    """A sentence telling to `import keras_structconv` when `filepath` (a `.keras` file) names
    this package's classes; None when it names none. For applications that load with
    `keras.saving.load_model` themselves and want to explain a "Could not locate class" error.

    Example:

    ```python
    try:
        model = keras.saving.load_model(path)
    except TypeError as error:
        hint = missing_package_hint(path)
        raise TypeError(f"{error}\\n{hint}" if hint else str(error)) from error
    ```
    """
    names = registered_names_in_file(filepath)
    if not names:
        return None
    return (
        f"{filepath} uses keras_structconv layers ({', '.join(names)}): `import "
        "keras_structconv` before `keras.saving.load_model`, or load it with "
        "`keras_structconv.load_model(path)`."
    )


# ------------------------------------------------------------------------------ helpers
def _write_atomically(path: Path, content: bytes) -> None:
    """Writes `content` to a temporary file beside `path`, then renames it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(content)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
