"""Read-only queries on a functional Keras graph for `convert`: who produced a tensor, in which
order the nodes run, which tensors still hold the image (stem detection) and which input of a
residual add is the branch (the placement rule of the `keras_structconv.surgery` docstring)."""

from __future__ import annotations

import keras

from keras_structconv import _internals
from keras_structconv._internals import AddOperation

# Layers with weights that do not extract features: a conv behind them still reads the image.
NORMALIZATION_TYPES = (
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.GroupNormalization,
    keras.layers.Normalization,
)


# ------------------------------------------------------------------------------- nodes, order
def producer(tensor):
    """The node that produced `tensor` (None for a graph entry point)."""
    operation, node_index, _ = _internals.keras_history(tensor)
    if operation is None:
        return None
    return _internals.inbound_nodes(operation)[node_index]


def producer_name(tensor):
    """Name of the layer that produced `tensor` ("input" for a graph entry point)."""
    node = producer(tensor)
    return node.operation.name if node is not None else "input"


def sorted_nodes(model):
    """The model's nodes, inputs first (Keras' own execution order)."""
    nodes = []
    by_depth = _internals.nodes_by_depth(model)
    for depth in sorted(by_depth, reverse=True):
        nodes.extend(by_depth[depth])
    return nodes


def count_consumers(nodes, model):
    """id(tensor) -> how many node inputs and model outputs read it."""
    consumers = {}
    for tensor in [t for node in nodes for t in node.input_tensors] + list(model.outputs):
        consumers[id(tensor)] = consumers.get(id(tensor), 0) + 1
    return consumers


def is_add(node):
    """A `keras.layers.Add`, or `x + y` on two symbolic tensors (a keras.ops Add operation)."""
    operation = node.operation
    if isinstance(operation, keras.layers.Add):
        return True
    return isinstance(operation, AddOperation) and len(node.input_tensors) == 2


# ------------------------------------------------------------------------------------- stem
def is_feature_layer(layer):
    """True if `layer` extracts features (has weights and is not a normalization)."""
    if isinstance(layer, keras.Model):
        return any(is_feature_layer(sub) for sub in layer.layers)
    if not isinstance(layer, keras.layers.Layer) or isinstance(layer, NORMALIZATION_TYPES):
        return False
    return bool(layer.weights)


def reads_image(node, flags):
    """True if every input of `node` still holds the image (then a conv there is a stem)."""
    return all(flags.get(id(t), True) for t in node.input_tensors)


def propagate_image_flags(nodes, flags):
    """id(tensor) -> True while no feature layer lies between a model input and it."""
    flags = dict(flags)
    for node in nodes:
        if node.is_input:
            continue
        out = reads_image(node, flags) and not is_feature_layer(node.operation)
        for tensor in node.outputs:
            flags[id(tensor)] = out
    return flags


# ------------------------------------------------------------------------- residual branches
def distances_up(tensor, model_nodes):
    """id(ancestor tensor) -> fewest layers between it and `tensor` (0 for `tensor` itself)."""
    distances = {id(tensor): 0}
    frontier = [tensor]
    while frontier:
        next_frontier = []
        for current in frontier:
            node = producer(current)
            if node is None or node.is_input or id(node) not in model_nodes:
                continue
            for parent in node.input_tensors:
                if id(parent) not in distances:
                    distances[id(parent)] = distances[id(current)] + 1
                    next_frontier.append(parent)
        frontier = next_frontier
    return distances


def residual_input(a, b, model_nodes):
    """Index of the residual-branch input of Add(a, b) and the rule used.

    Returns a reason string when the add is not residual, None when the two inputs are equally
    far from their nearest common ancestor.
    """
    if a is b:
        return "both inputs are the same tensor"
    up_a = distances_up(a, model_nodes)
    up_b = distances_up(b, model_nodes)
    if id(b) in up_a:
        return 0, "ancestor"
    if id(a) in up_b:
        return 1, "ancestor"
    common = [key for key in up_a if key in up_b]
    if not common:
        return "the inputs have no common ancestor"
    nearest = min(common, key=lambda key: up_a[key] + up_b[key])
    if up_a[nearest] == up_b[nearest]:
        return None
    # The input with fewer layers back to the common ancestor is the shortcut.
    branch = 0 if up_a[nearest] > up_b[nearest] else 1
    return branch, "nearest common ancestor"
