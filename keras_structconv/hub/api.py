"""`load`, `resolve`, `list_models` and `info`: the hub as users call it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from keras_structconv.hub import cache, config
from keras_structconv.hub.download import download, sha256_of_file
from keras_structconv.hub.errors import ArchiveError, DownloadError, HandleError
from keras_structconv.hub.extract import (
    KERAS_FILE,
    SAVED_MODEL_FILE,
    read_metadata,
    verify_files,
)
from keras_structconv.hub.handles import (
    SHA256_PATTERN,
    LocalHandle,
    ManifestHandle,
    UrlHandle,
    parse_handle,
)
from keras_structconv.hub.manifest import load_manifest

FORMATS = ("keras", "savedmodel")
CHECKSUM_SUFFIX = ".sha256"


def load(
    handle: str | os.PathLike,
    *,
    format: str = "keras",
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    policy: config.DownloadPolicy | None = None,
):
    """Loads a published model, downloading and caching its archive first if needed.

    Args:
        handle: `keras_structconv/<model>[/<version>]` (newest version by default), an
            `http(s)://` URL of an archive (optionally ending with `#sha256=<hex>`), a `file://`
            URL, or a local archive or extracted folder.
        format: `"keras"` returns the `keras.Model` of the archive's `model.keras`, loaded with
            `safe_mode=True` (ready to fine-tune); `"savedmodel"` returns a
            `keras.layers.TFSMLayer` on its SavedModel (inference, serving), computing in float32.
        cache_dir: the cache folder (default: `KERAS_STRUCTCONV_HUB_CACHE`, else
            `~/.cache/keras_structconv/hub`).
        progress: show a progress bar while downloading.
        policy: timeouts and retries (default: `DownloadPolicy()` with
            `KERAS_STRUCTCONV_HUB_TIMEOUT`).

    Returns:
        A `keras.Model` or a `keras.layers.TFSMLayer`. Published models take RGB images with
        values in [0, 255]; `info(handle)["preprocessing"]` says what each one expects.

    Example:

    ```python
    from keras_structconv import hub

    model = hub.load("keras_structconv/cifar_resnet20")
    probabilities = model.predict(images)  # uint8 or float RGB, 0-255
    serving = hub.load("keras_structconv/cifar_resnet20/1", format="savedmodel")
    ```
    """
    if format not in FORMATS:
        raise ValueError(f"`format` must be one of {FORMATS}. Received: format={format!r}")
    folder = Path(resolve(handle, cache_dir=cache_dir, progress=progress, policy=policy))
    import keras

    if format == "keras":
        # keras_structconv.load_model: registers the package's classes (the hub itself knows no
        # architecture) and names the classes a file from another version needs.
        from keras_structconv import export

        return export.load_model(folder / KERAS_FILE, safe_mode=True)
    metadata = read_metadata(folder, label=str(handle))
    return keras.layers.TFSMLayer(
        str(folder), call_endpoint=metadata.get("serving_endpoint", "serve"), dtype="float32"
    )


def resolve(
    handle: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    policy: config.DownloadPolicy | None = None,
) -> str:
    """The local folder of the model's extracted archive (as `tensorflow_hub.resolve`).

    A local folder is returned as it is (after checking its files); anything else is fetched into
    the cache once and verified (archive sha256, then each file against `metadata.json`). A
    handle naming its version is served from the cache without any request once it is there
    (published versions are immutable); without a version the manifest is read to find the
    newest. A URL without `#sha256=` has the `.sha256` file beside the archive read each time (a
    changed archive is fetched again). In offline mode (`KERAS_STRUCTCONV_HUB_OFFLINE=1`) only
    the cache is used.

    Example:

    ```python
    folder = keras_structconv.hub.resolve("keras_structconv/cifar_resnet20/1")
    ```
    """
    parsed = parse_handle(handle)
    policy = policy or config.default_policy()
    root = config.cache_dir(cache_dir)
    offline = config.offline()
    if isinstance(parsed, LocalHandle):
        return str(_resolve_local(parsed, root))
    if isinstance(parsed, ManifestHandle):
        pinned = cache.CacheEntry(root, _manifest_key(parsed.name, parsed.version))
        if parsed.version is not None and pinned.is_complete(None):
            # Published versions are immutable: a verified copy needs no network at all.
            return str(pinned.folder)
        manifest = load_manifest(root, policy=policy, offline=offline, handle=parsed.text)
        entry = manifest.find(parsed)
        key = _manifest_key(entry.name, entry.version)
        source, expected = manifest.archive_url(entry), entry.sha256
    else:
        key = "url-" + hashlib.sha256(parsed.url.encode()).hexdigest()[:16]
        source = parsed.url
        expected = parsed.sha256
    slot = cache.CacheEntry(root, key)
    if offline:
        return str(cache.lookup_offline(slot, expected, label=parsed.text))
    if expected is None:  # an http(s) URL without #sha256=: the checksum file beside it
        expected = _published_checksum(parsed, root, policy)
    return str(
        cache.fill(slot, source=source, expected_sha256=expected, label=parsed.text,
                   policy=policy, progress=progress)
    )


def list_models() -> list[dict[str, Any]]:
    """What the manifest in effect offers: one dict per model version (handle, url, size,
    sha256 and the metadata summary: metrics, parameters, inputs, preprocessing, paper, licence,
    training), newest version last.

    Example:

    ```python
    for model in keras_structconv.hub.list_models():
        print(model["handle"], model["metadata"].get("metrics"))
    ```
    """
    root = config.cache_dir()
    manifest = load_manifest(root)
    return [_describe(entry, manifest) for entry in manifest.entries]


def info(handle: str | os.PathLike, **resolve_kwargs) -> dict[str, Any]:
    """What is known of one model: for a manifest handle its manifest entry (no download);
    otherwise the archive's `metadata.json` (the archive is fetched into the cache first).

    Example:

    ```python
    print(keras_structconv.hub.info("keras_structconv/cifar_resnet20")["metadata"]["metrics"])
    ```
    """
    parsed = parse_handle(handle)
    if isinstance(parsed, ManifestHandle):
        manifest = load_manifest(
            config.cache_dir(resolve_kwargs.get("cache_dir")),
            policy=resolve_kwargs.get("policy"),
            handle=parsed.text,
        )
        return _describe(manifest.find(parsed), manifest)
    folder = Path(resolve(handle, **resolve_kwargs))
    return {"handle": parsed.text, "folder": str(folder),
            "metadata": read_metadata(folder, label=parsed.text)}


def _manifest_key(name: str, version: int | None) -> str:
    return f"{name}-v{version}"


def _describe(entry, manifest) -> dict[str, Any]:
    return {
        "handle": entry.handle,
        "name": entry.name,
        "version": entry.version,
        "url": manifest.archive_url(entry) if manifest.base_url or "://" in entry.url
        else entry.url,
        "size": entry.size,
        "sha256": entry.sha256,
        "metadata": entry.metadata,
    }


def _resolve_local(parsed: LocalHandle, root: Path) -> Path:
    if parsed.path.is_dir():
        if not (parsed.path / SAVED_MODEL_FILE).is_file():
            raise ArchiveError(
                f"Folder {parsed.path} is not an extracted hub archive (no {SAVED_MODEL_FILE}). "
                f"Received: handle={parsed.text!r}"
            )
        verify_files(parsed.path, label=parsed.text)
        return parsed.path
    sha256 = sha256_of_file(parsed.path)
    slot = cache.CacheEntry(root, f"archive-{sha256[:16]}")
    return cache.fill(slot, source=parsed.path, expected_sha256=sha256, label=parsed.text,
                      policy=config.default_policy(), progress=False)


def _published_checksum(parsed: UrlHandle, root: Path, policy) -> str:
    """The sha256 from `<url>.sha256`, which `structconv hub publish` writes beside each
    archive (`sha256sum` format)."""
    url = parsed.url + CHECKSUM_SUFFIX
    root.mkdir(parents=True, exist_ok=True)
    part = root / f"checksum-{os.getpid()}.part"
    try:
        download(url, part, policy=policy, label=parsed.text, progress=False)
        text = part.read_text(encoding="ascii", errors="replace").split()
    except DownloadError as error:
        raise HandleError(
            f"No sha256 is known for {parsed.text!r}: {url} could not be fetched ({error}). "
            f"Append #sha256=<hex> to the URL. Received: handle={parsed.text!r}"
        ) from error
    finally:
        part.unlink(missing_ok=True)
    if not text or not SHA256_PATTERN.match(text[0].lower()):
        raise HandleError(f"{url} holds no sha256. Received: handle={parsed.text!r}")
    return text[0].lower()
