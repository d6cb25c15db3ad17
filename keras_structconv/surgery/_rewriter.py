"""The rewriting behind `convert`: every layer re-created from its config, selected convolutions
replaced (folding a `ZeroPadding2D` in front of them when the factory takes it), attention
inserted before residual adds, nested models rewritten recursively, weights copied at the end."""

from __future__ import annotations

import warnings

import keras

from keras_structconv import _internals
from keras_structconv._internals import Functional, functional_like_constructor
from keras_structconv.layers.conv_factory import folds_zero_padding
from keras_structconv.surgery import _graph
from keras_structconv.surgery._attention import AttentionInserter
from keras_structconv.surgery.report import ReplacedConv, describe_conv

CONV_TYPES = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)


def default_select(layer, is_stem):
    """The default selection: a 3×3 `Conv2D` that is not a stem convolution."""
    return (
        isinstance(layer, keras.layers.Conv2D)
        and tuple(layer.kernel_size) == (3, 3)
        and not is_stem
    )


def clone_layer(layer):
    """A new layer of the same class and config (no weights yet)."""
    if isinstance(layer, keras.layers.Lambda):
        # A Lambda's Python function is refused by safe-mode deserialization; here it comes from
        # a live in-memory model, not from a file, so round-tripping it is safe.
        return keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(layer), safe_mode=False
        )
    return layer.__class__.from_config(layer.get_config())


def _weight_shapes(layer):
    return [tuple(w.shape) for w in layer.weights]


class Rewriter:
    """Rewrites one model (recursively for nested models) and fills the report.

    New layers are made while the graph is rebuilt; weights are set afterwards, from the list of
    `(kind, old, new, padding_layer)` copies ("replaced" or "cloned"), once every layer is built.
    """

    def __init__(self, conv, attention, select, copy_conv_weights, report):
        self.conv = conv
        self.attention = attention
        self.select = select
        self.copy_conv_weights = copy_conv_weights
        self.report = report
        self.folds_padding = folds_zero_padding(conv)
        self.converted_models = {}  # id(original nested model) -> new model

    def rewrite(self, model, prefix, reads_image):
        if isinstance(model, keras.Sequential):
            return self._rewrite_sequential(model, prefix, reads_image)
        if not isinstance(model, Functional):
            raise ValueError(
                "Nested models must be functional or Sequential: a subclassed model has no "
                f"layer graph to rewrite. Received: nested model {prefix}{model.name!r} of type "
                f"{type(model).__name__}"
            )
        return self._rewrite_functional(model, prefix, reads_image)

    # ------------------------------------------------------------------------- new layers
    def _wants_replacement(self, layer, is_stem):
        if self.conv is None or not isinstance(layer, CONV_TYPES):
            return False
        if self.select is None:
            return default_select(layer, is_stem)
        return bool(self.select(layer))

    def _replace(self, old, prefix, padding_layer, copies):
        """`conv(old)` named like `old` (weights copied later, see `_copy_weights`)."""
        kwargs = {} if padding_layer is None else {"zero_padding": padding_layer.padding}
        new = self.conv(old, **kwargs)
        if not isinstance(new, keras.layers.Layer) or new is old:
            raise ValueError(
                "`conv` must return a new keras Layer. Received: conv(...) returned "
                f"{new!r} for {prefix}{old.name!r}"
            )
        new.name = old.name
        copies.append(("replaced", old, new, padding_layer))
        return new

    def _new_layer(self, layer, prefix, reads_image, copies):
        """The rewritten nested model, or a clone of any other layer."""
        if isinstance(layer, keras.Model):
            key = id(layer)
            if key not in self.converted_models:
                nested_prefix = f"{prefix}{layer.name}/"
                self.converted_models[key] = self.rewrite(layer, nested_prefix, reads_image)
            return self.converted_models[key]
        new = clone_layer(layer)
        copies.append(("cloned", layer, new, None))
        return new

    def _copy_weights(self, copies, prefix):
        for kind, old, new, padding_layer in copies:
            if kind == "replaced":
                self._record_replacement(old, new, prefix, padding_layer)
            elif isinstance(old, keras.layers.Layer) and old.weights:
                new.set_weights(old.get_weights())

    def _record_replacement(self, old, new, prefix, padding_layer):
        copied = self.copy_conv_weights and _weight_shapes(old) == _weight_shapes(new)
        if copied and old.weights:
            new.set_weights(old.get_weights())
        self.report.replaced.append(
            ReplacedConv(
                name=prefix + old.name,
                old=describe_conv(old),
                new=type(new).__name__,
                folded_padding=None if padding_layer is None else prefix + padding_layer.name,
                weights_copied=bool(copied and old.weights),
            )
        )

    # ------------------------------------------------------------------------- sequential
    def _rewrite_sequential(self, model, prefix, reads_image):
        layers = model.layers
        reads = True if reads_image is None else reads_image
        new_layers, copies = [], []
        index = 0
        while index < len(layers):
            layer = layers[index]
            following = layers[index + 1] if index + 1 < len(layers) else None
            if (
                isinstance(layer, keras.layers.ZeroPadding2D)
                and following is not None
                and self.folds_padding
                and self._wants_replacement(following, is_stem=reads)
            ):
                new_layers.append(self._replace(following, prefix, layer, copies))
                index += 2
                reads = reads and not _graph.is_feature_layer(following)
                continue
            if self._wants_replacement(layer, is_stem=reads):
                new = self._replace(layer, prefix, None, copies)
            else:
                new = self._new_layer(layer, prefix, reads, copies)
            new_layers.append(new)
            reads = reads and not _graph.is_feature_layer(layer)
            index += 1

        functional = _internals.sequential_graph(model)
        if functional is not None:
            new_layers.insert(0, _new_input(functional.inputs[0]))
        new_model = keras.Sequential(new_layers, name=model.name, trainable=model.trainable)
        self._copy_weights(copies, prefix)
        return new_model

    # ------------------------------------------------------------------------- functional
    def _rewrite_functional(self, model, prefix, reads_image):
        nodes = _graph.sorted_nodes(model)
        model_nodes = {id(node) for node in nodes}
        input_flags = {id(t): reads_image is not False for t in model.inputs}
        stem_flags = _graph.propagate_image_flags(nodes, input_flags)
        replaced, paddings = self._plan_replacements(nodes, model, model_nodes, stem_flags)
        insert_attention = None
        if self.attention is not None:
            insert_attention = AttentionInserter(
                self.attention, self.report, model, model_nodes, prefix
            )

        tensor_map = {id(old): _new_input(old) for old in model.inputs}
        new_operations = {}  # id(old operation) -> new operation
        copies = []
        for node in nodes:
            if node.is_input:
                continue
            operation = node.operation
            if id(operation) in paddings:
                # The padding moves into the replacement conv: pass its input straight through.
                (padded_input,) = node.input_tensors
                tensor_map[id(node.outputs[0])] = tensor_map[id(padded_input)]
                continue
            if id(operation) not in new_operations:
                if id(operation) in replaced:
                    new = self._replace(operation, prefix, replaced[id(operation)], copies)
                else:
                    reads = _graph.reads_image(node, stem_flags)
                    new = self._new_layer(operation, prefix, reads, copies)
                new_operations[id(operation)] = new
            args, kwargs = _internals.node_call_arguments(node, tensor_map)
            if insert_attention is not None and _graph.is_add(node):
                args = insert_attention(node, args)
            outputs = new_operations[id(operation)](*args, **kwargs)
            for old_output, new_output in zip(
                node.outputs, keras.tree.flatten(outputs), strict=True
            ):
                tensor_map[id(old_output)] = new_output

        def new_tensor(tensor):
            return tensor_map[id(tensor)]

        inputs = keras.tree.map_structure(new_tensor, _internals.model_input_struct(model))
        outputs = keras.tree.map_structure(new_tensor, _internals.model_output_struct(model))
        new_model = self._functional_like(model, inputs, outputs)
        self._copy_weights(copies, prefix)
        if not model.trainable:
            new_model.trainable = False
        return new_model

    @staticmethod
    def _functional_like(model, inputs, outputs):
        if functional_like_constructor(type(model)):
            return type(model)(inputs, outputs, name=model.name)
        warnings.warn(
            f"convert: {model.name!r} is a {type(model).__name__} whose constructor is not "
            "functional-like; the converted model is a plain functional keras.Model.",
            stacklevel=4,
        )
        return keras.Model(inputs, outputs, name=model.name)

    def _plan_replacements(self, nodes, model, model_nodes, flags):
        """`(replaced, paddings)`: id(conv) -> the ZeroPadding2D folded into it (or None), and
        id(ZeroPadding2D) -> that layer for every folded padding."""
        consumers = _graph.count_consumers(nodes, model)
        calls = {}
        for node in nodes:
            calls[id(node.operation)] = calls.get(id(node.operation), 0) + 1
        replaced, paddings = {}, {}
        for node in nodes:
            layer = node.operation
            if node.is_input or id(layer) in replaced:
                continue
            if not self._wants_replacement(layer, is_stem=_graph.reads_image(node, flags)):
                continue
            padding_layer = None
            if self.folds_padding and calls[id(layer)] == 1 and len(node.input_tensors) == 1:
                (source,) = node.input_tensors
                pad_node = _graph.producer(source)
                if (
                    pad_node is not None
                    and id(pad_node) in model_nodes
                    and isinstance(pad_node.operation, keras.layers.ZeroPadding2D)
                    and calls[id(pad_node.operation)] == 1
                    and consumers.get(id(source), 0) == 1
                ):
                    padding_layer = pad_node.operation
                    paddings[id(padding_layer)] = padding_layer
            replaced[id(layer)] = padding_layer
        return replaced, paddings


def _new_input(old_input):
    """A fresh `keras.Input` like a model input: shape, dtype, sparsity, input layer name."""
    input_layer = _internals.keras_history(old_input)[0]
    return keras.Input(
        batch_shape=old_input.shape,
        dtype=old_input.dtype,
        sparse=old_input.sparse,
        name=input_layer.name,
    )
