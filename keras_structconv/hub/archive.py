"""Publishing: a `.keras` file in, a hub archive, its checksum file and its manifest entry out.

The archive is a gzipped tar holding, at its root, the SavedModel exported from the model
(`saved_model.pb`, `variables/`, `assets/`, `fingerprint.pb`: the layout TensorFlow Hub's
resolver accepts for compressed modules), the `.keras` file as given (`model.keras`) and
`metadata.json` (name, version, inputs and outputs, preprocessing, labels, metrics, parameter
counts, the sha256 of every other file, Keras / TensorFlow / keras_structconv versions, licence,
paper, training command and data). Members are written sorted, owned by root, with time 0, so the
tar depends only on the files.

Publishing any `.keras` works: the hub reads what the file holds and imports no model builder.

Example:

```python
entry = publish("run/cifar_resnet20.keras", name="cifar_resnet20", version=1, out_dir="zoo/dist",
                metrics={"top1": 0.91}, paper="Deep Residual Learning (He et al., 2016)")
print(entry.handle, entry.sha256)  # zoo/dist/ now holds cifar_resnet20-1.tar.gz(.sha256)
```
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from keras_structconv import export
from keras_structconv.hub.download import sha256_of_file
from keras_structconv.hub.extract import KERAS_FILE, METADATA_FILE
from keras_structconv.hub.handles import NAME_PATTERN
from keras_structconv.hub.manifest import MANIFEST_FILE, ManifestEntry, write_entry

METADATA_FORMAT_VERSION = 1
SERVING_ENDPOINT = "serve"
DEFAULT_PREPROCESSING = {
    "color": "RGB",
    "value_range": [0, 255],
    "dtypes": ["uint8", "float32"],
    "description": (
        "RGB images with values in [0, 255], uint8 or float; the model normalises them itself."
    ),
}


def archive_name(name: str, version: int) -> str:
    return f"{name}-{version}.tar.gz"


def publish(
    model_path: str | os.PathLike,
    *,
    name: str,
    version: int,
    out_dir: str | os.PathLike,
    metrics: dict[str, Any] | None = None,
    labels: list[str] | None = None,
    preprocessing: dict[str, Any] | None = None,
    license: str | None = None,
    paper: str | None = None,
    description: str | None = None,
    training: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> ManifestEntry:
    """Writes `<name>-<version>.tar.gz`, its `.sha256` file, and its entry in
    `out_dir/manifest.json`; returns the entry.

    Args:
        model_path: a `.keras` file (loaded with `safe_mode=True` to export the SavedModel with
            `keras_structconv.export.export_saved_model`).
        name: the model's name in handles (lower case letters, digits, `_`, `.`, `-`).
        version: a positive integer; a published version is never replaced unless `overwrite`.
        out_dir: the hub folder (created if missing); `structconv hub serve` can serve it.
        metrics: evaluation results, stored as given (e.g. `{"top1": 0.91, "dataset": ...}`).
        labels: the class names, in output order.
        preprocessing: what the inputs must be (default `DEFAULT_PREPROCESSING`: RGB in 0-255).
        license, paper, description: free text.
        training: how the model was trained, e.g. `{"command": "...", "data": "CIFAR-10"}`.
        overwrite: replace an existing archive of the same name and version.
    """
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ValueError(
            "`name` must be lower case letters, digits, '_', '.' or '-', starting with a letter or "
            f"digit. Received: name={name!r}"
        )
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"`version` must be a positive integer. Received: version={version!r}")
    model_path = Path(model_path)
    if model_path.suffix != ".keras" or not model_path.is_file():
        raise ValueError(f"`model_path` must be an existing .keras file. Received: {model_path=}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    archive_path = out_dir / archive_name(name, version)
    if archive_path.exists() and not overwrite:
        raise ValueError(
            f"{archive_path} exists: a published version is immutable; publish version "
            f"{version + 1} or pass overwrite=True (--overwrite). Received: version={version}"
        )

    staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=".publish-"))
    try:
        model = export.load_model(model_path, compile=False, safe_mode=True)
        # Traced on the layers' portable inference path: the SavedModel holds no XLA-compiled
        # functions, so TF-Serving and TFLite's converter take it on any TensorFlow build.
        export.export_saved_model(model, staging)
        shutil.copyfile(model_path, staging / KERAS_FILE)
        metadata = _metadata(
            model, staging, name=name, version=version, metrics=metrics, labels=labels,
            preprocessing=preprocessing, license=license, paper=paper, description=description,
            training=training,
        )
        (staging / METADATA_FILE).write_text(
            json.dumps(metadata, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
        _write_tar_gz(staging, archive_path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    sha256 = sha256_of_file(archive_path)
    (out_dir / f"{archive_path.name}.sha256").write_text(
        f"{sha256}  {archive_path.name}\n", encoding="ascii"
    )
    summary = {key: value for key, value in metadata.items() if key != "files"}
    entry = ManifestEntry(
        name=name, version=version, url=archive_path.name, size=archive_path.stat().st_size,
        sha256=sha256, metadata=summary,
    )
    write_entry(out_dir / MANIFEST_FILE, entry)
    return entry


def _metadata(model, folder: Path, *, name, version, metrics, labels, preprocessing, license,
              paper, description, training) -> dict[str, Any]:
    import keras
    import tensorflow as tf

    import keras_structconv

    trainable = sum(int(weight.numpy().size) for weight in model.trainable_weights)
    files = {
        path.relative_to(folder).as_posix(): sha256_of_file(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != METADATA_FILE
    }
    return {
        "format_version": METADATA_FORMAT_VERSION,
        "name": name,
        "version": version,
        "description": description,
        "inputs": [_tensor_spec(tensor) for tensor in model.inputs],
        "outputs": [_tensor_spec(tensor) for tensor in model.outputs],
        "preprocessing": preprocessing if preprocessing is not None else DEFAULT_PREPROCESSING,
        "labels": labels,
        "metrics": metrics or {},
        "parameters": {"total": int(model.count_params()), "trainable": trainable},
        "serving_endpoint": SERVING_ENDPOINT,
        "files": files,
        "keras_version": keras.__version__,
        "tensorflow_version": tf.__version__,
        "keras_structconv_version": keras_structconv.__version__,
        "license": license,
        "paper": paper,
        "training": training or {},
    }


def _tensor_spec(tensor) -> dict[str, Any]:
    return {"name": tensor.name, "shape": list(tensor.shape), "dtype": str(tensor.dtype)}


def _write_tar_gz(folder: Path, destination: Path) -> None:
    """A reproducible .tar.gz of `folder`'s content (members at the root), written atomically."""
    temporary = destination.with_name(f".{destination.name}.tmp-{os.getpid()}")
    try:
        with (
            open(temporary, "wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as compressed,
            tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            for path in sorted(folder.rglob("*")):
                tar.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False,
                        filter=_normalised)
        os.replace(temporary, destination)
    finally:
        temporary.unlink(missing_ok=True)


def _normalised(member: tarfile.TarInfo) -> tarfile.TarInfo:
    member.uid = member.gid = 0
    member.uname = member.gname = ""
    member.mtime = 0
    member.mode = 0o755 if member.isdir() else 0o644
    return member
