"""The geometry of a tree-structured attention module: its 1x1 convolution levels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

__all__ = ["Level", "level_params", "param_offset", "tree_levels"]


class Level(NamedTuple):
    """One 1x1 convolution of the tree.

    Attributes:
        in_channels: channels entering the level.
        fan_in: consecutive input channels each output channel reads (the group size, or all the
            remaining channels for the final 1x1 convolution).
        out_channels: channels leaving the level.
        prelu: whether a per-channel PReLU follows (every level but the one reaching 1 channel).
    """

    in_channels: int
    fan_in: int
    out_channels: int
    prelu: bool


def tree_levels(channels: int, group_size: int) -> list[Level]:
    """The levels of a module over `channels` channels with group size `group_size`.

    Grouped levels are applied while the channel count `n` is divisible by the group size and
    greater than 1 (exact integer arithmetic); a final 1x1 convolution takes what is left to 1.

    Example:

    >>> [tuple(level) for level in tree_levels(80, 2)[-2:]]
    [(10, 2, 5, True), (5, 5, 1, False)]
    """
    levels = []
    n = channels
    while n % group_size == 0 and n > 1:
        levels.append(Level(n, group_size, n // group_size, n // group_size > 1))
        n //= group_size
    if n > 1:
        levels.append(Level(n, n, 1, False))
    return levels


def level_params(levels: Sequence[Level], params: Sequence[Any]) -> list[tuple[Any, Any, Any]]:
    """Flat `[k0, b0, (a0), k1, b1, (a1), ...]` -> per level `(kernel, bias, alpha or None)`."""
    out, i = [], 0
    for level in levels:
        alpha = params[i + 2] if level.prelu else None
        out.append((params[i], params[i + 1], alpha))
        i += 3 if level.prelu else 2
    return out


def param_offset(levels: Sequence[Level], index: int) -> int:
    """Position of level `index`'s kernel in the flat parameter list."""
    return sum(3 if level.prelu else 2 for level in levels[:index])
