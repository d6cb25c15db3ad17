"""The model registry: builder name -> builder function, as in timm.

Each public builder is a plain function with its own signature and docstring, decorated with
`@register_model`; its registry name is the default of its `name` argument (the name of the model
it builds, e.g. "ps_resnet20"). `list_models()` lists them, `create_model(name, **kwargs)` builds
one, `structconv models` prints them.

Example:

```python
keras_structconv.models.list_models("ps_*")          # ['ps_resnet101', 'ps_resnet20', ...]
model = keras_structconv.models.create_model("ps_resnet20", classes=10)
```
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["create_model", "get_builder", "list_models", "register_model"]

Builder = TypeVar("Builder", bound=Callable[..., Any])
_BUILDERS: dict[str, Callable[..., Any]] = {}


def _registry_name(builder: Callable[..., Any]) -> str:
    parameter = inspect.signature(builder).parameters.get("name")
    if parameter is None or not isinstance(parameter.default, str):
        raise ValueError(
            "A registered builder must have a `name` argument with a string default (the "
            f"registry name). Received: {builder.__qualname__}"
        )
    return parameter.default


def register_model(builder: Builder) -> Builder:
    """Register `builder` under the default of its `name` argument; return it unchanged."""
    name = _registry_name(builder)
    if name in _BUILDERS and _BUILDERS[name] is not builder:
        raise ValueError(
            f"Model name {name!r} is registered already by "
            f"{_BUILDERS[name].__module__}.{_BUILDERS[name].__qualname__}. "
            f"Received: {builder.__module__}.{builder.__qualname__}"
        )
    _BUILDERS[name] = builder
    return builder


def list_models(pattern: str = "*") -> list[str]:
    """The registered names matching the shell-style `pattern`, sorted."""
    return sorted(name for name in _BUILDERS if fnmatch.fnmatchcase(name, pattern))


def get_builder(name: str) -> Callable[..., Any]:
    """The builder registered as `name`; the error lists the closest names."""
    if name not in _BUILDERS:
        close = difflib.get_close_matches(name, list(_BUILDERS), n=5, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(
            f"`name` must be a registered model ({len(_BUILDERS)} are: see "
            f"keras_structconv.models.list_models()).{hint} Received: name={name!r}"
        )
    return _BUILDERS[name]


def create_model(name: str, **kwargs: Any) -> Any:
    """`get_builder(name)(**kwargs)`: the model registered as `name`."""
    return get_builder(name)(**kwargs)
