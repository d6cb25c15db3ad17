"""Portable-ops mode: the formulation a layer traces when it is being exported.

Some layers train fastest with ops that deployment runtimes lack (XLA-compiled functions with
custom gradients, `tf.roll`, bitcasts, complex numbers). Inside `portable_ops()` they trace an
inference formulation built from ops that TFLite's builtin set and ONNX both have; outside it
they trace their training formulation. The two compute the same outputs (tested per layer).
`keras_structconv.export` traces models inside this context.

Example:

```python
with portable_ops():
    concrete = tf.function(model).get_concrete_function(tf.TensorSpec((1, 32, 32, 3)))
```
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

__all__ = ["portable_ops", "portable_ops_enabled"]

_state = threading.local()


@contextlib.contextmanager
def portable_ops(enabled: bool = True) -> Iterator[None]:
    """Within this context (in this thread), layers trace their portable inference path."""
    previous = getattr(_state, "enabled", False)
    _state.enabled = enabled
    try:
        yield
    finally:
        _state.enabled = previous


def portable_ops_enabled() -> bool:
    """Whether layers being traced now must use only portable (TFLite builtin / ONNX) ops."""
    return getattr(_state, "enabled", False)
