"""keras_structconv/runtime.py: CPU facts, advice, warn_once and the allocator peak."""

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import tensorflow as tf

from keras_structconv import _internals, runtime

FAKE_CPUINFO = textwrap.dedent(
    """\
    processor\t: 0
    model name\t: AMD EPYC 7B13
    flags\t\t: fpu sse2 avx avx2 fma
    """
)


def test_cpu_model_and_flags_are_read_from_cpuinfo(monkeypatch):
    monkeypatch.setattr(runtime, "_cpuinfo", lambda: FAKE_CPUINFO)
    assert runtime.cpu_model() == "AMD EPYC 7B13"
    flags = runtime.cpu_flags()
    assert flags["avx2"] is True
    assert not any(on for flag, on in flags.items() if flag != "avx2")


def test_facts_describe_this_process():
    facts = runtime.runtime_facts()
    assert facts["tensorflow"] == tf.__version__
    assert facts["onednn"] is _internals.onednn_enabled()
    assert facts["cpu_count"] == os.cpu_count()


def _facts(**overrides):
    facts = runtime.runtime_facts()
    facts.update(overrides)
    return facts


def test_advice_names_the_onednn_switch_when_it_is_off():
    no_avx512 = dict.fromkeys(runtime.cpu_flags(), False)
    (line,) = runtime.advice(_facts(onednn=False, cpu_flags=no_avx512, intra_op_threads=0))
    assert "TF_ENABLE_ONEDNN_OPTS=1" in line and "no AVX-512" in line


def test_advice_is_empty_on_a_tuned_runtime():
    assert runtime.advice(_facts(onednn=True, intra_op_threads=0)) == []


def test_advice_flags_a_thread_cap():
    (line,) = runtime.advice(_facts(onednn=True, intra_op_threads=1, cpu_count=8))
    assert "1 intra-op threads on 8 CPUs" in line


def test_warn_once_warns_the_first_time_only():
    key = f"test-{os.getpid()}-{id(object())}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runtime.warn_once(key, "first")
        runtime.warn_once(key, "second")
    assert [str(w.message) for w in caught] == ["first"]


def test_allocator_peak_counts_a_known_allocation():
    megabytes = 16
    with runtime.AllocatorPeak() as memory:
        tensor = tf.zeros((megabytes * 2**20 // 4,), tf.float32) + 1.0
        float(tf.reduce_sum(tensor))
    assert memory.peak_bytes >= megabytes * 2**20
    assert np.isfinite(memory.peak_bytes)


def test_allocator_peak_ignores_what_the_process_peaked_at_before_the_block():
    # A 64 MiB peak before the block (freed again), then a block that allocates 4 MiB: TensorFlow
    # keeps the process's peak until it is reset, which must not count as the block's.
    before = tf.zeros((64 * 2**20 // 4,), tf.float32) + 1.0
    float(tf.reduce_sum(before))
    del before
    with runtime.AllocatorPeak() as memory:
        tensor = tf.zeros((4 * 2**20 // 4,), tf.float32) + 1.0
        float(tf.reduce_sum(tensor))
    assert 4 * 2**20 <= memory.peak_bytes < 32 * 2**20


def test_allocator_peak_says_how_to_enable_statistics_when_off():
    # TensorFlow's default CPU allocator keeps no statistics without oneDNN; a fresh process is
    # needed because both settings are read once, when TensorFlow is imported.
    code = textwrap.dedent(
        """
        from keras_structconv import runtime
        try:
            with runtime.AllocatorPeak():
                print("no error")
        except RuntimeError as error:
            print("ERROR:", error)
        """
    )
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="0", TF_CPU_ALLOCATOR_USE_BFC="false")
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ERROR:" in result.stdout and "TF_CPU_ALLOCATOR_USE_BFC=true" in result.stdout


@pytest.mark.parametrize("setting", ["0", "1"])
def test_bfc_allocator_gives_statistics_in_both_onednn_settings(setting):
    code = "from keras_structconv import runtime; print(runtime.allocator_statistics_available())"
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=setting, TF_CPU_ALLOCATOR_USE_BFC="true")
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.stdout.strip().splitlines()[-1] == "True", result.stderr[-2000:]
