"""Convert every model builder of keras_structconv to TFLite (builtin ops) and ONNX; print a table.

    python zoo/export_check.py [--only GLOB ...] [--skip GLOB ...] [--no-onnx] [--no-qgn]
        [--output table.md] [--json rows.json]

For every builder (`keras_structconv.models`: the public builders and the registry), at batch 1
and the smallest input that every stage accepts (32x32x3; the ImageNet stem and four stride-2
stages bring it to 1x1), with logits (`classifier_activation=None`) and BatchNorm statistics
drawn at random (so that inference BatchNorm is not an identity): the conversion time, and the
largest error of the converted model's outputs relative to the largest |Keras output| over two
random images, for TFLite (builtin ops only, run in LiteRT or tf.lite) and ONNX (tf2onnx opset
17, run in onnxruntime). A row passes when both errors are <= 1e-4. QGN (the quadtree decoder)
is checked with `propagation="pred"` and `"all"` on a small ResNet-18 QGN.

The conversions of the ImageNet-size models take a while (minutes for the 100-layer ones on 2
cores); `tests/export/test_builders.py` converts the zoo's PS and TAM ResNet-20s in `make test`
(the other operators' layers are converted by the layer tests there), this script every builder.
Exit status 0 when every row passes, 1 otherwise.
"""

import argparse
import fnmatch
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TOLERANCE = 1e-4
SMALLEST_INPUT = (32, 32, 3)
# Not builders of a fixed architecture: generic constructors and model-surgery helpers.
NOT_BUILDERS = {"AOGNet", "QGN", "add_tree_attention", "create_model", "get_builder",
                "list_models", "register_model", "tree_resnet50_from_keras"}


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", default=None, metavar="GLOB",
                        help="builder names to check (fnmatch patterns, case-insensitive)")
    parser.add_argument("--skip", nargs="+", default=(), metavar="GLOB",
                        help="builder names to leave out (fnmatch patterns, case-insensitive)")
    parser.add_argument("--no-onnx", action="store_true", help="TFLite only")
    parser.add_argument("--no-qgn", action="store_true", help="skip the QGN rows")
    parser.add_argument("--output", type=Path, default=None, help="write the Markdown table")
    parser.add_argument("--json", type=Path, default=None, help="write the rows as JSON")
    parser.add_argument("--in-process", action="store_true",
                        help="convert every model in this process (default: one subprocess per "
                             "model, so that the converters' memory is returned after each)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return parser


def builders():
    """name -> builder: the public builders of `keras_structconv.models`, then the registry's
    names whose builder is not one of them (e.g. TAM variants made by `convert`)."""
    from keras_structconv import models

    found = {}
    for name in models.__all__:
        builder = getattr(models, name)
        if name[:1].isupper() and name not in NOT_BUILDERS and callable(builder):
            found[name] = builder
    if hasattr(models, "list_models"):
        known = {id(builder) for builder in found.values()}
        for name in models.list_models():
            builder = models.get_builder(name)
            if id(builder) not in known:
                found[name] = builder
                known.add(id(builder))
    return found


def build(builder):
    """The builder's model at the smallest input, with logits, or its default when it has no
    such arguments."""
    attempts = (
        {"input_shape": SMALLEST_INPUT, "classifier_activation": None},
        {"input_shape": SMALLEST_INPUT},
        {},
    )
    for kwargs in attempts:
        try:
            return builder(**kwargs), kwargs
        except TypeError:
            continue
    return builder(), {}


def randomize_batch_norm(model, seed=0):
    """Normalisation statistics and affine weights (BatchNorm, GroupNorm) drawn at random, in
    place: fresh ones make inference BatchNorm an identity that would hide a wrong export."""
    import numpy as np

    rng = np.random.default_rng(seed)
    for variable in model.weights:
        shape = tuple(variable.shape)
        if variable.path.endswith(("moving_variance", "gamma")):
            variable.assign(rng.uniform(0.5, 1.5, shape).astype(variable.dtype))
        elif variable.path.endswith(("moving_mean", "beta")):
            variable.assign(rng.normal(0.0, 0.1, shape).astype(variable.dtype))


def relative_error(actual, expected):
    import numpy as np

    actual, expected = np.asarray(actual), np.asarray(expected)
    return float(np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1e-12))


def check_runtime(convert, predict, images, expected):
    """(status, seconds, relative error): status "ok", "mismatch" or "fail: <error>"."""
    start = time.perf_counter()
    try:
        artifact = convert()
    except Exception as error:  # noqa: BLE001 (the table reports every failure)
        status = f"fail: {type(error).__name__}: {first_line(error)}"
        return status, time.perf_counter() - start, None
    seconds = time.perf_counter() - start
    try:
        error = relative_error(predict(artifact, images), expected)
    except Exception as error:  # noqa: BLE001
        return f"run fails: {type(error).__name__}: {first_line(error)}", seconds, None
    return ("ok" if error <= TOLERANCE else "mismatch"), seconds, error


def first_line(error):
    return str(error).strip().split("\n")[0][:160]


def check_model(name, model, images, expected, workdir, with_onnx, call_kwargs=None):
    from keras_structconv import export

    # Subclassed models (QGN) have no symbolic inputs: the shape comes from the images.
    shape = tuple(images.shape[1:])
    options = {"input_shape": shape, "call_kwargs": call_kwargs}
    row = {"model": name, "parameters": int(model.count_params())}
    row["tflite"], row["tflite_s"], row["tflite_error"] = check_runtime(
        lambda: export.to_tflite(model, **options),
        lambda flatbuffer, x: first_output(export.tflite_predict(flatbuffer, x)),
        images, expected,
    )
    if with_onnx:
        path = Path(workdir) / f"{name}.onnx"

        def to_onnx():
            export.to_onnx(model, path, **options)
            return path

        row["onnx"], row["onnx_s"], row["onnx_error"] = check_runtime(
            to_onnx, lambda onnx_path, x: first_output(export.onnx_predict(onnx_path, x)),
            images, expected,
        )
        path.unlink(missing_ok=True)
    else:
        row["onnx"], row["onnx_s"], row["onnx_error"] = "not run", None, None
    return row


def first_output(outputs):
    """The classes map of a QGN's dict output; the output of the others."""
    if isinstance(outputs, dict):
        key = "classes" if "classes" in outputs else sorted(outputs)[0]
        return outputs[key]
    return outputs


def check_builder(name, builder, workdir, with_onnx):
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    model, kwargs = build(builder)
    randomize_batch_norm(model)
    shape = tuple(model.inputs[0].shape[1:])
    images = np.random.default_rng(1).normal(size=(2, *shape)).astype("float32")
    expected = model.predict(images, batch_size=2, verbose=0)
    row = check_model(name, model, images, expected, workdir, with_onnx)
    row["input"] = "x".join(str(size) for size in shape)
    row["logits"] = kwargs.get("classifier_activation", "default") is None
    return row


def check_qgn(propagation, workdir, with_onnx):
    import keras
    import numpy as np

    from keras_structconv.models import QGN

    keras.utils.set_random_seed(0)
    model = QGN(5, encoder="resnet18", levels=4, input_shape=(32, 32, 3), propagation="pred",
                decoder_filters=[8, 8, 8], decoder_units=[1, 1, 1], top_filters=16)
    images = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype("float32")
    expected = np.asarray(model(images, propagation=propagation, training=False)["classes"])
    row = check_model(f"QGN (resnet18, 4 levels, {propagation})", model, images,
                      expected.astype("float32"), workdir, with_onnx,
                      call_kwargs={"propagation": propagation})
    row["input"] = "32x32x3"
    row["logits"] = False
    return row


def in_subprocess(name, with_onnx, workdir):
    """The row of job `name`, computed by this script in a fresh Python process."""
    output = Path(workdir) / "row.json"
    command = [sys.executable, __file__, "--worker", name, "--only", name, "--json", str(output)]
    command += [] if with_onnx else ["--no-onnx"]
    command += [] if name.startswith("QGN") else ["--no-qgn"]
    completed = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    if not output.exists():
        raise RuntimeError(f"the worker process exited with status {completed.returncode}: "
                           f"{completed.stderr.strip().splitlines()[-1:]}")
    (row,) = json.loads(output.read_text(encoding="utf-8"))
    output.unlink()
    return row


def markdown(rows, with_onnx):
    def error(value):
        return "" if value is None else f"{value:.1e}"

    def seconds(value):
        return "" if value is None else f"{value:.1f}"

    lines = ["| model | params | input | TFLite builtin | s | rel. error | ONNX | s | rel. error |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {row['model']} | {row.get('parameters', 0):,} | {row.get('input', '')} | "
            f"{row['tflite']} | {seconds(row['tflite_s'])} | {error(row['tflite_error'])} | "
            f"{row['onnx'] if with_onnx else 'not run'} | {seconds(row['onnx_s'])} | "
            f"{error(row['onnx_error'])} |"
        )
    return "\n".join(lines)


def main(argv=None):
    args = build_parser().parse_args(argv)
    import keras

    selected = builders()
    if args.only:
        # In the order of the patterns: the quick conversions first when they come first.
        ordered = {}
        for pattern in args.only:
            for name, builder in selected.items():
                if fnmatch.fnmatch(name.lower(), pattern.lower()):
                    ordered.setdefault(name, builder)
        selected = ordered
    selected = {name: builder for name, builder in selected.items()
                if not any(fnmatch.fnmatch(name.lower(), pattern.lower())
                           for pattern in args.skip)}
    with_onnx = not args.no_onnx
    rows = []
    total = len(selected) + (0 if args.no_qgn else 2)
    with tempfile.TemporaryDirectory(prefix="export_check_") as workdir:
        jobs = [(name, lambda n=name, b=builder: check_builder(n, b, workdir, with_onnx))
                for name, builder in selected.items()]
        if not args.no_qgn:
            jobs += [(f"QGN {mode}", lambda m=mode: check_qgn(m, workdir, with_onnx))
                     for mode in ("pred", "all")]
        if args.worker is not None:
            jobs = [job for job in jobs if job[0] == args.worker]
        elif not args.in_process:
            jobs = [(name, lambda n=name: in_subprocess(n, with_onnx, workdir))
                    for name, _ in jobs]
        for index, (name, job) in enumerate(jobs, 1):
            print(f"[{index}/{total}] {name} ...", file=sys.stderr, flush=True)
            try:
                row = job()
            except Exception as error:  # noqa: BLE001 (a builder that fails to build is a row)
                traceback.print_exc()
                row = {"model": name, "tflite": f"build fails: {first_line(error)}",
                       "tflite_s": None, "tflite_error": None, "onnx": "", "onnx_s": None,
                       "onnx_error": None}
            rows.append(row)
            print(markdown([row], with_onnx).split("\n")[-1], flush=True)
            keras.backend.clear_session()
    table = markdown(rows, with_onnx)
    print(table)
    if args.output:
        args.output.write_text(table + "\n", encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    passed = all(row["tflite"] == "ok" and (row["onnx"] == "ok" or not with_onnx)
                 for row in rows)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
