"""Benchmark runner: our operator against a reference, timed in the same process on the same input.

Every comparison runs both callables interleaved (ours, reference, reference, ours, ...) so that a
change in machine load during the run hits both sides alike, and reports

    ratio = median time of ours / median time of the reference     (< 1: ours is faster)

next to the median, minimum and inter-quartile range of each side. Absolute times on the shared
2-core machines this project runs on are noise; the ratio is what is recorded.

Writing a case (any module in `benchmarks/cases/` is imported by `load_cases`)::

    from benchmarks.runner import register

    @register("psconv_layers", description="PSConv2D vs Conv2D, CIFAR/ImageNet stage shapes")
    def psconv_layers(bench):
        shape = (2, 16, 16, 32) if bench.quick else (32, 56, 56, 64)
        yield from bench.compare_layers(
            "PSConv2D 3x3", ours=lambda: PSConv2D(64, 3, padding="same"),
            reference=lambda: keras.layers.Conv2D(64, 3, padding="same"), input_shape=shape)

`Bench.compare_layers` times forward and forward+backward, `Bench.compare_train_steps` a whole
optimiser step, `Bench.compare_inference` images/s, and `Bench.compare_callables` any two
zero-argument callables. `run_cases` runs registered cases; `benchmarks/run.py` is the command line
(lock file, load average, table, `--record` into RESULTS.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import math
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_LOCK = BENCH_DIR / ".lock"
DEFAULT_RESULTS = BENCH_DIR / "RESULTS.md"
BUSY_LOAD = 0.5
# Share of the machine's CPU capacity other processes may use while a benchmark runs.
BUSY_SHARE = 0.05

FORWARD = "forward"
FORWARD_BACKWARD = "forward+backward"
TRAIN_STEP = "train step"
INFERENCE = "inference"


# --------------------------------------------------------------------------------------------------
# Statistics


@dataclass(frozen=True)
class TimingStats:
    """Summary of the timed steps of one callable, in milliseconds."""

    median_ms: float
    min_ms: float
    iqr_ms: float
    steps: int


def summarize(seconds: Iterable[float]) -> TimingStats:
    """Median, minimum and inter-quartile range (milliseconds) of per-step durations in seconds."""
    samples = sorted(float(s) * 1e3 for s in seconds)
    if not samples:
        raise ValueError(f"`seconds` must hold at least one duration. Received: seconds={samples}")
    if len(samples) == 1:
        iqr = 0.0
    else:
        q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
        iqr = q3 - q1
    return TimingStats(statistics.median(samples), samples[0], iqr, len(samples))


def ratio(ours: TimingStats, reference: TimingStats) -> float:
    """Median time of ours over median time of the reference (< 1 means ours is faster)."""
    if reference.median_ms <= 0:
        raise ValueError(
            f"The reference median must be positive. Received: reference.median_ms="
            f"{reference.median_ms}"
        )
    return ours.median_ms / reference.median_ms


def geomean(values: Iterable[float]) -> float:
    """Geometric mean of positive ratios (the mean that treats 2x faster and 2x slower alike)."""
    values = list(values)
    if not values or any(v <= 0 for v in values):
        raise ValueError(f"`values` must be non-empty and positive. Received: values={values}")
    return math.exp(sum(math.log(v) for v in values) / len(values))


@dataclass(frozen=True)
class Comparison:
    """One row of the result table: ours against the reference for one name, mode and shape."""

    case: str
    name: str
    mode: str
    shape: tuple
    ours: TimingStats
    reference: TimingStats
    batch_size: int | None = None

    @property
    def ratio(self) -> float:
        return ratio(self.ours, self.reference)

    def throughput(self) -> tuple[float, float] | None:
        """(ours, reference) images per second, for rows timed on a batch of known size."""
        if self.batch_size is None:
            return None
        return (
            self.batch_size / (self.ours.median_ms / 1e3),
            self.batch_size / (self.reference.median_ms / 1e3),
        )


def time_interleaved(
    ours: Callable[[], object],
    reference: Callable[[], object],
    *,
    warmup: int,
    steps: int,
    timer: Callable[[], float] = time.perf_counter,
) -> tuple[TimingStats, TimingStats]:
    """Times two callables step by step, alternating which one goes first, after a warm-up.

    The warm-up calls (tracing, first allocation, autotuning) are not timed. Each callable's result
    is synchronised (see `_sync`) inside its timed interval.
    """
    if warmup < 0 or steps < 1:
        raise ValueError(
            f"`warmup` must be >= 0 and `steps` >= 1. Received: warmup={warmup}, steps={steps}"
        )
    for _ in range(warmup):
        _sync(ours())
        _sync(reference())
    ours_times, reference_times = [], []
    for step in range(steps):
        order = [(ours, ours_times), (reference, reference_times)]
        if step % 2:
            order.reverse()
        for fn, times in order:
            start = timer()
            _sync(fn())
            times.append(timer() - start)
    return summarize(ours_times), summarize(reference_times)


def _sync(result):
    """Waits until `result` is computed: reading one element back blocks on the producing op."""
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover - the project always has TensorFlow
        return result
    tensors = [t for t in tf.nest.flatten(result) if isinstance(t, tf.Tensor)]
    if tensors:
        tensors[-1].numpy()
    return result


# --------------------------------------------------------------------------------------------------
# Timing layers and models


def _instantiate(layer_or_factory):
    """Accepts a Layer/Model instance or a zero-argument factory returning one."""
    import keras

    if isinstance(layer_or_factory, keras.layers.Layer):
        return layer_or_factory
    if callable(layer_or_factory):
        layer = layer_or_factory()
        if not isinstance(layer, keras.layers.Layer):
            raise ValueError(
                "A layer factory must return a keras Layer or Model. "
                f"Received: {type(layer).__name__}"
            )
        return layer
    raise ValueError(
        "Expected a keras Layer/Model or a zero-argument factory returning one. "
        f"Received: {layer_or_factory!r}"
    )


def _built_pair(ours, reference, x):
    """[ours, reference] as instances (factories are called), built eagerly on `x`: their
    weights must exist before a step is traced."""
    pair = [_instantiate(ours), _instantiate(reference)]
    for layer in pair:
        if not layer.built:
            layer(x)
    return pair


def mean_square_loss(outputs):
    """A loss defined for any output structure; its backward pass costs one elementwise op."""
    import tensorflow as tf

    terms = [tf.reduce_mean(tf.square(tf.cast(t, "float32"))) for t in tf.nest.flatten(outputs)]
    return tf.add_n(terms)


def _random_input(shape, dtype, seed):
    import tensorflow as tf

    return tf.random.stateless_normal(shape, seed=(seed, 0), dtype=dtype)


def _forward_fn(layer, x, *, training, jit_compile):
    import tensorflow as tf

    @tf.function(jit_compile=jit_compile)
    def forward(inputs):
        return layer(inputs, training=training)

    return lambda: forward(x)


def _forward_backward_fn(layer, x, *, loss, jit_compile):
    import tensorflow as tf

    @tf.function(jit_compile=jit_compile)
    def forward_backward(inputs):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            value = loss(layer(inputs, training=True))
        return tape.gradient(value, [inputs, *layer.trainable_variables])

    return lambda: forward_backward(x)


def _train_step_fn(model, x, *, optimizer, loss, jit_compile):
    import tensorflow as tf

    optimizer.build(model.trainable_variables)

    @tf.function(jit_compile=jit_compile)
    def train_step(inputs):
        with tf.GradientTape() as tape:
            value = loss(model(inputs, training=True))
            # A no-op unless the optimizer is a LossScaleOptimizer (mixed_float16).
            scaled = optimizer.scale_loss(value)
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return value

    return lambda: train_step(x)


@dataclass
class Bench:
    """Timing settings shared by every comparison of a run, handed to each case function.

    Args:
        warmup: untimed calls of each side before timing (tracing happens in the first).
        steps: timed calls of each side; the median is reported.
        quick: smoke-check mode; cases should pick tiny shapes when it is set.
        seed: seed of the random inputs (the same input is fed to ours and the reference).
        timer: clock returning seconds (injectable for tests).

    `case` and `on_result` are set by `run_cases` while a case runs (the row's case name and the
    collector of its comparisons). Every `compare_*` accepts `warmup=`/`steps=` overriding the
    run's settings for that comparison (e.g. fewer steps for a whole-model train step), except
    in quick mode.
    """

    warmup: int = 5
    steps: int = 30
    quick: bool = False
    seed: int = 0
    timer: Callable[[], float] = time.perf_counter
    case: str = ""
    on_result: Callable[[Comparison], None] | None = field(default=None, repr=False)

    def compare_callables(
        self, name, ours, reference, *, mode, shape, batch_size=None, warmup=None, steps=None
    ) -> Comparison:
        """Times two zero-argument callables; the primitive every other `compare_*` uses."""
        ours_stats, reference_stats = time_interleaved(
            ours,
            reference,
            # A case may ask for its own step counts; --quick (a smoke check) overrides them.
            warmup=self.warmup if warmup is None or self.quick else warmup,
            steps=self.steps if steps is None or self.quick else steps,
            timer=self.timer,
        )
        result = Comparison(
            self.case, name, mode, tuple(shape), ours_stats, reference_stats, batch_size
        )
        if self.on_result is not None:
            self.on_result(result)
        return result

    def compare_layers(
        self,
        name,
        ours,
        reference,
        input_shape,
        *,
        dtype="float32",
        modes=(FORWARD, FORWARD_BACKWARD),
        loss=mean_square_loss,
        jit_compile=False,
        warmup=None,
        steps=None,
    ) -> list[Comparison]:
        """Forward (inference mode) and forward+backward (training mode; gradients w.r.t. the
        input and every trainable weight) of two layers on the same random input."""
        unknown = set(modes) - {FORWARD, FORWARD_BACKWARD}
        if unknown:
            raise ValueError(
                f"`modes` must be a subset of {(FORWARD, FORWARD_BACKWARD)}. "
                f"Received: modes={modes}"
            )
        x = _random_input(input_shape, dtype, self.seed)
        layers = _built_pair(ours, reference, x)
        results = []
        for mode in modes:
            if mode == FORWARD:
                fns = [_forward_fn(lr, x, training=False, jit_compile=jit_compile) for lr in layers]
            else:
                fns = [
                    _forward_backward_fn(lr, x, loss=loss, jit_compile=jit_compile) for lr in layers
                ]
            results.append(
                self.compare_callables(
                    name, *fns, mode=mode, shape=input_shape, warmup=warmup, steps=steps
                )
            )
        return results

    def compare_train_steps(
        self,
        name,
        ours,
        reference,
        input_shape,
        *,
        optimizer=None,
        loss=mean_square_loss,
        dtype="float32",
        jit_compile=False,
        warmup=None,
        steps=None,
    ) -> Comparison:
        """One optimiser step (forward, loss, backward, update) of two models on the same batch.

        `optimizer` is a zero-argument factory (each model gets its own optimizer); default SGD
        with momentum 0.9. `loss` maps the model outputs to a scalar (default: mean square, which
        works for any output and costs the same on both sides).
        """
        import keras

        optimizer = optimizer or (lambda: keras.optimizers.SGD(0.01, momentum=0.9))

        def train_step(model, x):
            return _train_step_fn(
                model, x, optimizer=optimizer(), loss=loss, jit_compile=jit_compile
            )

        return self._compare_models(
            name, ours, reference, input_shape, train_step,
            mode=TRAIN_STEP, dtype=dtype, warmup=warmup, steps=steps,
        )

    def compare_inference(
        self,
        name,
        ours,
        reference,
        input_shape,
        *,
        dtype="float32",
        jit_compile=False,
        warmup=None,
        steps=None,
    ) -> Comparison:
        """Inference-mode forward of two models on the same batch; the table adds images/s."""

        def inference(model, x):
            return _forward_fn(model, x, training=False, jit_compile=jit_compile)

        return self._compare_models(
            name, ours, reference, input_shape, inference,
            mode=INFERENCE, dtype=dtype, warmup=warmup, steps=steps,
        )

    def _compare_models(
        self, name, ours, reference, input_shape, step_fn, *, mode, dtype, warmup, steps
    ) -> Comparison:
        """Times `step_fn(model, x)()` of both models on the same random batch `x`; the rows
        count images (the batch size is the first dimension of `input_shape`)."""
        x = _random_input(input_shape, dtype, self.seed)
        fns = [step_fn(model, x) for model in _built_pair(ours, reference, x)]
        return self.compare_callables(
            name,
            *fns,
            mode=mode,
            shape=input_shape,
            batch_size=input_shape[0],
            warmup=warmup,
            steps=steps,
        )


# --------------------------------------------------------------------------------------------------
# Registry


@dataclass(frozen=True)
class Case:
    name: str
    fn: Callable[[Bench], Iterable]
    description: str


_REGISTRY: dict[str, Case] = {}


def register(name: str, *, description: str = ""):
    """Decorator registering `fn(bench)` (returning or yielding `Comparison`s) as case `name`."""
    if not name or any(c.isspace() for c in name):
        raise ValueError(f"A case name must be non-empty without spaces. Received: name={name!r}")

    def decorator(fn):
        if name in _REGISTRY and _REGISTRY[name].fn is not fn:
            raise ValueError(
                f"Benchmark case {name!r} is already registered by "
                f"{_REGISTRY[name].fn.__module__}.{_REGISTRY[name].fn.__qualname__}. "
                f"Received: {fn.__module__}.{fn.__qualname__}"
            )
        doc = (fn.__doc__ or "").strip().splitlines()
        _REGISTRY[name] = Case(name, fn, description or (doc[0] if doc else ""))
        return fn

    return decorator


def registered() -> dict[str, Case]:
    """The registered cases by name (sorted)."""
    return dict(sorted(_REGISTRY.items()))


def unregister(name: str) -> None:
    """Removes a case (used by tests that register throwaway cases)."""
    _REGISTRY.pop(name, None)


def load_cases() -> dict[str, Case]:
    """Imports every module of `benchmarks.cases` (which registers its cases) and returns them."""
    import benchmarks.cases  # noqa: F401  (imports its submodules)

    return registered()


def run_cases(names, bench: Bench, *, on_result=None) -> list[Comparison]:
    """Runs the named cases in order; every comparison a case makes is collected, in order."""
    cases = registered()
    missing = [n for n in names if n not in cases]
    if missing:
        raise ValueError(
            f"Unknown benchmark case(s) {missing}; known: {sorted(cases)}. Received: names={names}"
        )
    results: list[Comparison] = []

    def collect(comparison):
        results.append(comparison)
        if on_result is not None:
            on_result(comparison)

    for name in names:
        bench.case, bench.on_result = name, collect
        try:
            returned = cases[name].fn(bench)
            # Draining a generator runs its comparisons; `bench` collects each one as it is made.
            # Comparisons a case built without `bench` are collected from what it yields/returns.
            for item in returned or ():
                if isinstance(item, Comparison) and not any(item is r for r in results):
                    collect(item if item.case else dataclasses.replace(item, case=name))
        finally:
            bench.case, bench.on_result = "", None
    return results


# --------------------------------------------------------------------------------------------------
# Lock, environment, output


class LockHeld(RuntimeError):
    """Another benchmark run holds the lock file."""


@contextlib.contextmanager
def exclusive_lock(path=DEFAULT_LOCK, *, wait=False, on_wait=None):
    """Holds an exclusive `fcntl.flock` on `path` for the duration of the block.

    Without `wait`, raises `LockHeld` at once when another process (or another open of the file)
    holds it; with `wait`, calls `on_wait(holder)` once and blocks until the lock is released.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown process"
            if not wait:
                raise LockHeld(
                    f"Another benchmark run holds {path} ({holder}); timings would interfere. "
                    "Wait for it to finish or pass --wait."
                ) from None
            if on_wait is not None:
                on_wait(holder)
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {_now()}\n")
        handle.flush()
        try:
            yield path
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


def _now():
    return datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


@dataclasses.dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds spent by the whole machine (all cores, `/proc/stat`) and by this process
    with its waited-for children (`os.times`), at a monotonic time."""

    machine_busy: float
    own: float
    at: float


def cpu_snapshot() -> CpuSnapshot | None:
    """The machine's and this process's CPU time now; None where `/proc/stat` is missing."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(v) for v in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + fields[4]  # idle + iowait; nice'd work (a background training) is busy
    ticks = os.sysconf("SC_CLK_TCK")
    times = os.times()
    own = times.user + times.system + times.children_user + times.children_system
    return CpuSnapshot((sum(fields) - idle) / ticks, own, time.monotonic())


def other_cpu_share(start: CpuSnapshot | None, end: CpuSnapshot | None) -> float | None:
    """The share of the machine's CPU capacity (0-1) that OTHER processes used between two
    snapshots: what a benchmark must not share its cores with. Unlike the load average, it
    neither lags behind a process that just ended nor counts this run's own threads."""
    if start is None or end is None or end.at <= start.at:
        return None
    others = (end.machine_busy - start.machine_busy) - (end.own - start.own)
    return max(0.0, others) / ((end.at - start.at) * (os.cpu_count() or 1))


def measure_other_cpu_share(seconds: float = 3.0) -> float | None:
    """`other_cpu_share` over the next `seconds` (this process sleeping)."""
    start = cpu_snapshot()
    time.sleep(seconds)
    return other_cpu_share(start, cpu_snapshot())


def busy_warning(
    load, threshold=BUSY_LOAD, other_share=None, share_threshold=BUSY_SHARE
) -> str | None:
    """A loud warning when the machine is busy, else None: from the measured CPU share of other
    processes where there is one, else from the 1-minute load average."""
    if other_share is not None:
        if other_share <= share_threshold:
            return None
        return (
            f"WARNING: MACHINE BUSY: other processes used {other_share:.1%} of the CPUs "
            f"(> {share_threshold:.0%}): TIMINGS AND RATIOS ARE UNRELIABLE."
        )
    if load[0] <= threshold:
        return None
    return (
        f"WARNING: MACHINE BUSY: 1-minute load average {load[0]:.2f} > {threshold} "
        "(another process is using the CPUs): TIMINGS AND RATIOS ARE UNRELIABLE."
    )


def environment() -> dict[str, str]:
    """Versions, the CPU (model, AVX-512/AMX flags), oneDNN, threads and the code revision, as
    printable strings: what decides the figures, recorded with every RESULTS.md block."""
    from keras_structconv import runtime

    facts = runtime.runtime_facts()
    flags = [flag for flag, present in facts["cpu_flags"].items() if present]
    env = {
        "python": platform.python_version(),
        "tensorflow": facts["tensorflow"],
        "keras": facts["keras"],
        "cpu": facts["cpu"],
        "cpu_flags": " ".join(flags) or "none of interest",
        "onednn": (
            f"{'on' if facts['onednn'] else 'off'} "
            f"(TF_ENABLE_ONEDNN_OPTS={facts['TF_ENABLE_ONEDNN_OPTS']})"
        ),
        "cpus": str(os.cpu_count()),
        "intra_op_threads": str(facts["intra_op_threads"] or f"default ({os.cpu_count()})"),
        "inter_op_threads": str(facts["inter_op_threads"] or "default"),
        "revision": _git_revision(),
    }
    for var in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        if os.environ.get(var):
            env[var] = os.environ[var]
    return env


def _git_revision() -> str:
    def git(*args):
        return subprocess.run(
            ["git", *args], cwd=BENCH_DIR, capture_output=True, text=True, timeout=10, check=False
        )

    try:
        head = git("rev-parse", "--short", "HEAD")
        if head.returncode != 0:
            return "uncommitted"
        dirty = git("status", "--porcelain").stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


TABLE_HEADER = (
    "case",
    "name",
    "mode",
    "shape",
    "ours ms",
    "ours min/IQR",
    "ref ms",
    "ref min/IQR",
    "ratio",
    "img/s ours/ref",
)


def _row(c: Comparison) -> tuple[str, ...]:
    throughput = c.throughput()
    return (
        c.case,
        c.name,
        c.mode,
        "x".join(str(d) for d in c.shape),
        f"{c.ours.median_ms:.3f}",
        f"{c.ours.min_ms:.3f}/{c.ours.iqr_ms:.3f}",
        f"{c.reference.median_ms:.3f}",
        f"{c.reference.min_ms:.3f}/{c.reference.iqr_ms:.3f}",
        f"{c.ratio:.3f}",
        f"{throughput[0]:.1f}/{throughput[1]:.1f}" if throughput else "",
    )


def group_geomeans(results: Iterable[Comparison]) -> dict[str, dict[str, float]]:
    """Per case: the geometric-mean ratio over all its rows ("all") and per mode."""
    by_case: dict[str, dict[str, list[float]]] = {}
    for c in results:
        modes = by_case.setdefault(c.case, {"all": []})
        modes["all"].append(c.ratio)
        modes.setdefault(c.mode, []).append(c.ratio)
    return {case: {k: geomean(v) for k, v in modes.items()} for case, modes in by_case.items()}


def _geomean_lines(results) -> list[str]:
    lines = []
    for case, means in group_geomeans(results).items():
        per_mode = ", ".join(f"{m} {v:.3f}" for m, v in means.items() if m != "all")
        lines.append(f"geomean ratio {case}: {means['all']:.3f} ({per_mode})")
    return lines


def format_table(results: list[Comparison]) -> str:
    """Plain-text table (one row per comparison) followed by per-case geometric means."""
    rows = [TABLE_HEADER, *(_row(c) for c in results)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(TABLE_HEADER))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join([*lines, "", *_geomean_lines(results)]) if results else "(no results)"


def format_markdown(
    results: list[Comparison],
    *,
    command: str,
    env: dict,
    load_before,
    load_after,
    settings: str,
    max_load: float = BUSY_LOAD,
    other_share_before: float | None = None,
    other_share_during: float | None = None,
) -> str:
    """The block `--record` appends to RESULTS.md: command, date, load, environment, table.
    The busy warning comes from the other processes' CPU share (before and during the run)
    where it was measured, else from the load averages."""

    def loads(load):
        return " / ".join(f"{v:.2f}" for v in load)

    lines = [
        f"## {_now()}",
        "",
        f"- command: `{command}`",
        f"- load average (1/5/15 min) before: {loads(load_before)}, after: {loads(load_after)}",
    ]
    shares = [s for s in (other_share_before, other_share_during) if s is not None]
    if shares:
        lines.append(
            "- other processes' share of the CPUs: "
            + ", ".join(
                f"{label} {share:.1%}"
                for label, share in (("before", other_share_before),
                                     ("during the run", other_share_during))
                if share is not None
            )
        )
    lines += [
        f"- settings: {settings}",
        "- environment: " + ", ".join(f"{k} {v}" for k, v in env.items()),
    ]
    if shares:
        warnings = [busy_warning(None, other_share=max(shares))]
    else:
        warnings = [busy_warning(load, max_load) for load in (load_before, load_after)]
    warning = next((w for w in warnings if w), None)
    if warning:
        lines.append(f"- **{warning}**")
    lines += ["", "| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    lines += ["| " + " | ".join(_row(c)) + " |" for c in results]
    lines += [""] + [f"- {line}" for line in _geomean_lines(results)] + [""]
    return "\n".join(lines) + "\n"


def append_record(path, block: str) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("\n" + block)
