"""The operators' hyper-parameters, declared per stage as conditional KerasTuner choices.

For each stage (or once for the whole network with `per_stage=False`):

- `<stage>conv`: "vanilla", "psconv" or "treeconv" (those asked for and possible there);
  - psconv: `ps_interval`, the cyclic interval t in {2, 4, 8} (PSConv, Table 3; t = 1 is the
    vanilla conv) among the divisors of every replaced convolution's input and output widths;
    at t = 4, `ps_pattern`, one of Table 4's dilation patterns (1,2,1,4) (the paper's choice),
    (1,2,1,1), (1,4,1,1), (1,2,1,2), (1,2,4,8); other intervals use Table 3's rule (slot 1
    dilated by 2, the others by 1);
  - treeconv: `tree_variant` ("paper"; "reference" only where every convolution keeps its width
    and some depth d has d + 1 dividing it), then `tree_depth` in 1..4 (TreeConv, Table 1) or
    `tree_reference_depth` among the depths the reference variant allows;
- `<stage>attention`: "none" or "tam", then `tam_group_size` in {2, 4, 8, 16, 32, 64} (the TAM
  paper's §3.1 ablation) among the divisors of every module's channels;
- AOGNetCIFAR: `aog_primitives` N in {2, 3, 4} (N must divide every block width, laterals on)
  and `aog_prune` in {0, 1, 2} (full grammar; AOGNet §3.2's pruning, keeping left <= right
  or left >= right splits).

Defaults are the papers' choices (PSConv t = 4, (1,2,1,4); TreeConv depth 3; TAM g = 2; the
AOGNetCIFAR preset), so `hypermodel.build(keras_tuner.HyperParameters())` builds those.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import keras

from keras_structconv.layers import PSConv2D, TreeAttention, TreeConv2D
from keras_structconv.layers.conv_factory import ConvFactory
from keras_structconv.layers.ps_conv import default_dilation_pattern
from keras_structconv.models import aognet
from keras_structconv.tuning.backbones import BackboneLayout, ConvSite

__all__ = [
    "AOG_PRIMITIVES",
    "AOG_PRUNE_MODES",
    "CYCLIC_INTERVALS",
    "OPERATORS",
    "PS_PATTERNS",
    "TAM_GROUP_SIZES",
    "TREE_DEPTHS",
    "OperatorPlan",
    "StageChoice",
    "declare_operators",
    "parse_operators",
]

OPERATORS = ("psconv", "treeconv", "tam", "aog")
CYCLIC_INTERVALS = (2, 4, 8)
PS_PATTERNS = ("1,2,1,4", "1,2,1,1", "1,4,1,1", "1,2,1,2", "1,2,4,8")
TREE_DEPTHS = (1, 2, 3, 4)
TAM_GROUP_SIZES = (2, 4, 8, 16, 32, 64)
AOG_PRIMITIVES = (2, 3, 4)
AOG_PRUNE_MODES = (0, 1, 2)


@dataclasses.dataclass(frozen=True)
class StageChoice:
    """The operators chosen for one stage (None where a choice does not apply)."""

    conv: str = "vanilla"
    ps_interval: int | None = None
    ps_pattern: tuple[int, ...] | None = None
    tree_variant: str | None = None
    tree_depth: int | None = None
    attention: str = "none"
    tam_group_size: int | None = None
    aog_primitives: int | None = None
    aog_prune: int | None = None

    def describe(self) -> str:
        parts = []
        if self.conv == "psconv":
            pattern = ",".join(map(str, self.ps_pattern))
            parts.append(f"ps t={self.ps_interval} ({pattern})")
        elif self.conv == "treeconv":
            variant = "" if self.tree_variant == "paper" else f" {self.tree_variant}"
            parts.append(f"tree d={self.tree_depth}{variant}")
        if self.attention == "tam":
            parts.append(f"tam g={self.tam_group_size}")
        if self.aog_primitives is not None:
            parts.append(f"aog N={self.aog_primitives} prune={self.aog_prune}")
        return " + ".join(parts) or "vanilla"


def parse_operators(operators: str | Iterable[str]) -> tuple[str, ...]:
    """`"psconv,tam"` or `["psconv", "tam"]` -> `("psconv", "tam")`, checked.

    Raises:
        ValueError: an unknown or repeated name (the message lists the valid ones).

    Example:

    >>> parse_operators("psconv, tam")
    ('psconv', 'tam')
    """
    names = operators.split(",") if isinstance(operators, str) else list(operators)
    names = [name.strip() for name in names if name.strip()]
    unknown = [name for name in names if name not in OPERATORS]
    if unknown or not names or len(set(names)) != len(names):
        raise ValueError(
            f"`operators` must be distinct names among {', '.join(OPERATORS)}. "
            f"Received: operators={operators!r}"
        )
    return tuple(names)


# ------------------------------------------------------------------------- valid choices
def ps_intervals(sites: list[ConvSite]) -> list[int]:
    """Cyclic intervals dividing the input and output widths of every site."""
    return [
        t for t in CYCLIC_INTERVALS
        if all(s.in_channels % t == 0 and s.filters % t == 0 for s in sites)
    ]


def tree_reference_depths(sites: list[ConvSite]) -> list[int]:
    """Depths the reference TreeConv2D allows at every site (width kept, divisible by d+1)."""
    return [
        d for d in TREE_DEPTHS
        if all(s.in_channels == s.filters and s.filters % (d + 1) == 0 for s in sites)
    ]


def tam_group_sizes(channel_counts: list[int]) -> list[int]:
    """Group sizes dividing the channels of every attention module."""
    return [g for g in TAM_GROUP_SIZES if all(c % g == 0 and c >= g for c in channel_counts)]


def aog_primitive_counts(stages) -> list[int]:
    """N such that every block of the stages has a width divisible by N (laterals)."""
    valid = []
    for n in AOG_PRIMITIVES:
        widths = [
            w for s in stages
            for w in aognet.stage_widths(s.in_channels, s.out_channels, s.blocks, n)
        ]
        if all(w % n == 0 for w in widths) and all(s.in_channels >= n for s in stages):
            valid.append(n)
    return valid


# ----------------------------------------------------------------------------- declaring
def declare_operators(hp, layout: BackboneLayout, operators: tuple[str, ...], per_stage: bool):
    """Declares the operators' hyper-parameters in `hp`; returns the `OperatorPlan` of `hp`'s
    current values (defaults for the ones not set)."""
    groups = range(1, layout.num_stages + 1) if per_stage else [None]
    choices = {
        group: _declare_group(hp, layout, operators, group, _prefix(group)) for group in groups
    }
    if per_stage:
        return OperatorPlan(layout, choices)
    return OperatorPlan(layout, {s: choices[None] for s in range(1, layout.num_stages + 1)})


def _prefix(group):
    return "" if group is None else f"stage{group}_"


def _declare_group(hp, layout, operators, group, prefix):
    values = {}
    convs = layout.conv_sites_of(group)
    conv_ops = [op for op in ("psconv", "treeconv") if op in operators and convs]
    if conv_ops:
        values.update(_declare_conv(hp, prefix, convs, conv_ops))
    if "tam" in operators:
        values.update(_declare_attention(hp, prefix, layout.attention_sites_of(group)))
    if "aog" in operators:
        values.update(_declare_aog(hp, prefix, layout.aog_stages_of(group), group))
    return StageChoice(**values)


def _declare_conv(hp, prefix, sites, conv_ops):
    intervals = ps_intervals(sites)
    if not intervals and "psconv" in conv_ops:
        conv_ops.remove("psconv")
    if not conv_ops:
        return {}
    name = f"{prefix}conv"
    conv = hp.Choice(name, [*conv_ops, "vanilla"], default=conv_ops[0])
    values = {"conv": conv}
    if "psconv" in conv_ops:
        with hp.conditional_scope(name, ["psconv"]):
            t = hp.Choice(f"{prefix}ps_interval", intervals, default=4 if 4 in intervals else None)
            pattern = None
            if 4 in intervals:
                with hp.conditional_scope(f"{prefix}ps_interval", [4]):
                    pattern = hp.Choice(f"{prefix}ps_pattern", list(PS_PATTERNS))
        if conv == "psconv":
            values["ps_interval"] = t
            values["ps_pattern"] = (
                tuple(int(d) for d in pattern.split(",")) if t == 4 else default_dilation_pattern(t)
            )
    if "treeconv" in conv_ops:
        with hp.conditional_scope(name, ["treeconv"]):
            values.update(_declare_tree(hp, prefix, sites, chosen=conv == "treeconv"))
    return values


def _declare_tree(hp, prefix, sites, chosen):
    reference = tree_reference_depths(sites)
    if not reference:
        depth = hp.Int(f"{prefix}tree_depth", 1, 4, default=3)
        return {"tree_variant": "paper", "tree_depth": depth} if chosen else {}
    variant = hp.Choice(f"{prefix}tree_variant", ["paper", "reference"])
    with hp.conditional_scope(f"{prefix}tree_variant", ["paper"]):
        depth = hp.Int(f"{prefix}tree_depth", 1, 4, default=3)
    with hp.conditional_scope(f"{prefix}tree_variant", ["reference"]):
        reference_depth = hp.Choice(
            f"{prefix}tree_reference_depth", reference, default=3 if 3 in reference else None
        )
    if not chosen:
        return {}
    return {"tree_variant": variant, "tree_depth": depth if variant == "paper" else reference_depth}


def _declare_attention(hp, prefix, sites):
    sizes = tam_group_sizes([s.channels for s in sites])
    if not sites or not sizes:
        return {}
    name = f"{prefix}attention"
    attention = hp.Choice(name, ["tam", "none"])
    with hp.conditional_scope(name, ["tam"]):
        group_size = hp.Choice(f"{prefix}tam_group_size", sizes, default=sizes[0])
    return {"attention": attention, "tam_group_size": group_size if attention == "tam" else None}


def _declare_aog(hp, prefix, stages, group):
    counts = aog_primitive_counts(stages)
    if not stages or not counts:
        return {}
    preset_prune = aognet.AOGNET_CIFAR["prune_modes"][group - 1] if group is not None else 1
    primitives = hp.Choice(
        f"{prefix}aog_primitives", counts, default=4 if 4 in counts else counts[-1]
    )
    prune = hp.Choice(f"{prefix}aog_prune", list(AOG_PRUNE_MODES), default=preset_prune)
    return {"aog_primitives": primitives, "aog_prune": prune}


# ------------------------------------------------------------------------------ building
class OperatorPlan:
    """The operators chosen for every stage of a backbone, as factories for the builders and
    for `keras_structconv.convert`.

    Example:

    ```python
    hp = keras_tuner.HyperParameters()
    plan = StructconvHyperModel("ResNet20", "psconv,tam").plan(hp)  # the papers' defaults
    plan.describe()  # 'all: ps t=4 (1,2,1,4) + tam g=2'
    model = keras_structconv.models.ResNet20(
        conv=plan.conv_factory(), attention=plan.attention_factory())
    ```
    """

    def __init__(self, layout: BackboneLayout, stages: dict[int, StageChoice]):
        self.layout = layout
        self.stages = stages
        self._conv_stage = {site.name: site.stage for site in layout.conv_sites}

    def describe(self) -> str:
        """e.g. `"s1 ps t=4 (1,2,1,4) | s2 tree d=3 + tam g=2 | s3 vanilla"`."""
        distinct = {choice.describe() for choice in self.stages.values()}
        if len(distinct) == 1:
            return f"all: {distinct.pop()}"
        return " | ".join(f"s{s} {c.describe()}" for s, c in sorted(self.stages.items()))

    def choice_for_conv(self, name: str) -> StageChoice:
        if name not in self._conv_stage:
            raise RuntimeError(
                f"Convolution {name!r} is not in the layout of {self.layout.backbone!r}: the "
                "model built differently from the probed one."
            )
        return self.stages[self._conv_stage[name]]

    def conv_factory(self):
        """`factory(template, zero_padding=None) -> Layer`, or None when all stages are vanilla."""
        convs = {c.conv for c in self.stages.values()}
        if convs <= {"vanilla"}:
            return None

        def build(template, zero_padding=None):
            return _conv_layer(self.choice_for_conv(template.name), template, zero_padding)

        # Folding lets TreeConv2D pad itself; the other choices then get the padding too.
        return ConvFactory(build, folds_zero_padding="treeconv" in convs)

    def select(self):
        """For `convert`: the convolutions whose stage does not keep the vanilla conv."""
        replaced = {
            site.name for site in self.layout.conv_sites
            if self.stages[site.stage].conv != "vanilla"
        }
        return lambda layer: layer.name in replaced

    def attention_factory(self):
        """`attention(channels) -> Layer` following the probed call order, or None without TAM."""
        if all(c.attention != "tam" for c in self.stages.values()):
            return None
        sites = self.layout.attention_sites
        calls = iter(range(len(sites) + 1))

        def attention(channels):
            index = next(calls)
            if index >= len(sites) or sites[index].channels != channels:
                raise RuntimeError(
                    f"Attention call {index} ({channels} channels) does not match the layout of "
                    f"{self.layout.backbone!r}: the model built differently from the probed one."
                )
            choice = self.stages[sites[index].stage]
            if choice.attention == "tam":
                return TreeAttention(group_size=choice.tam_group_size)
            return keras.layers.Identity()

        return attention

    def aog_config(self) -> dict | None:
        """`num_primitives` / `prune_modes` overrides for AOGNetCIFAR, or None."""
        if not self.layout.aog_stages:
            return None
        ordered = [self.stages[s.stage] for s in self.layout.aog_stages]
        preset = aognet.AOGNET_CIFAR
        return {
            "num_primitives": [
                c.aog_primitives or preset["num_primitives"][i] for i, c in enumerate(ordered)
            ],
            "prune_modes": [
                preset["prune_modes"][i] if c.aog_prune is None else c.aog_prune
                for i, c in enumerate(ordered)
            ],
        }


def _conv_layer(choice: StageChoice, template, zero_padding):
    """The layer standing for `template` (and for the folded `zero_padding`, if given)."""
    if choice.conv == "treeconv":
        return TreeConv2D.from_conv(
            template, depth=choice.tree_depth, variant=choice.tree_variant,
            zero_padding=zero_padding,
        )
    if choice.conv == "psconv":
        overrides = {}
        if zero_padding is not None:
            _check_symmetric(template, zero_padding)
            overrides["padding"] = "same"  # PSConv2D's 'same' pads symmetrically by (K-1)/2
        return PSConv2D.from_conv(
            template, cyclic_interval=choice.ps_interval, dilation_pattern=choice.ps_pattern,
            **overrides,
        )
    layer = template.__class__.from_config(template.get_config())
    if zero_padding is None:
        return layer
    pad = keras.layers.ZeroPadding2D(zero_padding, name=f"{template.name}_pad")
    return keras.Sequential([pad, layer], name=template.name)


def _check_symmetric(template, zero_padding):
    pad = (template.kernel_size[0] - 1) // 2
    if tuple(tuple(p) for p in zero_padding) != ((pad, pad), (pad, pad)):
        raise ValueError(
            f"PSConv2D folds only the symmetric padding of a {template.kernel_size} kernel. "
            f"Received: zero_padding={zero_padding!r} for {template.name!r}"
        )
