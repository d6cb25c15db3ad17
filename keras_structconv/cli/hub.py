"""`structconv hub ...`: list, info, pull, publish, serve and convert zoo models.

    structconv hub list
    structconv hub info HANDLE
    structconv hub pull HANDLE [--format keras|savedmodel]
    structconv hub publish MODEL.keras --name NAME --version N --out DIST [--metrics results.json]
    structconv hub serve DIST --port P
    structconv hub tflite HANDLE -o model.tflite

HANDLE is `keras_structconv/<model>[/<version>]`, an archive URL, or a local archive or folder;
the environment variables are those of `keras_structconv.hub` (KERAS_STRUCTCONV_HUB_CACHE,
KERAS_STRUCTCONV_HUB_URL, KERAS_STRUCTCONV_HUB_OFFLINE, KERAS_STRUCTCONV_HUB_TIMEOUT).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

from keras_structconv import hub
from keras_structconv.cli._common import add_subcommand, positive_int

# Largest |TFLite - Keras| output difference accepted, relative to max(1, max |Keras output|).
TFLITE_TOLERANCE = 1e-4
CHECK_IMAGES = 4


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "hub",
        help="list, pull, publish and serve zoo models",
        description="The model hub: handles, verified downloads into a cache, publishing.",
    )
    commands = parser.add_subparsers(dest="hub_command", metavar="HUB_COMMAND", required=True)

    def add_hub_command(name, run, **parser_options):
        return add_subcommand(commands, name, _reporting_hub_errors(run), **parser_options)

    add_hub_command("list", run_list, help="the models the manifest in effect offers")

    info = add_hub_command("info", run_info, help="metadata of a model (manifest entry or archive)")
    info.add_argument("handle")

    pull = add_hub_command(
        "pull", run_pull, help="download, verify and cache a model; print its folder"
    )
    pull.add_argument("handle")
    pull.add_argument("--format", choices=hub.api.FORMATS, default=None,
                      help="also load it in this format, as a check")
    pull.add_argument("--no-progress", dest="progress", action="store_false")

    publish = add_hub_command(
        "publish", run_publish,
        help="write a model's archive, .sha256 file and manifest entry into DIST",
    )
    publish.add_argument("model", type=Path, help="a .keras file")
    publish.add_argument("--name", required=True, help="model name in handles, e.g. cifar_resnet20")
    publish.add_argument("--version", required=True, type=positive_int)
    publish.add_argument("--out", required=True, type=Path, help="the hub folder (DIST)")
    publish.add_argument("--metrics", type=Path, default=None,
                         help="JSON file of evaluation results, stored as the metrics")
    publish.add_argument("--labels", type=Path, default=None,
                         help="class names: a JSON list, or a text file with one per line")
    publish.add_argument("--preprocessing", type=Path, default=None,
                         help="JSON file describing the expected inputs (default: RGB in 0-255)")
    publish.add_argument("--license", default=None)
    publish.add_argument("--paper", default=None, help="paper reference")
    publish.add_argument("--description", default=None)
    publish.add_argument("--training-command", default=None)
    publish.add_argument("--training-data", default=None)
    publish.add_argument("--also-manifest", type=Path, default=None,
                         help="also add the entry to this manifest, e.g. "
                         "keras_structconv/hub/manifest.json (URL relative to the hub base)")
    publish.add_argument("--overwrite", action="store_true",
                         help="replace an archive of the same name and version")

    serve = add_hub_command(
        "serve", run_serve, help="serve a hub folder over HTTP (Range supported)"
    )
    serve.add_argument("directory", type=Path)
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--host", default="127.0.0.1",
                       help="interface (default %(default)s; 0.0.0.0 for every interface)")

    tflite = add_hub_command(
        "tflite", run_tflite,
        help="convert a hub model to TFLite and check it against the Keras outputs",
    )
    tflite.add_argument("handle")
    tflite.add_argument("-o", "--output", type=Path, default=Path("model.tflite"))
    tflite.add_argument("--allow-flex", action="store_true",
                        help="fall back to TensorFlow (Flex) ops when builtins do not suffice")
    tflite.add_argument("--seed", type=int, default=0, help="seed of the check's random images")


def _reporting_hub_errors(run):
    """`run` with the hub's errors (bad handle, failed download, checksum, offline) printed as
    one line on stderr and exit status 1, instead of a traceback."""

    @functools.wraps(run)
    def wrapped(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except hub.HubError as error:
            print(f"structconv hub {args.hub_command}: {type(error).__name__}: {error}",
                  file=sys.stderr)
            return 1

    return wrapped


def run_list(args: argparse.Namespace) -> int:
    models = hub.list_models()
    if not models:
        print("The manifest lists no models.")
        return 0
    for model in models:
        metadata = model["metadata"]
        parameters = metadata.get("parameters", {}).get("total")
        metrics = ", ".join(f"{key} {value}" for key, value in metadata.get("metrics", {}).items())
        print(f"{model['handle']:<40} {_human_size(model['size']):>10}  "
              f"{parameters if parameters is not None else '?':>11} params  {metrics}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    print(json.dumps(hub.info(args.handle), indent=2, sort_keys=True))
    return 0


def run_pull(args: argparse.Namespace) -> int:
    folder = hub.resolve(args.handle, progress=args.progress)
    print(folder)
    if args.format is not None:
        hub.load(args.handle, format=args.format, progress=args.progress)
        print(f"loaded as {args.format}: OK")
    return 0


def run_publish(args: argparse.Namespace) -> int:
    entry = hub.publish(
        args.model,
        name=args.name,
        version=args.version,
        out_dir=args.out,
        metrics=_read_json(args.metrics) if args.metrics else None,
        labels=_read_labels(args.labels) if args.labels else None,
        preprocessing=_read_json(args.preprocessing) if args.preprocessing else None,
        license=args.license,
        paper=args.paper,
        description=args.description,
        training={key: value for key, value in (("command", args.training_command),
                                                ("data", args.training_data)) if value},
        overwrite=args.overwrite,
    )
    if args.also_manifest is not None:
        hub.manifest.write_entry(args.also_manifest, entry)
    print(f"published {entry.handle}: {args.out / entry.url} ({entry.size} bytes, "
          f"sha256 {entry.sha256})")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    server = hub.make_server(args.directory, port=args.port, host=args.host)
    host, port = server.server_address[:2]
    print(f"serving {args.directory} at http://{host}:{port}/ (KERAS_STRUCTCONV_HUB_URL); "
          "Ctrl-C stops", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped")  # Ctrl-C is how a user ends `serve`: not an error
    finally:
        server.server_close()
    return 0


def run_tflite(args: argparse.Namespace) -> int:
    from keras_structconv import export

    model = hub.load(args.handle)
    try:
        content = export.to_tflite(model, args.output, builtin_only=True)
        ops = "builtin ops only"
    except export.UnsupportedOpsError as error:
        if not args.allow_flex:
            print(f"{error}\nPass --allow-flex to convert with TensorFlow (Flex) ops.",
                  file=sys.stderr)
            return 1
        print(f"builtin TFLite ops do not suffice ({error}); converting with Flex ops",
              file=sys.stderr)
        content = export.to_tflite(model, args.output, builtin_only=False)
        ops = "needs TensorFlow (Flex) ops"
    difference, scale = _tflite_difference(model, content, seed=args.seed)
    tolerance = TFLITE_TOLERANCE * scale
    verdict = "OK" if difference <= tolerance else "MISMATCH"
    print(f"wrote {args.output} ({len(content)} bytes, {ops}); max |TFLite - Keras| "
          f"{difference:.3g} on {CHECK_IMAGES} random 0-255 inputs (tolerance {tolerance:.3g}): "
          f"{verdict}")
    return 0 if verdict == "OK" else 1


def _tflite_difference(model, content: bytes, *, seed: int) -> tuple[float, float]:
    """Max |TFLite - Keras| over the outputs on random 0-255 inputs, and the scale of the Keras
    outputs (max(1, max |output|))."""
    import numpy as np
    import tensorflow as tf

    from keras_structconv import export

    rng = np.random.default_rng(seed)
    inputs = [
        rng.uniform(0, 255, (CHECK_IMAGES, *tensor.shape[1:])).astype(tensor.dtype)
        for tensor in model.inputs
    ]
    feed = inputs[0] if len(inputs) == 1 else inputs
    lite = tf.nest.flatten(export.tflite_predict(content, feed))
    reference = tf.nest.flatten(model(feed, training=False))
    difference = max(
        float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
        for a, b in zip(lite, reference, strict=True)
    )
    scale = max(1.0, *(float(np.max(np.abs(np.asarray(output)))) for output in reference))
    return difference, scale


def _human_size(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.0f} KiB"


def _read_json(path: Path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _read_labels(path: Path) -> list[str]:
    text = Path(path).read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        return [str(label) for label in json.loads(text)]
    return [line.strip() for line in text.splitlines() if line.strip()]
