"""Model surgery: rewrite a functional Keras model with new convolutions and attention modules.

`convert(model, conv=..., attention=...)` returns a new model in which

- every selected convolution (default: each 3×3 `Conv2D` that does not read the image, i.e. not
  the stem) is replaced by `conv(old_conv)`, keeping the old layer's name;
- an attention module `attention(channels)` sits on the residual branch right before each
  two-input `Add`, named `<add name>_attention`.

Which input of `Add(a, b)` is the residual branch (SPEC §3, TAM placement): the shortcut is the
input that is an ancestor of the other; otherwise it is the input with fewer layers back to the
nearest common ancestor of the two. The module goes on the other input (in EfficientNet that is
between the block's `Dropout` and the `Add`).

Every layer of the new model is re-created from its config (no layer object is shared with the
original), untouched layers get the original's weights, and nested models (e.g. a
`keras.applications` backbone used as a layer) are rewritten recursively. Sequential models
support convolution replacement only (a Sequential model has no residual `Add`).

Factories are plain callables, so the same factory works here and in our model builders:

- `conv(old_conv) -> Layer`: `old_conv` is the original convolution layer (its config via
  `get_config()`, its weights via `get_weights()`). A `keras_structconv.layers.ConvFactory` with
  `folds_zero_padding=True` is called as `conv(old_conv, zero_padding=padding)` when the
  convolution's only input is a `ZeroPadding2D` used by nothing else; `padding` is that layer's
  `((top, bottom), (left, right))` and the `ZeroPadding2D` is removed (Keras ResNet50V2 pads
  explicitly before its 'valid' stride-2 convolutions).
- `attention(channels) -> Layer`: a module mapping a `(N, H, W, channels)` tensor to the same
  shape (channels_last).
- `select(old_conv) -> bool`: called for every `Conv2D`, `DepthwiseConv2D` and
  `SeparableConv2D`; a custom `select` decides alone (the stem rule applies to the default only).

Layers made by the factories take the global dtype policy (re-created layers keep their own):
convert a mixed-precision model under the same policy it was built with.

When the replacement's weights have the shapes of the original's (e.g. a `Conv2D` subclass),
the original weights are copied into it (`copy_conv_weights=False` keeps the replacement's own
initialisation).

Example:

```python
backbone = keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3))
model, report = keras_structconv.convert(
    backbone, attention=lambda channels: MyAttention(), return_report=True
)
print(report)  # 16 attention modules, one per residual Add
```
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable

import keras

from keras_structconv import _internals
from keras_structconv._internals import AddOperation, Functional, functional_like_constructor
from keras_structconv.layers.conv_factory import folds_zero_padding

__all__ = ["ConvertReport", "InsertedAttention", "ReplacedConv", "SkippedAdd", "convert"]

_CONV_TYPES = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)
# Layers with weights that do not extract features: a conv behind them still reads the image.
_NORMALIZATION_TYPES = (
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.GroupNormalization,
    keras.layers.Normalization,
)


@dataclasses.dataclass(frozen=True)
class ReplacedConv:
    """One replaced convolution: `name` (with `outer/` prefixes for nested models), what it was,
    what replaced it, the folded `ZeroPadding2D` (or None) and whether weights were copied."""

    name: str
    old: str
    new: str
    folded_padding: str | None
    weights_copied: bool

    def __str__(self):
        folded = f", folded {self.folded_padding}" if self.folded_padding else ""
        copied = ", weights copied" if self.weights_copied else ""
        return f"{self.name}: {self.old} -> {self.new}{folded}{copied}"


@dataclasses.dataclass(frozen=True)
class InsertedAttention:
    """One inserted attention module: its `name`, the `add` it feeds, the layers producing the
    residual `branch` input (where the module sits) and the `shortcut` input, the channel count
    and the `rule` that told them apart ("ancestor" or "nearest common ancestor")."""

    name: str
    add: str
    branch: str
    shortcut: str
    channels: int
    rule: str

    def __str__(self):
        return (
            f"{self.name}: {self.channels} ch on {self.branch} before {self.add} "
            f"(shortcut {self.shortcut}; {self.rule})"
        )


@dataclasses.dataclass(frozen=True)
class SkippedAdd:
    """A two-input add that is not residual (no common ancestor, or the same tensor twice)."""

    name: str
    reason: str

    def __str__(self):
        return f"{self.name}: {self.reason}"


@dataclasses.dataclass
class ConvertReport:
    """What `convert` changed. `print(report)` gives one line per change."""

    model: str
    replaced: list = dataclasses.field(default_factory=list)
    inserted: list = dataclasses.field(default_factory=list)
    skipped_adds: list = dataclasses.field(default_factory=list)

    def __str__(self):
        lines = [
            f"convert({self.model!r}): {len(self.replaced)} convolutions replaced, "
            f"{len(self.inserted)} attention modules inserted"
        ]
        for title, entries in (
            ("replaced", self.replaced),
            ("inserted", self.inserted),
            ("skipped adds", self.skipped_adds),
        ):
            if entries:
                lines.append(f"{title}:")
                lines.extend(f"  {entry}" for entry in entries)
        return "\n".join(lines)


def convert(
    model: keras.Model,
    conv: Callable[..., keras.layers.Layer] | None = None,
    attention: Callable[[int], keras.layers.Layer] | None = None,
    select: Callable[[keras.layers.Layer], bool] | None = None,
    *,
    copy_conv_weights: bool = True,
    return_report: bool = False,
) -> keras.Model | tuple[keras.Model, ConvertReport]:
    """Return a new model with replaced convolutions and/or attention before residual adds.

    Args:
        model: a functional `keras.Model` (e.g. from `keras.applications`) or a
            `keras.Sequential` (convolution replacement only).
        conv: `conv(old_conv) -> Layer`, or None to keep every convolution. See the module
            docstring for `folds_zero_padding`.
        attention: `attention(channels) -> Layer`, or None to insert nothing.
        select: `select(old_conv) -> bool`; default: a 3×3 `Conv2D` that is not a stem
            convolution (a stem convolution has no weighted layer between it and a model input,
            normalization and padding aside).
        copy_conv_weights: copy the original weights into a replacement whose weights have the
            same shapes.
        return_report: also return a `ConvertReport`.

    Returns:
        The new model, or `(model, report)` when `return_report` is True.

    Raises:
        ValueError: for a subclassed model, attention on a Sequential model, an `Add` with more
            than two inputs, an `Add` whose residual input cannot be told apart (both inputs equally
            far from their nearest common ancestor), or a factory that returns no new layer.
    """
    _check_arguments(model, conv, attention, select)
    report = ConvertReport(model=model.name)
    rewriter = _Rewriter(
        conv=conv,
        attention=attention,
        select=select,
        copy_conv_weights=copy_conv_weights,
        report=report,
    )
    new_model = rewriter.rewrite(model, prefix="", reads_image=None)
    return (new_model, report) if return_report else new_model


def _check_arguments(model, conv, attention, select):
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"`model` must be a functional or Sequential keras.Model. Received: model={model!r}"
        )
    if not isinstance(model, (Functional, keras.Sequential)):
        raise ValueError(
            "`model` must be a functional or Sequential keras.Model: a subclassed model has no "
            "layer graph to rewrite (write it with the functional API, or build it with the "
            "factories directly). Received: model of type "
            f"{type(model).__name__} ({model.name!r})"
        )
    if isinstance(model, keras.Sequential) and attention is not None:
        raise ValueError(
            "`attention` is not supported on a Sequential model: it has no residual Add to put "
            "attention before (only `conv` replacement is). Received: attention="
            f"{attention!r} with a Sequential model ({model.name!r})"
        )
    for arg_name, value in (("conv", conv), ("attention", attention), ("select", select)):
        if value is not None and not callable(value):
            raise ValueError(
                f"`{arg_name}` must be callable or None. Received: {arg_name}={value!r}"
            )


def _is_feature_layer(layer):
    """True if `layer` extracts features (has weights and is not a normalization)."""
    if isinstance(layer, keras.Model):
        return any(_is_feature_layer(sub) for sub in layer.layers)
    if not isinstance(layer, keras.layers.Layer) or isinstance(layer, _NORMALIZATION_TYPES):
        return False
    return bool(layer.weights)


def _default_select(layer, is_stem):
    return (
        isinstance(layer, keras.layers.Conv2D)
        and tuple(layer.kernel_size) == (3, 3)
        and not is_stem
    )


def _describe_conv(layer):
    config = layer.get_config()
    kernel = "x".join(str(k) for k in config.get("kernel_size", ()))
    strides = config.get("strides", (1,))
    strides = str(strides[0]) if len(set(strides)) == 1 else "x".join(map(str, strides))
    bias = "bias" if config.get("use_bias") else "no bias"
    return f"{type(layer).__name__} {kernel} /{strides} {config.get('padding')} {bias}"


def _clone_layer(layer):
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


def _producer(tensor):
    """The node that produced `tensor` (None for a graph entry point)."""
    operation, node_index, _ = _internals.keras_history(tensor)
    if operation is None:
        return None
    return _internals.inbound_nodes(operation)[node_index]


def _producer_name(tensor):
    node = _producer(tensor)
    return node.operation.name if node is not None else "input"


def _reads_image(node, flags):
    """True if every input of `node` still holds the image (then a conv there is a stem)."""
    return all(flags.get(id(t), True) for t in node.input_tensors)


def _is_add(node):
    """A `keras.layers.Add`, or `x + y` on two symbolic tensors (a keras.ops Add operation)."""
    operation = node.operation
    if isinstance(operation, keras.layers.Add):
        return True
    return isinstance(operation, AddOperation) and len(node.input_tensors) == 2


class _Rewriter:
    """Rewrites one model (recursively for nested models) and fills the report."""

    def __init__(self, conv, attention, select, copy_conv_weights, report):
        self.conv = conv
        self.attention = attention
        self.select = select
        self.copy_conv_weights = copy_conv_weights
        self.report = report
        self.converted_models = {}  # id(original nested model) -> new model

    # ----------------------------------------------------------------------------- dispatch
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

    def _wants_replacement(self, layer, is_stem):
        if self.conv is None or not isinstance(layer, _CONV_TYPES):
            return False
        if self.select is None:
            return _default_select(layer, is_stem)
        return bool(self.select(layer))

    def _folds_padding(self):
        return folds_zero_padding(self.conv)

    def _new_conv(self, old, prefix, padding_layer):
        kwargs = {} if padding_layer is None else {"zero_padding": padding_layer.padding}
        new = self.conv(old, **kwargs)
        if not isinstance(new, keras.layers.Layer) or new is old:
            raise ValueError(
                "`conv` must return a new keras Layer. Received: conv(...) returned "
                f"{new!r} for {prefix}{old.name!r}"
            )
        new.name = old.name
        return new

    def _record_replacement(self, old, new, prefix, padding_layer):
        copied = self.copy_conv_weights and _weight_shapes(old) == _weight_shapes(new)
        if copied and old.weights:
            new.set_weights(old.get_weights())
        self.report.replaced.append(
            ReplacedConv(
                name=prefix + old.name,
                old=_describe_conv(old),
                new=type(new).__name__,
                folded_padding=None if padding_layer is None else prefix + padding_layer.name,
                weights_copied=bool(copied and old.weights),
            )
        )

    def _nested(self, layer, prefix, reads_image):
        key = id(layer)
        if key not in self.converted_models:
            self.converted_models[key] = self.rewrite(layer, f"{prefix}{layer.name}/", reads_image)
        return self.converted_models[key]

    # --------------------------------------------------------------------------- sequential
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
                and self._folds_padding()
                and self._wants_replacement(following, is_stem=reads)
            ):
                new = self._new_conv(following, prefix, padding_layer=layer)
                new_layers.append(new)
                copies.append(("replaced", following, new, layer))
                index += 2
                reads = reads and not _is_feature_layer(following)
                continue
            if self._wants_replacement(layer, is_stem=reads):
                new = self._new_conv(layer, prefix, padding_layer=None)
                copies.append(("replaced", layer, new, None))
            elif isinstance(layer, keras.Model):
                new = self._nested(layer, prefix, reads)
            else:
                new = _clone_layer(layer)
                copies.append(("cloned", layer, new, None))
            new_layers.append(new)
            reads = reads and not _is_feature_layer(layer)
            index += 1

        functional = _internals.sequential_graph(model)
        if functional is not None:
            source = functional.inputs[0]
            input_layer = _internals.keras_history(source)[0]
            new_layers.insert(
                0, keras.Input(batch_shape=source.shape, dtype=source.dtype, name=input_layer.name)
            )
        new_model = keras.Sequential(new_layers, name=model.name, trainable=model.trainable)
        self._copy_weights(copies, prefix)
        return new_model

    # --------------------------------------------------------------------------- functional
    def _rewrite_functional(self, model, prefix, reads_image):
        nodes = self._sorted_nodes(model)
        model_nodes = {id(node) for node in nodes}
        consumers = self._count_consumers(nodes, model)
        input_flags = {id(t): reads_image is not False for t in model.inputs}
        stem_flags = self._propagate_image_flags(nodes, input_flags)

        folded = self._plan_folds(nodes, model_nodes, consumers, stem_flags)
        taken_names = {op.name for op in model.operations}

        tensor_map = {}
        for old_input in model.inputs:
            input_layer = _internals.keras_history(old_input)[0]
            tensor_map[id(old_input)] = keras.Input(
                batch_shape=old_input.shape,
                dtype=old_input.dtype,
                sparse=old_input.sparse,
                name=input_layer.name,
            )

        new_operations = {}  # id(old operation) -> new operation
        copies = []
        for node in nodes:
            if node.is_input:
                continue
            operation = node.operation
            if id(operation) in folded["paddings"]:
                # The padding moves into the replacement conv: pass its input straight through.
                (padded_input,) = node.input_tensors
                tensor_map[id(node.outputs[0])] = tensor_map[id(padded_input)]
                continue
            new_operation = new_operations.get(id(operation))
            if new_operation is None:
                new_operation = self._new_operation(
                    operation, node, prefix, stem_flags, folded, copies
                )
                new_operations[id(operation)] = new_operation
            args, kwargs = _internals.node_call_arguments(node, tensor_map)
            if self.attention is not None and _is_add(node):
                args = self._insert_attention(node, args, model_nodes, prefix, taken_names)
            outputs = new_operation(*args, **kwargs)
            new_outputs = keras.tree.flatten(outputs)
            for old_output, new_output in zip(node.outputs, new_outputs, strict=True):
                tensor_map[id(old_output)] = new_output

        inputs = keras.tree.map_structure(
            lambda t: tensor_map[id(t)], _internals.model_input_struct(model)
        )
        outputs = keras.tree.map_structure(
            lambda t: tensor_map[id(t)], _internals.model_output_struct(model)
        )
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

    @staticmethod
    def _sorted_nodes(model):
        """The model's nodes, inputs first (Keras' own execution order)."""
        nodes = []
        by_depth = _internals.nodes_by_depth(model)
        for depth in sorted(by_depth, reverse=True):
            nodes.extend(by_depth[depth])
        return nodes

    @staticmethod
    def _count_consumers(nodes, model):
        consumers = {}
        for node in nodes:
            for tensor in node.input_tensors:
                consumers[id(tensor)] = consumers.get(id(tensor), 0) + 1
        for tensor in model.outputs:
            consumers[id(tensor)] = consumers.get(id(tensor), 0) + 1
        return consumers

    @staticmethod
    def _propagate_image_flags(nodes, flags):
        """id(tensor) -> True while no feature layer lies between a model input and it."""
        flags = dict(flags)
        for node in nodes:
            if node.is_input:
                continue
            out = _reads_image(node, flags) and not _is_feature_layer(node.operation)
            for tensor in node.outputs:
                flags[id(tensor)] = out
        return flags

    def _plan_folds(self, nodes, model_nodes, consumers, flags):
        """Which convolutions are replaced, and which ZeroPadding2D layers fold into them."""
        calls = {}
        for node in nodes:
            calls[id(node.operation)] = calls.get(id(node.operation), 0) + 1
        replaced, paddings = {}, {}
        for node in nodes:
            layer = node.operation
            if node.is_input or id(layer) in replaced:
                continue
            if not self._wants_replacement(layer, is_stem=_reads_image(node, flags)):
                continue
            padding_layer = None
            if self._folds_padding() and calls[id(layer)] == 1 and len(node.input_tensors) == 1:
                (source,) = node.input_tensors
                pad_node = _producer(source)
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
        return {"replaced": replaced, "paddings": paddings}

    def _new_operation(self, operation, node, prefix, flags, folded, copies):
        if id(operation) in folded["replaced"]:
            padding_layer = folded["replaced"][id(operation)]
            new = self._new_conv(operation, prefix, padding_layer)
            copies.append(("replaced", operation, new, padding_layer))
            return new
        if isinstance(operation, keras.Model):
            return self._nested(operation, prefix, _reads_image(node, flags))
        new = _clone_layer(operation)
        copies.append(("cloned", operation, new, None))
        return new

    def _copy_weights(self, copies, prefix):
        for kind, old, new, padding_layer in copies:
            if kind == "replaced":
                self._record_replacement(old, new, prefix, padding_layer)
            elif isinstance(old, keras.layers.Layer) and old.weights:
                new.set_weights(old.get_weights())

    # ---------------------------------------------------------------------------- attention
    def _insert_attention(self, node, args, model_nodes, prefix, taken_names):
        operation = node.operation
        old_inputs = list(node.input_tensors)
        if len(old_inputs) != 2:
            raise ValueError(
                "An Add before which attention goes must have exactly two inputs (one "
                "shortcut, one residual branch). Received: "
                f"{prefix}{operation.name!r} with {len(old_inputs)} inputs"
            )
        decision = _residual_input(old_inputs[0], old_inputs[1], model_nodes)
        if isinstance(decision, str):
            self.report.skipped_adds.append(SkippedAdd(prefix + operation.name, decision))
            return args
        if decision is None:
            raise ValueError(
                "Cannot tell the residual branch from the shortcut of an Add: both inputs are "
                "equally many layers away from their nearest common ancestor. Received: "
                f"{prefix}{operation.name!r} with inputs from {_producer_name(old_inputs[0])!r} "
                f"and {_producer_name(old_inputs[1])!r}"
            )
        branch_index, rule = decision
        old_branch = old_inputs[branch_index]
        channels = old_branch.shape[-1]
        if channels is None:
            raise ValueError(
                "Attention needs a known channel count (last axis) on the residual branch. "
                f"Received: shape {old_branch.shape} before {prefix}{operation.name!r}"
            )
        module = self.attention(int(channels))
        if not isinstance(module, keras.layers.Layer):
            raise ValueError(
                f"`attention` must return a keras Layer. Received: attention({channels}) "
                f"returned {module!r}"
            )
        module.name = _unique_name(f"{operation.name}_attention", taken_names)
        taken_names.add(module.name)

        new_inputs = _add_arguments(operation, args)
        new_inputs[branch_index] = module(new_inputs[branch_index])
        self.report.inserted.append(
            InsertedAttention(
                name=prefix + module.name,
                add=prefix + operation.name,
                branch=prefix + _producer_name(old_branch),
                shortcut=prefix + _producer_name(old_inputs[1 - branch_index]),
                channels=int(channels),
                rule=rule,
            )
        )
        return _pack_add_arguments(operation, args, new_inputs)


def _add_arguments(operation, args):
    """The two new input tensors of an add call, as a list."""
    if isinstance(operation, keras.layers.Add):
        return list(args[0])
    return list(args[:2])


def _pack_add_arguments(operation, args, new_inputs):
    if isinstance(operation, keras.layers.Add):
        return (type(args[0])(new_inputs), *args[1:])
    return (*new_inputs, *args[2:])


def _unique_name(name, taken):
    candidate, suffix = name, 1
    while candidate in taken:
        candidate = f"{name}_{suffix}"
        suffix += 1
    return candidate


def _distances_up(tensor, model_nodes):
    """id(ancestor tensor) -> fewest layers between it and `tensor` (0 for `tensor` itself)."""
    distances = {id(tensor): 0}
    frontier = [tensor]
    while frontier:
        next_frontier = []
        for current in frontier:
            node = _producer(current)
            if node is None or node.is_input or id(node) not in model_nodes:
                continue
            for parent in node.input_tensors:
                if id(parent) not in distances:
                    distances[id(parent)] = distances[id(current)] + 1
                    next_frontier.append(parent)
        frontier = next_frontier
    return distances


def _residual_input(a, b, model_nodes):
    """Index of the residual-branch input of Add(a, b) and the rule used.

    Returns a reason string when the add is not residual, None when the two inputs are equally
    far from their nearest common ancestor.
    """
    if a is b:
        return "both inputs are the same tensor"
    up_a = _distances_up(a, model_nodes)
    up_b = _distances_up(b, model_nodes)
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
