"""Backbones a search can start from, and where their operators sit (the layout).

A backbone is one of our builders that take `conv=` / `attention=` factories (the CIFAR
ResNets, the ImageNet ResNets), any `keras.applications` model (rewritten with
`keras_structconv.convert`), or `AOGNetCIFAR` (whose blocks are searched through their grammar).

The layout of a backbone is read off the vanilla model once: every convolution the factories
would replace (a "conv site": the 3×3 `Conv2D`s but the stem), every residual add an attention
module would precede (an "attention site", in the order the factory is called), each with its
channels and output size. Sites are grouped into stages by their output resolution (stage 1 is
the finest), so that hyper-parameters can differ from stage to stage.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

import keras

from keras_structconv import models
from keras_structconv.models import aognet
from keras_structconv.surgery import convert

__all__ = [
    "APPLICATIONS_PREFIX",
    "AttentionSite",
    "Backbone",
    "BackboneLayout",
    "ConvSite",
    "backbone_names",
    "get_backbone",
]

APPLICATIONS_PREFIX = "keras.applications."

# Our builders with `conv=` and `attention=` factories (keras_structconv.models).
_BUILDERS = {
    "ResNet20": models.ResNet20,
    "ResNet56": models.ResNet56,
    "CifarResNet18": models.CifarResNet18,
    "CifarResNet50": models.CifarResNet50,
    "ResNet18": models.ResNet18,
    "ResNet50": models.ResNet50,
    "ResNet101": models.ResNet101,
}
_AOG = "AOGNetCIFAR"


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Site:
    """A place of the backbone: its layer name, output size (height, width) and stage (0: not
    assigned yet; stages are numbered by decreasing size)."""

    name: str
    size: tuple[int, int]
    stage: int = 0


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConvSite(_Site):
    """A convolution an operator can replace: its layer name, channels, stride, output size."""

    in_channels: int
    filters: int
    strides: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class AttentionSite(_Site):
    """A residual add an attention module can precede (`index`: the factory's call order)."""

    index: int
    channels: int


@dataclasses.dataclass(frozen=True)
class AOGStage:
    """A stage of AOGNetCIFAR: input/output channels and number of blocks."""

    in_channels: int
    out_channels: int
    blocks: int
    stage: int


@dataclasses.dataclass(frozen=True)
class BackboneLayout:
    """Where the operators of a backbone sit, grouped into stages 1..`num_stages`."""

    backbone: str
    conv_sites: tuple[ConvSite, ...] = ()
    attention_sites: tuple[AttentionSite, ...] = ()
    aog_stages: tuple[AOGStage, ...] = ()

    @property
    def num_stages(self) -> int:
        stages = [s.stage for s in (*self.conv_sites, *self.attention_sites, *self.aog_stages)]
        return max(stages, default=0)

    def conv_sites_of(self, stage: int | None) -> list[ConvSite]:
        """The conv sites of `stage` (all of them for None)."""
        return [s for s in self.conv_sites if stage is None or s.stage == stage]

    def attention_sites_of(self, stage: int | None) -> list[AttentionSite]:
        return [s for s in self.attention_sites if stage is None or s.stage == stage]

    def aog_stages_of(self, stage: int | None) -> list[AOGStage]:
        return [s for s in self.aog_stages if stage is None or s.stage == stage]


@dataclasses.dataclass(frozen=True)
class Backbone:
    """A named backbone: `kind` is "builder", "application" or "aog"."""

    name: str
    kind: str
    builder: Callable[..., keras.Model]

    @property
    def supports(self) -> tuple[str, ...]:
        """The operators this backbone can take."""
        return ("aog",) if self.kind == "aog" else ("psconv", "treeconv", "tam")

    def build(
        self,
        input_shape: tuple[int, int, int],
        classes: int,
        conv: Callable | None = None,
        attention: Callable | None = None,
        select: Callable | None = None,
        aog: dict | None = None,
    ) -> keras.Model:
        """The backbone with its convolutions made by `conv`, attention by `attention`.

        `select` (application backbones only) picks the convolutions `convert` hands to `conv`;
        `aog` (AOGNetCIFAR only) overrides `num_primitives` / `prune_modes`.
        """
        if self.kind == "aog":
            config = {**aognet.AOGNET_CIFAR, **(aog or {})}
            return aognet.AOGNet(**config, input_shape=input_shape, classes=classes)
        if self.kind == "builder":
            return self.builder(
                input_shape=input_shape, classes=classes, conv=conv, attention=attention
            )
        model = self.builder(weights=None, input_shape=input_shape, classes=classes)
        if conv is None and attention is None:
            return model
        return convert(model, conv=conv, attention=attention, select=select)

    def layout(self, input_shape: tuple[int, int, int], classes: int) -> BackboneLayout:
        """Builds the model once with recording factories and reads off its sites."""
        if self.kind == "aog":
            return _aog_layout(self.name)
        recorder = _SiteRecorder()
        model = self.build(input_shape, classes, conv=recorder.conv, attention=recorder.attention)
        return _grouped_layout(self.name, model, recorder)


def backbone_names() -> list[str]:
    """The names `get_backbone` accepts (`<Name>`: any `keras.applications` model)."""
    return [*_BUILDERS, _AOG, APPLICATIONS_PREFIX + "<Name>", "package.module:builder"]


def _imported_backbone(path: str) -> Backbone:
    module_name, _, attribute = path.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(
            f"Cannot import the backbone {path!r} ({error}). Received: backbone={path!r}"
        ) from None
    if isinstance(found, Backbone):
        return get_backbone(found)
    if callable(found):
        return Backbone(attribute, "builder", found)
    raise ValueError(f"{path!r} is neither a Backbone nor a builder. Received: backbone={path!r}")


def get_backbone(name: str | Backbone) -> Backbone:
    """The backbone called `name`.

    Args:
        name: one of our builders ("ResNet20", "ResNet56", "CifarResNet18", "CifarResNet50",
            "ResNet18", "ResNet50", "ResNet101"), "AOGNetCIFAR", or
            "keras.applications.<Name>" (e.g. "keras.applications.MobileNetV2"); or a
            `Backbone` (returned as is), e.g. `Backbone("MyNet", "builder", my_builder)` for a
            builder taking `input_shape=`, `classes=`, `conv=` and `attention=` factories; or
            "package.module:attribute" naming such a `Backbone` or builder (imported).

    Raises:
        ValueError: for an unknown name, listing the valid ones.

    Example:

    >>> get_backbone("ResNet20").kind
    'builder'
    """
    if isinstance(name, Backbone):
        if name.kind not in ("builder", "application", "aog"):
            raise ValueError(
                "`Backbone.kind` must be 'builder', 'application' or 'aog'. "
                f"Received: kind={name.kind!r}"
            )
        return name
    if name in _BUILDERS:
        return Backbone(name, "builder", _BUILDERS[name])
    if isinstance(name, str) and ":" in name:
        return _imported_backbone(name)
    if name == _AOG:
        return Backbone(name, "aog", models.AOGNetCIFAR)
    if isinstance(name, str) and name.startswith(APPLICATIONS_PREFIX):
        application = getattr(keras.applications, name[len(APPLICATIONS_PREFIX):], None)
        if callable(application):
            return Backbone(name, "application", application)
    raise ValueError(
        f"Unknown backbone. Valid names: {', '.join(backbone_names())} (e.g. "
        f"{APPLICATIONS_PREFIX}MobileNetV2). Received: backbone={name!r}"
    )


class _SiteRecorder:
    """Factories that keep the vanilla layers and record what they were called with."""

    def __init__(self):
        self.convs: list[keras.layers.Layer] = []
        self.attentions: list[tuple[int, keras.layers.Layer]] = []

    def conv(self, template: keras.layers.Layer) -> keras.layers.Layer:
        layer = template.__class__.from_config(template.get_config())
        self.convs.append(layer)
        return layer

    def attention(self, channels: int) -> keras.layers.Layer:
        layer = keras.layers.Identity()
        self.attentions.append((int(channels), layer))
        return layer


def _spatial(shape: Any) -> tuple[int, int]:
    return int(shape[1]), int(shape[2])


def _grouped_layout(name: str, model: keras.Model, recorder: _SiteRecorder) -> BackboneLayout:
    conv_sites = [
        ConvSite(
            name=layer.name,
            in_channels=int(layer.input.shape[-1]),
            filters=int(layer.filters),
            strides=int(layer.strides[0]),
            size=_spatial(layer.output.shape),
        )
        for layer in recorder.convs
    ]
    attention_sites = [
        AttentionSite(
            index=index, name=layer.name, channels=channels, size=_spatial(layer.output.shape)
        )
        for index, (channels, layer) in enumerate(recorder.attentions)
    ]
    del model  # only needed alive while the layers' outputs are read
    sizes = sorted({s.size for s in (*conv_sites, *attention_sites)}, key=lambda hw: -hw[0] * hw[1])
    stage_of = {size: index + 1 for index, size in enumerate(sizes)}
    return BackboneLayout(
        backbone=name,
        conv_sites=tuple(dataclasses.replace(s, stage=stage_of[s.size]) for s in conv_sites),
        attention_sites=tuple(
            dataclasses.replace(s, stage=stage_of[s.size]) for s in attention_sites
        ),
    )


def _aog_layout(name: str) -> BackboneLayout:
    config = aognet.AOGNET_CIFAR
    filters = config["filters"]
    stages = tuple(
        AOGStage(filters[index], filters[index + 1], config["blocks"][index], index + 1)
        for index in range(len(filters) - 1)
    )
    return BackboneLayout(backbone=name, aog_stages=stages)
