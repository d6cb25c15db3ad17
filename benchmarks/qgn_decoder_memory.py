"""Memory and time of the QGN decoder's forward+backward step per propagation scheme.

    python -m benchmarks.qgn_decoder_memory                      # 1x and 2x, all/gt/pred, batch 4
    python -m benchmarks.qgn_decoder_memory --scales 1 --record  # append the table to RESULTS.md
    python -m benchmarks.qgn_decoder_memory --quick              # smoke check (tiny crop, batch 1)

What is measured. One training step of `QuadtreeDecoder` (default Table 7 configuration, 11
CamVid classes, 6 levels, sparse outputs): forward in training mode, the quadtree loss (mean
cross-entropy per level over the supervised active sites, fixed weights 1), and the gradients
with respect to every decoder weight *and* the encoder features (which a full model
back-propagates into its encoder). The encoder is not run: its features are inputs, random
normal maps with ResNet-50's widths (64, 256, 512, 1024, 2048 at strides 2..32; `--encoder
resnet18`: 64, 64, 128, 256, 512). Labels are real CamVid training label maps (a fixed, seeded
choice of `--batch-size` images), padded with void to 384x480 (scale 1) and nearest-upscaled to
768x960 (scale 2: every quadtree cell doubles in size).

Each (scale, mode) runs in a fresh Python process (no allocator reuse between modes). In it:
two untimed warm-up steps (tracing), then
- TF allocator peak: `tf.config.experimental.reset_memory_stats("CPU:0")` right before one step,
  `get_memory_info("CPU:0")["peak"]` after it. Reported as the peak *above* the allocation at the
  start of the step (inputs and weights, equal in every mode, excluded) and as the absolute peak.
  (Verified on TF 2.21 CPU: both calls work for "CPU:0". Caveat, also verified: the CPU
  allocator's statistics count only allocations of 256 KiB or more, so small tensors (per-channel
  vectors, small weights' gradients) are invisible; every feature map of the decoder at these
  sizes is far above that. Scratch memory that oneDNN allocates outside TF's allocator is not
  counted either, hence also:)
- peak RSS minus the baseline RSS at the start of the step (`/proc/self/clear_refs` resets the
  high-water mark VmHWM before the step; where that is not permitted, the peak since process
  start is used and the row says so). Workers run with `MALLOC_MMAP_THRESHOLD_` and
  `MALLOC_TRIM_THRESHOLD_` = 128 KiB so that freed blocks leave the RSS;
- median wall time of `--steps` further steps;
- the fraction of active sites per level (from the decoder's masks).
Ratios gt/all and pred/all are printed for the step peak and the median time. With an untrained
decoder, "pred" propagates whatever the random heads call composite: its numbers say what the
machinery costs at those fractions (printed), not what a trained model would propagate.

Target (issue 8): peak-memory ratio gt/all <= 0.25 with time ratio <= 1.0.
Run it alone on an idle machine (it takes the benchmarks lock); `--record` appends a Markdown
block to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODES = ("all", "gt", "pred")
ENCODER_WIDTHS = {
    "resnet50": (64, 256, 512, 1024, 2048),
    "resnet18": (64, 64, 128, 256, 512),
}
NUM_CLASSES = 11
NUM_LEVELS = 6
BASE_SIZE = (384, 480)
QUICK_SIZE = (64, 96)


# --------------------------------------------------------------------------------------------
# Worker (one mode, one scale, in its own process)


def _rss_kib(field):
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not found in /proc/self/status")


def _reset_rss_peak():
    """Resets VmHWM to the current RSS; False when the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def camvid_label_batch(batch_size, scale, data_dir=None, quick=False, seed=0):
    """Real CamVid training labels `(B, H, W)` int32, void = 255, padded (and upscaled)."""
    import numpy as np

    from keras_structconv.datasets.camvid import load_camvid_arrays
    from keras_structconv.quadtree import pad_to_multiple

    _, labels = load_camvid_arrays("train", data_dir=data_dir)
    choice = np.random.default_rng(seed).choice(len(labels), batch_size, replace=False)
    batch = np.asarray(labels[np.sort(choice)], dtype=np.int32)
    if quick:
        batch = batch[:, 150 : 150 + QUICK_SIZE[0], 200 : 200 + QUICK_SIZE[1]]
    padded, _ = pad_to_multiple(batch, 2 ** (NUM_LEVELS - 1), 255)
    padded = np.asarray(padded)
    if scale > 1:
        padded = np.repeat(np.repeat(padded, scale, axis=1), scale, axis=2)
    return padded


def build_decoder_step(batch_size, scale, mode, encoder="resnet50", quick=False, data_dir=None,
                       decoder=None):
    """`(step, features, decoder)`: a traced forward+backward step of the decoder in `mode`.

    `step(features)` returns `(loss, gradients w.r.t. features and weights, active fractions)`.
    Pass `decoder` to reuse one (same weights) for several modes.
    """
    import tensorflow as tf

    from keras_structconv.quadtree import quadtree_level_losses, tpyramid_labels
    from keras_structconv.quadtree.decoder import (
        QuadtreeDecoder,
        composite_masks_from_labels,
        sparse_level_labels,
    )

    labels = camvid_label_batch(batch_size, scale, data_dir, quick)
    batch, height, width = labels.shape
    level_labels = [tf.constant(t) for t in tpyramid_labels(labels, NUM_LEVELS, NUM_CLASSES)]
    composite = composite_masks_from_labels(level_labels)
    widths = ENCODER_WIDTHS[encoder]
    features = [
        tf.random.stateless_normal(
            (batch, height >> (i + 1), width >> (i + 1), widths[i]), seed=(i, 0)
        )
        for i in range(NUM_LEVELS - 1)
    ]
    if decoder is None:
        decoder_kwargs = {}
        if quick:
            decoder_kwargs = dict(filters=(8, 8, 8, 16, 16), units=(1, 1, 1, 1, 1), top_filters=16)
        decoder = QuadtreeDecoder(NUM_CLASSES, num_levels=NUM_LEVELS, **decoder_kwargs)
        decoder.build([f.shape for f in features])
    weights = decoder.trainable_variables

    @tf.function
    def step(inputs):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            out = decoder(inputs, composite_masks=composite, propagation=mode, training=True)
            losses = quadtree_level_losses(
                sparse_level_labels(level_labels, out["indices"]), out["logits"]
            )
            loss = tf.reduce_sum(losses)
        grads = tape.gradient(loss, [*inputs, *weights])
        fractions = [tf.reduce_mean(tf.cast(m, tf.float32)) for m in out["masks"]]
        return loss, grads, fractions

    return step, features, decoder


def run_worker(args):
    import tensorflow as tf

    step, features, _ = build_decoder_step(
        args.batch_size, args.scale, args.mode, args.encoder, args.quick, args.data_dir
    )
    batch, height, width = features[0].shape[0], features[0].shape[1] * 2, features[0].shape[2] * 2

    def run_once():
        loss, grads, fractions = step(features)
        # Reading results back blocks until the step has finished.
        return float(loss), [float(f) for f in fractions], grads

    for _ in range(2):
        _, fractions, grads = run_once()
        del grads

    tf.config.experimental.reset_memory_stats("CPU:0")
    start = tf.config.experimental.get_memory_info("CPU:0")["current"]
    hwm_reset = _reset_rss_peak()
    rss_baseline = _rss_kib("VmRSS")
    loss, fractions, grads = run_once()
    peak = tf.config.experimental.get_memory_info("CPU:0")["peak"]
    if hwm_reset:
        rss_peak = _rss_kib("VmHWM")
    else:
        rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    del grads

    times = []
    for _ in range(args.steps):
        begin = time.perf_counter()
        _, _, grads = run_once()
        times.append(time.perf_counter() - begin)
        del grads
    result = {
        "mode": args.mode,
        "scale": args.scale,
        "shape": [batch, height, width],
        "loss": loss,
        "alloc_peak_step_mb": (peak - start) / 2**20,
        "alloc_peak_abs_mb": peak / 2**20,
        "rss_peak_minus_baseline_mb": (rss_peak - rss_baseline) / 1024,
        "rss_hwm_reset": hwm_reset,
        "median_s": statistics.median(times) if times else float("nan"),
        "min_s": min(times) if times else float("nan"),
        "steps": len(times),
        "active_fraction": fractions,
    }
    print("RESULT " + json.dumps(result), flush=True)
    return 0


# --------------------------------------------------------------------------------------------
# Parent: one fresh process per (scale, mode), then the table


def _worker_command(args, scale, mode):
    command = [
        sys.executable, "-m", "benchmarks.qgn_decoder_memory", "--worker",
        "--mode", mode, "--scale", str(scale), "--batch-size", str(args.batch_size),
        "--encoder", args.encoder, "--steps", str(args.steps),
    ]
    if args.quick:
        command.append("--quick")
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    return command


def run_mode(args, scale, mode):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    # Fixed glibc thresholds: blocks of 128 KiB and more are mmapped and returned to the system
    # when freed, so RSS follows live memory and memory kept from the warm-up steps does not hide
    # the measured step's peak.
    env.setdefault("MALLOC_MMAP_THRESHOLD_", "131072")
    env.setdefault("MALLOC_TRIM_THRESHOLD_", "131072")
    completed = subprocess.run(
        _worker_command(args, scale, mode), cwd=REPO, env=env, capture_output=True, text=True
    )
    for line in completed.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    reason = f"exit code {completed.returncode}"
    if completed.returncode < 0:
        reason += " (killed by a signal: out of memory?)"
    return {"mode": mode, "scale": scale, "error": reason, "stderr": completed.stderr[-2000:]}


def _fmt(value, spec=".1f"):
    return "n/a" if value is None or value != value else format(value, spec)


def format_results(results):
    """Markdown table per scale with the ratios to `all`."""
    lines = [
        "| scale | shape | mode | alloc peak step MB | alloc peak abs MB | RSS peak-base MB | "
        "median s | mem ratio /all | time ratio /all | active fraction L0..L5 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for scale in sorted({r["scale"] for r in results}):
        rows = [r for r in results if r["scale"] == scale]
        base = next((r for r in rows if r["mode"] == "all" and "error" not in r), None)
        for r in rows:
            if "error" in r:
                lines.append(f"| {scale} | | {r['mode']} | failed: {r['error']} | | | | | | |")
                continue
            mem_ratio = time_ratio = None
            if base is not None:
                mem_ratio = r["alloc_peak_step_mb"] / base["alloc_peak_step_mb"]
                time_ratio = r["median_s"] / base["median_s"]
            rss = _fmt(r["rss_peak_minus_baseline_mb"]) + ("" if r["rss_hwm_reset"] else "*")
            fractions = " ".join(f"{f:.3f}" for f in r["active_fraction"])
            lines.append(
                f"| {scale} | {'x'.join(map(str, r['shape']))} | {r['mode']} | "
                f"{_fmt(r['alloc_peak_step_mb'])} | {_fmt(r['alloc_peak_abs_mb'])} | {rss} | "
                f"{_fmt(r['median_s'], '.3f')} | {_fmt(mem_ratio, '.3f')} | "
                f"{_fmt(time_ratio, '.3f')} | {fractions} |"
            )
    if any(not r.get("rss_hwm_reset", True) for r in results):
        lines.append("")
        lines.append("\\* RSS high-water mark could not be reset: peak since process start.")
    return "\n".join(lines)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.qgn_decoder_memory",
        description="QGN decoder forward+backward memory/time per propagation scheme.",
    )
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--scales", nargs="+", type=int, default=[1, 2], choices=[1, 2])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--encoder", default="resnet50", choices=sorted(ENCODER_WIDTHS))
    parser.add_argument("--steps", type=int, default=5, help="timed steps per mode (median)")
    parser.add_argument("--data-dir", help="folder holding CamVid's train.npz (default: shared)")
    parser.add_argument(
        "--quick", action="store_true",
        help=f"smoke check: a {QUICK_SIZE[0]}x{QUICK_SIZE[1]} crop, a tiny decoder",
    )
    parser.add_argument("--record", action="store_true", help="append to benchmarks/RESULTS.md")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--scale", type=int, default=1, help=argparse.SUPPRESS)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.worker:
        return run_worker(args)
    from benchmarks import runner

    command = "python -m benchmarks.qgn_decoder_memory " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    try:
        results, load_before, load_after = _run_all(args, runner)
    except runner.LockHeld as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    _report(args, runner, command, results, load_before, load_after)
    return 0


def _run_all(args, runner):
    with runner.exclusive_lock(runner.DEFAULT_LOCK):
        load_before = runner.load_average()
        warning = runner.busy_warning(load_before)
        if warning:
            print(warning, flush=True)
        results = []
        for scale in args.scales:
            for mode in args.modes:
                result = run_mode(args, scale, mode)
                print(json.dumps({k: v for k, v in result.items() if k != "stderr"}), flush=True)
                if "stderr" in result:
                    print(result["stderr"], file=sys.stderr)
                results.append(result)
        load_after = runner.load_average()
    return results, load_before, load_after


def _report(args, runner, command, results, load_before, load_after):
    table = format_results(results)
    print()
    print(table)
    if args.record:
        loads = " / ".join
        block = "\n".join(
            [
                f"## {runner._now()} — QGN decoder memory (fresh process per mode)",
                "",
                f"- command: `{command}`",
                f"- load average before: {loads(f'{v:.2f}' for v in load_before)}, after: "
                f"{loads(f'{v:.2f}' for v in load_after)}",
                f"- settings: batch {args.batch_size}, encoder widths {args.encoder}, "
                f"{args.steps} timed steps, quick {args.quick}; target gt/all memory <= 0.25, "
                "time <= 1.0",
                "",
                table,
                "",
            ]
        )
        runner.append_record(runner.DEFAULT_RESULTS, block)
        print(f"recorded in {runner.DEFAULT_RESULTS}")


if __name__ == "__main__":
    sys.exit(main())
