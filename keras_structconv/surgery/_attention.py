"""Attention before residual adds: an `attention(channels)` module goes on the residual branch
input of each two-input add of one functional model (placement rule: `_graph.residual_input`)."""

from __future__ import annotations

import keras

from keras_structconv.surgery._graph import producer_name, residual_input
from keras_structconv.surgery.report import InsertedAttention, SkippedAdd


class AttentionInserter:
    """Inserts the modules of one (possibly nested) model and records them in the report.

    Args:
        attention: the `attention(channels) -> Layer` factory.
        report: the `ConvertReport` to fill.
        model: the original functional model (its layer names are taken).
        model_nodes: ids of the model's own nodes (the graph searches stay inside the model).
        prefix: `outer/` prefixes of a nested model, for the report and error messages.
    """

    def __init__(self, attention, report, model, model_nodes, prefix):
        self.attention = attention
        self.report = report
        self.model_nodes = model_nodes
        self.prefix = prefix
        self.taken_names = {op.name for op in model.operations}

    def __call__(self, node, args):
        """The new call arguments of the add `node`: `args` with the module on the branch."""
        operation = node.operation
        old_inputs = list(node.input_tensors)
        if len(old_inputs) != 2:
            raise ValueError(
                "An Add before which attention goes must have exactly two inputs (one "
                "shortcut, one residual branch). Received: "
                f"{self.prefix}{operation.name!r} with {len(old_inputs)} inputs"
            )
        decision = residual_input(old_inputs[0], old_inputs[1], self.model_nodes)
        if isinstance(decision, str):
            self.report.skipped_adds.append(SkippedAdd(self.prefix + operation.name, decision))
            return args
        if decision is None:
            raise ValueError(
                "Cannot tell the residual branch from the shortcut of an Add: both inputs are "
                "equally many layers away from their nearest common ancestor. Received: "
                f"{self.prefix}{operation.name!r} with inputs from "
                f"{producer_name(old_inputs[0])!r} and {producer_name(old_inputs[1])!r}"
            )
        branch_index, rule = decision
        old_branch = old_inputs[branch_index]
        module = self._new_module(old_branch, operation)

        new_inputs = _add_arguments(operation, args)
        new_inputs[branch_index] = module(new_inputs[branch_index])
        self.report.inserted.append(
            InsertedAttention(
                name=self.prefix + module.name,
                add=self.prefix + operation.name,
                branch=self.prefix + producer_name(old_branch),
                shortcut=self.prefix + producer_name(old_inputs[1 - branch_index]),
                channels=int(old_branch.shape[-1]),
                rule=rule,
            )
        )
        return _pack_add_arguments(operation, args, new_inputs)

    def _new_module(self, old_branch, add):
        """`attention(channels)` of the branch, named `<add name>_attention` (made unique)."""
        channels = old_branch.shape[-1]
        if channels is None:
            raise ValueError(
                "Attention needs a known channel count (last axis) on the residual branch. "
                f"Received: shape {old_branch.shape} before {self.prefix}{add.name!r}"
            )
        module = self.attention(int(channels))
        if not isinstance(module, keras.layers.Layer):
            raise ValueError(
                f"`attention` must return a keras Layer. Received: attention({channels}) "
                f"returned {module!r}"
            )
        module.name = _unique_name(f"{add.name}_attention", self.taken_names)
        self.taken_names.add(module.name)
        return module


def _add_arguments(operation, args):
    """The two new input tensors of an add call, as a list."""
    if isinstance(operation, keras.layers.Add):
        return list(args[0])
    return list(args[:2])


def _pack_add_arguments(operation, args, new_inputs):
    """The add call's arguments with `new_inputs` in place of its two inputs."""
    if isinstance(operation, keras.layers.Add):
        return (type(args[0])(new_inputs), *args[1:])
    return (*new_inputs, *args[2:])


def _unique_name(name, taken):
    candidate, suffix = name, 1
    while candidate in taken:
        candidate = f"{name}_{suffix}"
        suffix += 1
    return candidate
