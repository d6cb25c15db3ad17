"""The benchmark runner's logic on fake clocks: statistics, ratios, registry, lock, output,
and its busy-machine check against real processes.

No assertion here depends on how fast anything runs.
"""

import functools
import math
import os
import statistics
import subprocess
import sys
import time

import pytest

from benchmarks import run as bench_run
from benchmarks import runner


class FakeClock:
    """A clock that advances only when a fake workload `spend(seconds)` runs."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def spend(self, seconds):
        self.now += seconds


def test_summarize_median_min_iqr():
    stats = runner.summarize([0.004, 0.001, 0.003, 0.002, 0.010])
    assert stats.median_ms == pytest.approx(3.0)
    assert stats.min_ms == pytest.approx(1.0)
    # Inclusive quartiles of 1, 2, 3, 4, 10 ms are 2 and 4.
    assert stats.iqr_ms == pytest.approx(2.0)
    assert stats.steps == 5
    single = runner.summarize([0.5])
    assert (single.median_ms, single.min_ms, single.iqr_ms) == (500.0, 500.0, 0.0)
    with pytest.raises(ValueError, match="Received"):
        runner.summarize([])


def test_ratio_and_geomean():
    fast = runner.summarize([0.001] * 3)
    slow = runner.summarize([0.004] * 3)
    assert runner.ratio(fast, slow) == pytest.approx(0.25)
    assert runner.geomean([0.25, 4.0]) == pytest.approx(1.0)
    assert runner.geomean([2.0, 8.0]) == pytest.approx(4.0)
    assert runner.geomean([1.5]) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="Received"):
        runner.geomean([1.0, 0.0])
    with pytest.raises(ValueError, match="Received"):
        runner.geomean([])


def test_time_interleaved_uses_warmup_medians_and_alternates_order():
    clock = FakeClock()
    calls = []
    ours_durations = iter([9.0, 9.0] + [0.001, 0.003, 0.002, 0.100])  # 2 warm-ups, then 4 steps
    ref_durations = iter([9.0, 9.0] + [0.004, 0.004, 0.008, 0.004])

    def ours():
        calls.append("o")
        clock.spend(next(ours_durations))

    def reference():
        calls.append("r")
        clock.spend(next(ref_durations))

    ours_stats, ref_stats = runner.time_interleaved(ours, reference, warmup=2, steps=4, timer=clock)
    # The 9 s warm-up calls are excluded; the outlier 100 ms step does not move the median.
    assert ours_stats.median_ms == pytest.approx(statistics.median([1, 3, 2, 100]))
    assert ref_stats.median_ms == pytest.approx(4.0)
    assert ours_stats.min_ms == pytest.approx(1.0)
    assert ours_stats.steps == ref_stats.steps == 4
    assert "".join(calls) == "oror" + "or" + "ro" + "or" + "ro"
    with pytest.raises(ValueError, match="Received"):
        runner.time_interleaved(ours, reference, warmup=0, steps=0, timer=clock)


def _fake_comparison(bench, clock, name, ours_s, ref_s, mode="forward", batch_size=None):
    return bench.compare_callables(
        name,
        lambda: clock.spend(ours_s),
        lambda: clock.spend(ref_s),
        mode=mode,
        shape=(4, 8, 8, 3),
        batch_size=batch_size,
    )


@pytest.fixture
def fake_cases():
    """Two throwaway registered cases timed on a fake clock; unregistered afterwards."""
    clock = FakeClock()

    @runner.register("zz_fake_fast", description="ours twice as fast")
    def fast(bench):
        yield _fake_comparison(bench, clock, "half", 0.001, 0.002)
        yield _fake_comparison(bench, clock, "eighth", 0.001, 0.008, mode="forward+backward")

    @runner.register("zz_fake_list")
    def as_list(bench):
        """Returns a list instead of yielding."""
        return [_fake_comparison(bench, clock, "same", 0.002, 0.002, "inference", batch_size=4)]

    yield clock
    runner.unregister("zz_fake_fast")
    runner.unregister("zz_fake_list")


def test_registry_and_run_cases(fake_cases):
    cases = runner.registered()
    assert cases["zz_fake_fast"].description == "ours twice as fast"
    assert cases["zz_fake_list"].description == "Returns a list instead of yielding."
    bench = runner.Bench(warmup=1, steps=3, timer=fake_cases)
    seen = []
    results = runner.run_cases(["zz_fake_fast", "zz_fake_list"], bench, on_result=seen.append)
    assert seen == results
    assert [(r.case, r.name) for r in results] == [
        ("zz_fake_fast", "half"),
        ("zz_fake_fast", "eighth"),
        ("zz_fake_list", "same"),
    ]
    assert [r.ratio for r in results] == pytest.approx([0.5, 0.125, 1.0])
    assert results[2].throughput() == pytest.approx((2000.0, 2000.0))  # 4 images / 2 ms
    means = runner.group_geomeans(results)
    assert means["zz_fake_fast"]["all"] == pytest.approx(math.sqrt(0.5 * 0.125))
    assert means["zz_fake_fast"]["forward"] == pytest.approx(0.5)
    assert means["zz_fake_list"]["all"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="Unknown benchmark case"):
        runner.run_cases(["zz_no_such_case"], bench)


def test_register_rejects_duplicate_names(fake_cases):
    with pytest.raises(ValueError, match="already registered"):

        @runner.register("zz_fake_fast")
        def other(bench):
            return []

    with pytest.raises(ValueError, match="Received"):
        runner.register("has space")


def test_load_cases_finds_the_baseline():
    assert "conv2d_baseline" in runner.load_cases()


def test_table_and_markdown(fake_cases):
    bench = runner.Bench(warmup=0, steps=3, timer=fake_cases)
    results = runner.run_cases(["zz_fake_fast", "zz_fake_list"], bench)
    table = runner.format_table(results)
    assert "geomean ratio zz_fake_fast: 0.250" in table
    assert "0.125" in table and "2000.0/2000.0" in table
    block = runner.format_markdown(
        results,
        command="python -m benchmarks.run --all",
        env={"keras": "3"},
        load_before=(2.0, 1.0, 0.5),
        load_after=(0.1, 0.1, 0.1),
        settings="steps 3",
    )
    assert "`python -m benchmarks.run --all`" in block
    assert "2.00 / 1.00 / 0.50" in block
    assert "MACHINE BUSY" in block  # the load before the run was above 0.5
    assert block.count("| zz_fake_") == 3
    quiet = runner.format_markdown(
        results, command="x", env={}, load_before=(0.1,) * 3, load_after=(0.2,) * 3, settings=""
    )
    assert "MACHINE BUSY" not in quiet


def test_busy_warning_threshold():
    assert runner.busy_warning((0.4, 3.0, 3.0)) is None
    assert "1-minute load average 0.90" in runner.busy_warning((0.9, 0.0, 0.0))
    assert runner.busy_warning((0.9, 0.0, 0.0), threshold=1.0) is None


def test_busy_warning_prefers_the_measured_cpu_share():
    assert runner.busy_warning((3.0, 3.0, 3.0), other_share=0.01) is None  # a stale load average
    warning = runner.busy_warning((0.0, 0.0, 0.0), other_share=0.30)
    assert "other processes used 30.0% of the CPUs" in warning


def test_markdown_records_the_other_processes_share(fake_cases):
    results = runner.run_cases(["zz_fake_fast"], runner.Bench(warmup=0, steps=2, timer=fake_cases))
    common = dict(command="x", env={}, load_before=(2.5,) * 3, load_after=(2.5,) * 3, settings="")
    quiet = runner.format_markdown(results, **common, other_share_before=0.004,
                                   other_share_during=0.01)
    assert "share of the CPUs: before 0.4%, during the run 1.0%" in quiet
    assert "MACHINE BUSY" not in quiet  # the load averages alone would have warned
    busy = runner.format_markdown(results, **common, other_share_during=0.2)
    assert "other processes used 20.0% of the CPUs" in busy


def _spinner(seconds):
    """Another process that keeps one core busy for `seconds`."""
    code = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass"
    return subprocess.Popen([sys.executable, "-c", code])


def test_other_cpu_share_subtracts_this_process():
    cores = os.cpu_count() or 1
    start = runner.CpuSnapshot(machine_busy=100.0, own=10.0, at=50.0)
    end = runner.CpuSnapshot(machine_busy=100.0 + 3.0 * cores, own=11.0, at=52.0)
    assert runner.other_cpu_share(start, end) == pytest.approx((3.0 * cores - 1.0) / (2 * cores))
    assert runner.other_cpu_share(start, None) is None


@pytest.mark.skipif(runner.cpu_snapshot() is None, reason="no /proc/stat on this system")
def test_other_cpu_share_sees_another_process_and_not_this_one():
    """Real processes. Loose bounds: other jobs may share the machine (the spinner may get less
    than its core), and one busy core of N is 1/N of the capacity."""
    cores = os.cpu_count() or 1
    spinner = _spinner(2.0)
    try:
        time.sleep(0.3)  # let it start
        assert runner.measure_other_cpu_share(1.0) > 0.3 / cores
    finally:
        spinner.wait()
    # This process's own work is what the snapshots subtract: its CPU time as Python counts it
    # (clock ticks of 10 ms make the tolerance), and part of the machine's.
    start, cpu_start = runner.cpu_snapshot(), time.process_time()
    busy_work = 0
    end_at = time.monotonic() + 1.0
    while time.monotonic() < end_at:  # a second of this process's own CPU work
        busy_work += 1
    assert busy_work > 0
    end, cpu_end = runner.cpu_snapshot(), time.process_time()
    own = end.own - start.own
    assert own == pytest.approx(cpu_end - cpu_start, abs=0.05) and own > 0.05
    assert end.machine_busy - start.machine_busy >= own - 0.05


def test_lock_is_exclusive_and_released(tmp_path):
    lock = tmp_path / "bench.lock"
    with runner.exclusive_lock(lock):
        assert "pid" in lock.read_text()
        with pytest.raises(runner.LockHeld, match="--wait"):
            with runner.exclusive_lock(lock):
                pytest.fail("a second holder entered a held lock")
    with runner.exclusive_lock(lock):  # released after the first block
        assert str(os.getpid()) in lock.read_text()


def test_command_line_refuses_while_locked_and_records(fake_cases, tmp_path, capsys, monkeypatch):
    lock, results = tmp_path / "bench.lock", tmp_path / "RESULTS.md"
    monkeypatch.setattr(runner, "load_average", lambda: (0.0, 0.0, 0.0))
    monkeypatch.setattr(runner, "measure_other_cpu_share", lambda seconds: 0.0)
    monkeypatch.setattr(runner, "other_cpu_share", lambda start, end: 0.0)
    monkeypatch.setattr(runner, "Bench", functools.partial(runner.Bench, timer=fake_cases))
    common = ["--lock-file", str(lock), "--results", str(results), "--steps", "2"]
    with runner.exclusive_lock(lock):
        assert bench_run.main(["zz_fake_fast", *common]) == 3
    assert "holds" in capsys.readouterr().err
    assert bench_run.main(["zz_fake_fast", "--record", *common]) == 0
    out = capsys.readouterr().out
    assert "geomean ratio zz_fake_fast: 0.250" in out and "MACHINE BUSY" not in out
    assert "`python -m benchmarks.run zz_fake_fast --record" in results.read_text()
    with pytest.raises(SystemExit):
        bench_run.main(["zz_no_such_case", *common])
    with pytest.raises(SystemExit):
        bench_run.main(common)  # neither a case nor --all


def test_real_layers_and_models_run_through_tensorflow():
    """The tf.function paths on tiny layers: rows per mode, and the train step really updates."""
    import keras
    import numpy as np

    bench = runner.Bench(warmup=1, steps=2, case="tiny")
    rows = bench.compare_layers(
        "dense",
        ours=keras.layers.Dense(3),
        reference=lambda: keras.layers.Dense(3),
        input_shape=(2, 4),
    )
    assert [r.mode for r in rows] == [runner.FORWARD, runner.FORWARD_BACKWARD]
    assert all(r.ours.steps == 2 and r.reference.median_ms > 0 for r in rows)

    def tiny_model():
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])

    ours, reference = tiny_model(), tiny_model()
    before = ours.get_weights()[0].copy()
    row = bench.compare_train_steps("step", ours, reference, (2, 4))
    assert row.mode == runner.TRAIN_STEP and row.throughput() is not None
    # 1 warm-up + 2 timed SGD steps on a nonzero mean-square loss move the kernel.
    assert not np.allclose(before, ours.get_weights()[0])
    row = bench.compare_inference("infer", ours, reference, (2, 4))
    assert row.mode == runner.INFERENCE and row.batch_size == 2


def test_environment_records_the_cpu_and_the_onednn_setting():
    from keras_structconv import _internals, runtime

    env = runner.environment()
    assert env["cpu"] == runtime.cpu_model()
    assert env["onednn"].startswith("on" if _internals.onednn_enabled() else "off")
    assert f"TF_ENABLE_ONEDNN_OPTS={_internals.onednn_setting()}" in env["onednn"]
    present = [flag for flag, on in runtime.cpu_flags().items() if on]
    assert env["cpu_flags"].split() == present or (not present and env["cpu_flags"])
