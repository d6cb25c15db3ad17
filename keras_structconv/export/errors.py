"""What the exporters raise: ops a runtime lacks, and optional packages that are not installed.

`UnsupportedOpsError` names each op a runtime lacks together with the graph nodes using it (their
name scopes name the layers), for TFLite and ONNX alike; `nodes_by_op` gathers those nodes from
either graph.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["EXPORT_EXTRA_HINT", "UnsupportedOpsError", "import_optional", "nodes_by_op"]

EXPORT_EXTRA_HINT = "pip install 'keras_structconv[export]'"
# Nodes named per op in the message; the rest are counted.
SHOWN_NODES = 3


class UnsupportedOpsError(ValueError):
    """A model traced for a runtime contains ops that the runtime does not have.

    Attributes:
        runtime: "TFLite builtin ops" or "ONNX opset N".
        ops: the unsupported op types, sorted.
        locations: op type -> the graph nodes (name scopes name the layers) that use it.

    Example:

    ```python
    try:
        export.to_tflite(model, "model.tflite")
    except export.UnsupportedOpsError as error:
        print(error.ops, error.locations)  # ('LowerBound',) {'LowerBound': ['sorting/...']}
    ```
    """

    def __init__(self, runtime: str, ops: Sequence[str], locations: dict[str, list[str]],
                 detail: str = ""):
        self.runtime = runtime
        self.ops = tuple(sorted(ops))
        self.locations = locations
        lines = [f"The model uses ops that {runtime} does not support: {', '.join(self.ops)}."]
        lines += [
            f"  {op}: {_shown(locations[op])}" for op in self.ops if locations.get(op)
        ]
        lines.append(
            "Layers of keras_structconv trace portable ops inside export functions; a layer "
            "named above has no portable inference path (or it is not a keras_structconv layer)."
        )
        if detail:
            lines.append(detail)
        super().__init__("\n".join(lines))


def _shown(nodes: list[str]) -> str:
    """The first few node names, then how many more there are."""
    more = len(nodes) - SHOWN_NODES
    return ", ".join(nodes[:SHOWN_NODES]) + (f" and {more} more" if more > 0 else "")


def nodes_by_op(
    nodes: Iterable[tuple[str, str]], ops: Iterable[str] | None = None
) -> dict[str, list[str]]:
    """Op type -> the names of its nodes (each once, in graph order), from `(op type, node name)`
    pairs; with `ops`, only those op types, each a key even when no node has it.

    Example:

    ```python
    nodes_by_op([("Add", "a"), ("Mul", "b"), ("Add", "c")], ops=["Add"])  # {'Add': ['a', 'c']}
    ```
    """
    locations: dict[str, list[str]] = {op: [] for op in ops or ()}
    for op, name in nodes:
        if ops is not None and op not in locations:
            continue
        names = locations.setdefault(op, [])
        if name not in names:
            names.append(name)
    return locations


def import_optional(module: str, caller: str) -> Any:
    """`importlib.import_module(module)`, or an ImportError naming the `export` extra.

    Example:

    ```python
    onnxruntime = import_optional("onnxruntime", "onnx_predict")
    ```
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"`{caller}` needs `{module}`, part of the `export` extra: {EXPORT_EXTRA_HINT} "
            f"(tf2onnx, onnx and onnxruntime)."
        ) from error
