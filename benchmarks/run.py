"""Command line of the benchmark runner.

    python -m benchmarks.run --list                 # the registered cases
    python -m benchmarks.run --all                  # every case (what `make bench` runs)
    python -m benchmarks.run psconv_layers --quick  # one case, tiny shapes and steps (smoke check)
    python -m benchmarks.run --all --record         # also append the results to RESULTS.md

Only one run at a time: the run holds an exclusive lock on benchmarks/.lock (a second run refuses,
or waits with --wait). Before the run it samples, for 3 s, how much of the CPUs other processes
use, and measures it again over the whole run (from /proc/stat, minus this process's own time);
above 5 % the output and the record say loudly that the timings are unreliable. Where /proc/stat
is missing, the 1-minute load average (printed before and after) decides, above --max-load.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from benchmarks import runner

QUICK_WARMUP, QUICK_STEPS = 1, 3
# Seconds of other processes' CPU use sampled before a run starts (this process sleeping).
IDLE_CHECK_SECONDS = 3.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Time our operators against reference layers (ratio = ours / reference).",
    )
    parser.add_argument("cases", nargs="*", help="names of the cases to run (see --list)")
    parser.add_argument("--all", action="store_true", help="run every registered case")
    parser.add_argument("--list", action="store_true", help="list the registered cases and exit")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke check: tiny shapes, {QUICK_WARMUP} warm-up and {QUICK_STEPS} timed steps",
    )
    parser.add_argument("--warmup", type=int, help="untimed warm-up calls per side (default 5)")
    parser.add_argument("--steps", type=int, help="timed calls per side (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    parser.add_argument(
        "--record", action="store_true", help="append a Markdown block to benchmarks/RESULTS.md"
    )
    parser.add_argument("--results", default=str(runner.DEFAULT_RESULTS), help=argparse.SUPPRESS)
    parser.add_argument(
        "--wait", action="store_true", help="wait for another run's lock instead of refusing"
    )
    parser.add_argument("--lock-file", default=str(runner.DEFAULT_LOCK), help=argparse.SUPPRESS)
    parser.add_argument(
        "--max-load",
        type=float,
        default=runner.BUSY_LOAD,
        help="without /proc/stat: the 1-minute load average above which the machine counts as "
        "busy (default %(default)s)",
    )
    parser.add_argument("--intra-op-threads", type=int, help="TensorFlow intra-op threads")
    parser.add_argument("--inter-op-threads", type=int, help="TensorFlow inter-op threads")
    return parser


def _configure_threads(args):
    """Must run before TensorFlow executes its first op."""
    import tensorflow as tf

    if args.intra_op_threads is not None:
        tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)
    if args.inter_op_threads is not None:
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)


def _print_cases(cases):
    width = max((len(n) for n in cases), default=0)
    for name, case in cases.items():
        print(f"{name.ljust(width)}  {case.description}")


def _warn(message, stream=sys.stdout):
    bar = "!" * len(message)
    print(f"{bar}\n{message}\n{bar}", file=stream, flush=True)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _configure_threads(args)
    cases = runner.load_cases()
    if args.list:
        _print_cases(cases)
        return 0
    names = list(cases) if args.all else args.cases
    if not names:
        parser.error("name at least one case, or pass --all (see --list)")
    unknown = [n for n in names if n not in cases]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; known: {sorted(cases)}")

    warmup = args.warmup if args.warmup is not None else (QUICK_WARMUP if args.quick else 5)
    steps = args.steps if args.steps is not None else (QUICK_STEPS if args.quick else 30)
    bench = runner.Bench(warmup=warmup, steps=steps, quick=args.quick, seed=args.seed)
    settings = f"warmup {warmup}, steps {steps}, quick {args.quick}, seed {args.seed}"
    command = "python -m benchmarks.run " + shlex.join(argv)

    try:
        with runner.exclusive_lock(
            args.lock_file,
            wait=args.wait,
            on_wait=lambda holder: print(f"waiting for the lock {args.lock_file} ({holder})..."),
        ):
            return _run(args, names, bench, settings, command)
    except runner.LockHeld as error:
        print(f"error: {error}", file=sys.stderr)
        return 3


def _run(args, names, bench, settings, command) -> int:
    env = runner.environment()
    load_before = runner.load_average()
    share_before = runner.measure_other_cpu_share(IDLE_CHECK_SECONDS)
    print(f"command: {command}")
    print("environment: " + ", ".join(f"{k} {v}" for k, v in env.items()))
    print(f"settings: {settings}")
    print("load average (1/5/15 min) before: " + " / ".join(f"{v:.2f}" for v in load_before))
    if share_before is not None:
        print(f"other processes' share of the CPUs before: {share_before:.1%}")
    warning = runner.busy_warning(load_before, args.max_load, share_before)
    if warning:
        _warn(warning)
        _warn(warning, sys.stderr)

    def progress(c):
        print(
            f"  {c.case}: {c.name} [{c.mode}] {c.ours.median_ms:.3f} ms vs "
            f"{c.reference.median_ms:.3f} ms, ratio {c.ratio:.3f}",
            flush=True,
        )

    start = runner.cpu_snapshot()
    results = runner.run_cases(names, bench, on_result=progress)
    share_during = runner.other_cpu_share(start, runner.cpu_snapshot())
    load_after = runner.load_average()
    print()
    print(runner.format_table(results))
    print("load average (1/5/15 min) after: " + " / ".join(f"{v:.2f}" for v in load_after))
    if share_during is not None:
        print(f"other processes' share of the CPUs during the run: {share_during:.1%}")
    after_warning = runner.busy_warning(load_after, args.max_load, share_during)
    if after_warning:
        _warn(after_warning)
    if args.record:
        block = runner.format_markdown(
            results,
            command=command,
            env=env,
            load_before=load_before,
            load_after=load_after,
            settings=settings,
            max_load=args.max_load,
            other_share_before=share_before,
            other_share_during=share_during,
        )
        runner.append_record(args.results, block)
        print(f"recorded in {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
