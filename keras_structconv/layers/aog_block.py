"""AOGBlock: the AND-OR grammar building block of AOGNets.

Reference: Li, Song, Wu, "AOGNets: Compositional Grammatical Architectures for Deep Learning",
CVPR 2019 (arXiv:1711.05847), Sections 3.1-3.2 and 4.1. The grammar itself (nodes, pruning,
laterals, npaths) lives in `keras_structconv.aog`.

Definition. The `C_in` input channels and the `filters` output channels are each cut into
`num_primitives` (N) contiguous groups, sizes as even as possible with the first groups one larger
(`sizes[i % N] += 1` for `i < C`, see `near_equal_sizes`). Every node `v` of the grammar covers an
interval of groups and has the width of those output groups. Every node applies the same
bottleneck operation

    T(x_op, x_res) = ReLU(shortcut(x_res) + Dropout(BN(conv1x1(ReLU(BN(conv3x3(ReLU(BN(
                     conv1x1(x_op)))))))))),

middle width `max(4, round_half_up(width / 4))`, `shortcut` a 1x1 conv + BN when the input and
output widths differ (Terminal nodes only) else the identity, Dropout a `SpatialDropout2D` present
when `drop_rate > 0`. The node inputs are

- Terminal node over groups a..b: `x_op = x_res =` the input channels of groups a..b;
- AND node A with children L, R and lateral child A' (if any):
  `x_op = [f(L), f(R)] + f(A')`,
  `x_res = [f(L) * n(A)/n(L), f(R) * n(A)/n(R)] (+ f(A') * n(A)/n(A') when A and A' share no
  parent)`;
- OR node O with children u and lateral child O' (if any):
  `x_op = sum_u f(u) + f(O')`, `x_res = sum_u f(u) * n(O)/n(u) (+ f(O') * n(O)/n(O') when O and O'
  share no parent)`;

where `[., .]` concatenates channels and `n(v)` is the number of root-to-v paths (laterals
excluded): the weights undo the double counting of nodes reached by several paths (Section 4.1,
"Handling double-counting"). The block output is `ReLU(BN(f(root)))`. Blocks never stride (AOGNets
downsample in transitions between stages). All BatchNorms use `momentum=0.9, epsilon=1e-5`
(PyTorch's defaults); convolutions have no bias, and each starts from its own draw of the kernel
initializer.

Differences from the authors' release: AND children are concatenated left then right always (the
release takes some in Python-set order); Terminal nodes get no double-counting weight (the
release's `handle_tnode_dbl_cnt` option, off in its ImageNet configurations, is not provided).
"""

from __future__ import annotations

import itertools
from typing import Any

import keras

from keras_structconv import _validation, aog
from keras_structconv.layers._defaults import BN_EPSILON, BN_MOMENTUM, distinct_initializer
from keras_structconv.layers.batch_normalization import BatchNormalization

__all__ = ["AOGBlock", "AOGNodeOp", "bottleneck_width", "channel_slices", "near_equal_sizes"]

# Convolutions per node operation (conv1, conv2, conv3, shortcut_conv): each node's kernels take
# initializer draws `node_id * _CONVS_PER_NODE + k`, so no two kernels of a block start equal.
_CONVS_PER_NODE = 4


def bottleneck_width(width: int) -> int:
    """`max(4, round_half_up(width / 4))`, the middle width of a node operation."""
    return max(4, (width + 2) // 4)


def near_equal_sizes(total: int, parts: int) -> list[int]:
    """`total` split into `parts` sizes differing by at most one, the larger ones first
    (`sizes[i % parts] += 1` for `i < total`).

    >>> near_equal_sizes(10, 4)
    [3, 3, 2, 2]
    """
    base, extra = divmod(total, parts)
    return [base + (i < extra) for i in range(parts)]


def channel_slices(channels: int, num_groups: int) -> list[int]:
    """Boundaries `[0, s1, ..., channels]` of `num_groups` contiguous groups (first ones larger)."""
    return [0, *itertools.accumulate(near_equal_sizes(channels, num_groups))]


class AOGNodeOp(keras.layers.Layer):
    """The bottleneck operation `T(x_op, x_res)` of one AOG node (built by `AOGBlock`).

    Sublayers: `conv1`, `bn1`, `conv2`, `bn2`, `conv3`, `bn3`, `dropout` (when `drop_rate > 0`),
    and `shortcut_conv`, `shortcut_bn` when `in_channels != out_channels`. The convolutions draw
    their kernels from `distinct_initializer(kernel_initializer, first_draw + k)`, k = 0..3.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        drop_rate: float = 0.0,
        kernel_initializer: Any = "he_normal",
        kernel_regularizer: Any = None,
        kernel_constraint: Any = None,
        first_draw: int = 0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.drop_rate = drop_rate
        self.mid_channels = bottleneck_width(out_channels)
        common = {
            "use_bias": False,
            "kernel_regularizer": kernel_regularizer,
            "kernel_constraint": kernel_constraint,
            "dtype": self.dtype_policy,
        }
        draws = itertools.count(first_draw)

        def conv(filters, size, name):
            initializer = distinct_initializer(kernel_initializer, next(draws))
            return keras.layers.Conv2D(
                filters, size, padding="same", name=name, kernel_initializer=initializer, **common
            )

        def norm(name):
            return BatchNormalization(
                momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name, dtype=self.dtype_policy
            )

        self.conv1, self.bn1 = conv(self.mid_channels, 1, "conv1"), norm("bn1")
        self.conv2, self.bn2 = conv(self.mid_channels, 3, "conv2"), norm("bn2")
        self.conv3, self.bn3 = conv(out_channels, 1, "conv3"), norm("bn3")
        self.dropout = None
        if drop_rate > 0:
            self.dropout = keras.layers.SpatialDropout2D(
                drop_rate, name="dropout", dtype=self.dtype_policy
            )
        self.shortcut_conv = self.shortcut_bn = None
        if in_channels != out_channels:
            self.shortcut_conv = conv(out_channels, 1, "shortcut_conv")
            self.shortcut_bn = norm("shortcut_bn")

    def build(self, op_shape, residual_shape=None):
        spatial = tuple(op_shape[:-1])
        for layer, channels in (
            (self.conv1, self.in_channels),
            (self.bn1, self.mid_channels),
            (self.conv2, self.mid_channels),
            (self.bn2, self.mid_channels),
            (self.conv3, self.mid_channels),
            (self.bn3, self.out_channels),
        ):
            layer.build(spatial + (channels,))
        if self.shortcut_conv is not None:
            self.shortcut_conv.build(spatial + (self.in_channels,))
            self.shortcut_bn.build(spatial + (self.out_channels,))

    def call(self, x_op, x_res, training=None):
        y = keras.ops.relu(self.bn1(self.conv1(x_op), training=training))
        y = keras.ops.relu(self.bn2(self.conv2(y), training=training))
        y = self.bn3(self.conv3(y), training=training)
        if self.dropout is not None:
            y = self.dropout(y, training=training)
        if self.shortcut_conv is not None:
            x_res = self.shortcut_bn(self.shortcut_conv(x_res), training=training)
        return keras.ops.relu(x_res + y)

    def compute_output_shape(self, op_shape, residual_shape=None):
        return tuple(op_shape[:-1]) + (self.out_channels,)


@keras.saving.register_keras_serializable(package="keras_structconv")
class AOGBlock(keras.layers.Layer):
    """AND-OR grammar building block (AOGNets, CVPR 2019); stride 1, NHWC.

    Every node of the grammar of `keras_structconv.aog.build_grammar(num_primitives, prune,
    lateral)` gets a bottleneck operation; Terminal nodes read channel slices of the input, AND
    nodes concatenate their children, OR nodes sum them, lateral children are added, and
    double-counted paths are reweighted on the residual path (see the module docstring). The
    output is `ReLU(BN(root))`.

    Args:
        filters: output channels (>= `num_primitives`; a multiple of it when `lateral`).
        num_primitives: N, the number of channel groups (>= 1; the input needs >= N channels).
        prune: None (full grammar), 1 or 2 (pruning of syntactically symmetric splits: keep
            left <= right, resp. left >= right). 0 also means None.
        lateral: add lateral connections between same-length AND nodes and OR nodes.
        drop_rate: rate of the `SpatialDropout2D` after the last BN of every node (0 = none).
        kernel_initializer, kernel_regularizer, kernel_constraint: of every convolution.
        **kwargs: base `Layer` arguments (`name`, `dtype`, ...).

    Sublayers are named `node_<id>_<kind>` (ids as in `block.grammar.nodes`), each holding
    `conv1`, `bn1`, `conv2`, `bn2`, `conv3`, `bn3` (and `shortcut_conv`, `shortcut_bn`); the
    output BatchNorm is `output_bn`. `block.node_op(node_id)` returns a node's operation.

    Input shape: `(batch, height, width, channels)`.
    Output shape: `(batch, height, width, filters)`.

    Example:

    >>> block = AOGBlock(80, num_primitives=2, prune=1)
    >>> block(keras.ops.ones((1, 8, 8, 32))).shape
    (1, 8, 8, 80)
    >>> block.count_params()  # trainable + BN moving statistics
    32960

    Reference: Li et al., "AOGNets: Compositional Grammatical Architectures for Deep Learning",
    CVPR 2019, Sections 3.1-3.2 (grammar, node operations) and 4.1 (double counting),
    https://arxiv.org/abs/1711.05847.
    """

    def __init__(
        self,
        filters: int,
        num_primitives: int,
        prune: int | None = None,
        lateral: bool = True,
        drop_rate: float = 0.0,
        kernel_initializer: Any = "he_normal",
        kernel_regularizer: Any = None,
        kernel_constraint: Any = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.grammar = aog.build_grammar(num_primitives, prune=prune, lateral=lateral)
        # every primitive needs at least one channel
        filters = _validation.int_in_range(filters, "filters", num_primitives)
        if lateral and filters % num_primitives:
            raise ValueError(
                "With `lateral=True`, `filters` must be divisible by `num_primitives`: a lateral "
                "connection adds two nodes covering the same number of primitives, which must have "
                f"the same width. Received: filters={filters}, num_primitives={num_primitives}"
            )
        if not 0.0 <= drop_rate < 1.0:
            raise ValueError(f"`drop_rate` must be in [0, 1). Received: drop_rate={drop_rate!r}")
        self.filters = filters
        self.num_primitives = num_primitives
        self.prune = prune
        self.lateral = lateral
        self.drop_rate = drop_rate
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.input_spec = keras.layers.InputSpec(ndim=4)
        self._plan = self._residual_plan()
        self.node_ops = []
        self.output_bn = None

    def _residual_plan(self):
        """Per node: the children feeding its op input, and their residual weights (None = not
        added to the residual), in the order used by `call`."""
        plan = {}
        for node in self.grammar:
            inputs = [(c, self.grammar.double_counting_weight(node.id, c)) for c in node.children]
            if node.lateral is not None:
                in_residual = not self.grammar.shares_parent(node.id, node.lateral)
                weight = self.grammar.double_counting_weight(node.id, node.lateral)
                inputs.append((node.lateral, weight if in_residual else None))
            plan[node.id] = inputs
        return plan

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None or channels < self.num_primitives:
            raise ValueError(
                "The input of AOGBlock needs a known number of channels >= `num_primitives`. "
                f"Received: input_shape={tuple(input_shape)}, num_primitives={self.num_primitives}"
            )
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: channels})
        self._in_bounds = channel_slices(channels, self.num_primitives)
        self._out_bounds = channel_slices(self.filters, self.num_primitives)
        spatial = tuple(input_shape[:-1])
        for node in self.grammar:
            out_width = self._width(self._out_bounds, node)
            # Terminal nodes read the block input; AND/OR nodes keep their own width
            is_terminal = node.kind == aog.TERMINAL
            in_width = self._width(self._in_bounds, node) if is_terminal else out_width
            op = AOGNodeOp(
                in_width,
                out_width,
                drop_rate=self.drop_rate,
                kernel_initializer=self.kernel_initializer,
                kernel_regularizer=self.kernel_regularizer,
                kernel_constraint=self.kernel_constraint,
                first_draw=node.id * _CONVS_PER_NODE,
                name=f"node_{node.id}_{node.kind}",
                dtype=self.dtype_policy,
            )
            op.build(spatial + (in_width,))
            self.node_ops.append(op)
        self.output_bn = BatchNormalization(
            momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name="output_bn", dtype=self.dtype_policy
        )
        self.output_bn.build(spatial + (self.filters,))

    @staticmethod
    def _width(bounds, node):
        return bounds[node.end + 1] - bounds[node.start]

    def node_op(self, node_id: int) -> AOGNodeOp:
        """The `AOGNodeOp` of grammar node `node_id`."""
        return self.node_ops[node_id]

    def call(self, inputs, training=None):
        outputs = {}
        for node_id in self.grammar.topological_order():
            node = self.grammar.nodes[node_id]
            if node.kind == aog.TERMINAL:
                start, end = self._in_bounds[node.start], self._in_bounds[node.end + 1]
                x_op = x_res = inputs[..., start:end]
            else:
                x_op, x_res = self._combine(node, outputs)
            outputs[node_id] = self.node_ops[node_id](x_op, x_res, training=training)
        root = self.output_bn(outputs[self.grammar.root.id], training=training)
        return keras.ops.relu(root)

    def _combine(self, node, outputs):
        """(op input, residual input) of an AND node (concat) or OR node (sum), laterals added."""
        plan = self._plan[node.id]
        syntactic, lateral = plan[: len(node.children)], plan[len(node.children) :]
        merge = _concat if node.kind == aog.AND else _add_all
        x_op = merge([outputs[child] for child, _ in syntactic])
        if all(weight == 1.0 for _, weight in syntactic):
            x_res = x_op  # no double counting below this node: one tensor serves both paths
        else:
            x_res = merge([_scaled(outputs[child], weight) for child, weight in syntactic])
        for child, weight in lateral:
            residual_is_op = x_res is x_op
            x_op = x_op + outputs[child]
            if weight is None:  # the two nodes share a parent: the lateral skips the residual
                continue
            if residual_is_op and weight == 1.0:
                x_res = x_op
            else:
                x_res = x_res + _scaled(outputs[child], weight)
        return x_op, x_res

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "num_primitives": self.num_primitives,
                "prune": self.prune,
                "lateral": self.lateral,
                "drop_rate": self.drop_rate,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
            }
        )
        return config


def _scaled(tensor, weight):
    return tensor if weight == 1.0 else tensor * weight


def _concat(tensors):
    return keras.ops.concatenate(tensors, axis=-1)


def _add_all(tensors):
    total = tensors[0]
    for tensor in tensors[1:]:
        total = total + tensor
    return total
