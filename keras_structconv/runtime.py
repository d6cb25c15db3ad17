"""The runtime facts that decide how fast the operators run, and advice from them.

On CPU the operators' speed depends most on whether TensorFlow uses oneDNN: TensorFlow turns it on
by default only on x86 CPUs with AVX-512 VNNI/BF16 or AMX (and on when `TF_ENABLE_ONEDNN_OPTS=1`).
Without it, grouped and dilated convolutions run on TensorFlow's own kernels, which are slower and
do not differentiate dilated convolutions, so the layers switch formulation (see each layer's
docstring). `structconv doctor` prints these facts.

Example:

```python
facts = keras_structconv.runtime.runtime_facts()
for line in keras_structconv.runtime.advice(facts):
    print(line)
```
"""

from __future__ import annotations

import os
import platform
import sys
import threading
import warnings
from typing import Any

import keras
import tensorflow as tf

from keras_structconv import _internals

__all__ = [
    "AllocatorPeak",
    "advice",
    "allocator_statistics_available",
    "cpu_flags",
    "cpu_model",
    "runtime_facts",
    "warn_once",
]

# TensorFlow's default CPU allocator keeps statistics only when oneDNN is on; its BFC allocator,
# chosen by this variable before TensorFlow is imported, keeps them in both settings.
BFC_ALLOCATOR_VARIABLE = "TF_CPU_ALLOCATOR_USE_BFC"

# The CPU features TensorFlow's oneDNN default looks at, and AVX2 (the build's baseline).
_FLAGS_OF_INTEREST = (
    "avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8",
)
_warned: set[str] = set()
_warned_lock = threading.Lock()


def _cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            return file.read()
    except OSError:
        return ""


def cpu_model() -> str:
    """The CPU's model name (Linux `/proc/cpuinfo`), else `platform.processor()`."""
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_flags() -> dict[str, bool]:
    """Whether the CPU has each instruction-set feature that matters to TensorFlow's oneDNN."""
    flags: set[str] = set()
    for line in _cpuinfo().splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
            break
    return {flag: flag in flags for flag in _FLAGS_OF_INTEREST}


def runtime_facts() -> dict[str, Any]:
    """Versions, oneDNN, CPU, threads and XLA settings of this process, as a flat dict."""
    return {
        "python": sys.version.split()[0],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "keras_backend": keras.config.backend(),
        "onednn": _internals.onednn_enabled(),
        "TF_ENABLE_ONEDNN_OPTS": _internals.onednn_setting(),
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cpu_count": os.cpu_count(),
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "xla_auto_jit": tf.config.optimizer.get_jit(),
        "TF_XLA_FLAGS": os.environ.get("TF_XLA_FLAGS", ""),
        "gpus": len(tf.config.list_physical_devices("GPU")),
    }


def advice(facts: dict[str, Any]) -> list[str]:
    """What to change for speed, from `runtime_facts()`; empty when nothing."""
    lines = []
    flags = facts["cpu_flags"]
    if not facts["onednn"]:
        has_avx512 = flags.get("avx512f", False)
        lines.append(
            "oneDNN is off: grouped and dilated convolutions (PSConv2D, GroupedConv2D, "
            "ResNeXt) run on TensorFlow's slower kernels. Set TF_ENABLE_ONEDNN_OPTS=1 before "
            "TensorFlow is imported"
            + ("" if has_avx512 else " (it works on AVX2 CPUs too: it is off by default only "
               "because this CPU has no AVX-512 VNNI/BF16 or AMX)")
            + "."
        )
    if facts["cpu_count"] and facts["intra_op_threads"] not in (0, facts["cpu_count"]):
        lines.append(
            f"TensorFlow uses {facts['intra_op_threads']} intra-op threads on "
            f"{facts['cpu_count']} CPUs; 0 (the default) uses them all."
        )
    if facts["keras_backend"] != "tensorflow":
        lines.append("KERAS_BACKEND must be 'tensorflow' for keras_structconv.")
    return lines


def allocator_statistics_available(device: str = "CPU:0") -> bool:
    """Whether TensorFlow's allocator on `device` reports current and peak bytes."""
    try:
        tf.config.experimental.reset_memory_stats(device)
    except (ValueError, tf.errors.InvalidArgumentError):
        return False
    return True


class AllocatorPeak:
    """The allocator's peak bytes above its level at entry, over a `with` block.

    TensorFlow's CPU allocator reports statistics when oneDNN is on, or when the process started
    with `TF_CPU_ALLOCATOR_USE_BFC=true` (set before TensorFlow is imported). Elsewhere entering
    the block raises `RuntimeError` saying so; nothing falls back to a different measure.
    Allocations under 256 KiB are not counted by TensorFlow's CPU statistics.

    Example:

    ```python
    with AllocatorPeak() as memory:
        step(features)
    print(memory.peak_bytes)
    ```
    """

    def __init__(self, device: str = "CPU:0"):
        self.device = device
        self.start_bytes = 0
        self.peak_bytes = 0

    def __enter__(self) -> AllocatorPeak:
        if not allocator_statistics_available(self.device):
            raise RuntimeError(
                f"TensorFlow keeps no allocator statistics for {self.device!r} in this process "
                f"(oneDNN is {'on' if _internals.onednn_enabled() else 'off'}). Start the "
                f"process with {BFC_ALLOCATOR_VARIABLE}=true to measure memory."
            )
        self.start_bytes = tf.config.experimental.get_memory_info(self.device)["current"]
        return self

    def __exit__(self, *exc_info: object) -> None:
        peak = tf.config.experimental.get_memory_info(self.device)["peak"]
        self.peak_bytes = peak - self.start_bytes


def warn_once(key: str, message: str) -> None:
    """`warnings.warn(message)` the first time `key` is seen in this process."""
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    warnings.warn(message, RuntimeWarning, stacklevel=3)
