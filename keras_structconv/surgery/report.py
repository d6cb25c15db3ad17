"""What `keras_structconv.convert` changed: one record per replaced convolution, per inserted
attention module and per skipped add, gathered in a `ConvertReport` (`print(report)` gives one
line per change)."""

from __future__ import annotations

import dataclasses

import keras

__all__ = ["ConvertReport", "InsertedAttention", "ReplacedConv", "SkippedAdd", "describe_conv"]


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


def describe_conv(layer: keras.layers.Layer) -> str:
    """A convolution in one line: class, kernel, stride, padding, bias.

    Example:

    >>> describe_conv(keras.layers.Conv2D(8, 3, strides=2, padding="same"))
    'Conv2D 3x3 /2 same bias'
    """
    config = layer.get_config()
    kernel = "x".join(str(k) for k in config.get("kernel_size", ()))
    strides = config.get("strides", (1,))
    strides = str(strides[0]) if len(set(strides)) == 1 else "x".join(map(str, strides))
    bias = "bias" if config.get("use_bias") else "no bias"
    return f"{type(layer).__name__} {kernel} /{strides} {config.get('padding')} {bias}"
