"""Analysis helpers for trained models: the TAM paper's "static gate" statistics.

Reference: "Tree-structured Attention Module for Image Classification" (ICLR 2020 submission),
Section 4.1 and Figure 3: for every attention module and every image, the mean and the variance
over the spatial positions of the module's attention map `sigmoid(tree(x))`. The paper finds a
zero spatial variance everywhere (each module acts as a fixed gate depending only on its place
in the network), with means that grow with depth.

`gate_statistics(model, images)` returns these numbers for every `TreeAttention` module of a
functional model (nested functional models included), in the order of `model.layers`.
"""

import dataclasses

import keras
import numpy as np

from keras_structconv import _internals
from keras_structconv.layers.tree_attention import TreeAttention

__all__ = ["GateStatistics", "gate_statistics"]


@dataclasses.dataclass(frozen=True)
class GateStatistics:
    """Per-image statistics of one module's attention map (shape `(height, width)` per image).

    Attributes:
        name: the module's path (`outer_model/layer` for nested models).
        mean: `(num_images,)` spatial mean of the gate per image.
        variance: `(num_images,)` spatial (population) variance of the gate per image.
    """

    name: str
    mean: np.ndarray
    variance: np.ndarray

    @property
    def batch_mean(self):
        """Mean of the gate over the images and positions."""
        return float(np.mean(self.mean))

    @property
    def max_variance(self):
        """Largest per-image spatial variance (zero for a static gate)."""
        return float(np.max(self.variance))


def gate_statistics(model, images, batch_size=32):
    """Spatial mean and variance of every TreeAttention module's gate, per image.

    Args:
        model: a functional (or Sequential) keras model containing `TreeAttention` layers,
            directly or inside nested functional models.
        images: the model's input batch (array or tensor; one input).
        batch_size: images per forward pass.

    Returns:
        A list of `GateStatistics`, one per module, in layer order.

    Raises:
        ValueError: for a model without TreeAttention modules, a subclassed model (no layer
            graph to read a module's input from) or a model with several inputs.
    """
    if not isinstance(model, keras.Model) or not hasattr(model, "inputs") or not model.inputs:
        raise ValueError(
            "`model` must be a built functional or Sequential keras model. "
            f"Received: model={model!r}"
        )
    if len(model.inputs) != 1:
        raise ValueError(
            f"`model` must have one input. Received: model with {len(model.inputs)} inputs"
        )
    stats = []
    _collect(model, np.asarray(images), batch_size, "", stats)
    if not stats:
        raise ValueError(f"`model` contains no TreeAttention layer. Received: model={model.name!r}")
    return stats


def _contains_attention(layer):
    if isinstance(layer, TreeAttention):
        return True
    return isinstance(layer, keras.Model) and any(_contains_attention(s) for s in layer.layers)


def _input_tensor(layer):
    """The tensor feeding `layer` in the enclosing model's graph (a nested model's `.input` is
    its own Input, not that tensor)."""
    nodes = _internals.inbound_nodes(layer)
    if len(nodes) != 1:
        raise ValueError(
            "Each TreeAttention module (and each nested model holding one) must be called once. "
            f"Received: layer {layer.name!r} called {len(nodes)} times"
        )
    tensors = nodes[0].input_tensors
    return tensors[0] if len(tensors) == 1 else tensors


def _collect(model, inputs, batch_size, prefix, stats):
    """Reads the inputs of every module (and of every nested model holding one) of `model` in
    one probe model, then computes the gates of the modules and recurses into nested models."""
    targets = [layer for layer in model.layers if _contains_attention(layer)]
    if not targets:
        return
    probe = keras.Model(model.inputs, [_input_tensor(layer) for layer in targets])
    values = probe.predict(inputs, batch_size=batch_size, verbose=0)
    if len(targets) == 1:
        values = [values]
    for layer, value in zip(targets, values, strict=True):
        name = f"{prefix}{layer.name}"
        if isinstance(layer, TreeAttention):
            gates = np.concatenate(
                [
                    np.asarray(layer.gate(value[i : i + batch_size]))
                    for i in range(0, len(value), batch_size)
                ]
            )[..., 0]
            stats.append(GateStatistics(name, gates.mean(axis=(1, 2)), gates.var(axis=(1, 2))))
        else:
            _collect(layer, value, batch_size, f"{name}/", stats)
