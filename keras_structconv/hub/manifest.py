"""The manifest: which models a hub offers, with each archive's URL, byte size and sha256.

```json
{"format_version": 1,
 "models": [{"name": "cifar_resnet20", "version": 1, "url": "cifar_resnet20-1.tar.gz",
             "size": 1048576, "sha256": "9f86d0...", "metadata": {"metrics": {...}, ...}}]}
```

`url` is absolute, or relative to the hub's base URL. Which manifest is read:

- `KERAS_STRUCTCONV_HUB_URL` set: `<base>/manifest.json`, fetched each time online; a copy is kept
  in the cache for offline mode;
- unset: the manifest shipped in the package (`keras_structconv/hub/manifest.json`), whose
  relative URLs resolve against the repository's `zoo/dist/` in a source checkout.

Example:

```python
manifest = load_manifest(cache_root)
entry = manifest.find(parse_handle("keras_structconv/cifar_resnet20"))
print(entry.handle, manifest.archive_url(entry), entry.sha256)
```
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import os
import urllib.parse
from pathlib import Path

from keras_structconv.hub import config
from keras_structconv.hub.download import download
from keras_structconv.hub.errors import HandleError, OfflineError
from keras_structconv.hub.handles import NAME_PATTERN, PREFIX, SHA256_PATTERN, ManifestHandle

MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class ManifestEntry:
    """One published version of one model."""

    name: str
    version: int
    url: str
    size: int
    sha256: str
    metadata: dict = dataclasses.field(default_factory=dict, compare=False)

    @property
    def handle(self) -> str:
        return f"{PREFIX}{self.name}/{self.version}"

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Manifest:
    """The entries of one manifest, where it came from, and the base of its relative URLs."""

    entries: tuple[ManifestEntry, ...]
    source: str
    base_url: str | None

    def find(self, handle: ManifestHandle) -> ManifestEntry:
        """The entry of `handle` (the newest version when it names none).

        Raises:
            HandleError: the model or the version is not listed; the message lists close names.
        """
        versions = sorted(
            (entry for entry in self.entries if entry.name == handle.name),
            key=lambda entry: entry.version,
        )
        if not versions:
            raise HandleError(self._unknown_name_message(handle))
        if handle.version is None:
            return versions[-1]
        for entry in versions:
            if entry.version == handle.version:
                return entry
        listed = ", ".join(str(entry.version) for entry in versions)
        raise HandleError(
            f"Model {handle.name!r} has no version {handle.version} in the manifest "
            f"({self.source}); versions: {listed}. Received: handle={handle.text!r}"
        )

    def archive_url(self, entry: ManifestEntry) -> str:
        """The absolute URL of the entry's archive."""
        if urllib.parse.urlsplit(entry.url).scheme:
            return entry.url
        if self.base_url is None:
            raise HandleError(
                f"The archive URL of {entry.handle!r} in {self.source} is relative "
                f"({entry.url!r}) and no base URL is known: set {config.URL_ENV} to the hub "
                f"holding the archives (a source checkout uses its zoo/dist/ folder)"
            )
        return urllib.parse.urljoin(self.base_url, entry.url)

    def _unknown_name_message(self, handle: ManifestHandle) -> str:
        names = sorted({entry.name for entry in self.entries})
        close = difflib.get_close_matches(handle.name, names, n=5, cutoff=0.6)
        if close:
            hint = "Close names: " + ", ".join(PREFIX + name for name in close) + "."
        elif names:
            hint = f"It lists {len(names)} model(s); `structconv hub list` shows them."
        else:
            hint = "It lists no models."
        return (
            f"Handle {handle.text!r} is not in the manifest ({self.source}). {hint} "
            f"Received: handle={handle.text!r}"
        )


def load_manifest(
    cache_root: Path,
    *,
    policy: config.DownloadPolicy | None = None,
    offline: bool | None = None,
    handle: str | None = None,
) -> Manifest:
    """The manifest in effect (see the module docstring), fetched from the hub when one is set;
    `handle`, when given, is named in errors."""
    base = config.hub_url()
    if base is None:
        dist = config.checkout_dist_dir()
        return read_manifest(
            config.PACKAGED_MANIFEST, base_url=dist.as_uri() + "/" if dist is not None else None
        )
    offline = config.offline() if offline is None else offline
    copy = Path(cache_root) / "manifests" / f"{hashlib.sha1(base.encode()).hexdigest()[:16]}.json"
    url = urllib.parse.urljoin(base, MANIFEST_FILE)
    if offline:
        if not copy.is_file():
            wanted = f"{handle!r} is not in the cache: " if handle else ""
            raise OfflineError(
                f"Offline mode ({config.OFFLINE_ENV}=1): {wanted}no copy of the manifest of "
                f"{base} in the cache {cache_root} (nothing was ever pulled from that hub here)"
            )
    else:
        copy.parent.mkdir(parents=True, exist_ok=True)
        part = copy.with_name(f"{copy.name}.part-{os.getpid()}")
        download(url, part, policy=policy or config.default_policy(), label=handle or url,
                 progress=False)
        try:
            parsed = parse_manifest(part.read_text(encoding="utf-8"), source=url, base_url=base)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        os.replace(part, copy)  # the copy offline mode reads
        return parsed
    return parse_manifest(copy.read_text(encoding="utf-8"), source=url, base_url=base)


def read_manifest(path: Path, *, base_url: str | None = None) -> Manifest:
    """The manifest in the file `path` (an absent file is an empty manifest)."""
    path = Path(path)
    if not path.is_file():
        return Manifest(entries=(), source=str(path), base_url=base_url)
    return parse_manifest(path.read_text(encoding="utf-8"), source=str(path), base_url=base_url)


def parse_manifest(text: str, *, source: str, base_url: str | None) -> Manifest:
    """Parses and validates a manifest's JSON text."""
    try:
        data = json.loads(text)
    except ValueError as error:
        raise ValueError(f"Manifest {source} is not valid JSON: {error}") from error
    found = data.get("format_version") if isinstance(data, dict) else None
    if found != FORMAT_VERSION:
        raise ValueError(
            f"Manifest {source} must be an object with format_version {FORMAT_VERSION}. "
            f"Received: format_version={found!r}"
        )
    models = data.get("models", [])
    entries = tuple(_entry(item, index, source) for index, item in enumerate(models))
    return Manifest(entries=entries, source=source, base_url=base_url)


def write_entry(path: Path, entry: ManifestEntry) -> None:
    """Adds `entry` to the manifest file `path` (created if absent), replacing the same
    name and version; the file is rewritten atomically, entries sorted."""
    path = Path(path)
    kept = [
        existing
        for existing in read_manifest(path).entries
        if (existing.name, existing.version) != (entry.name, entry.version)
    ]
    entries = sorted([*kept, entry], key=lambda item: (item.name, item.version))
    data = {"format_version": FORMAT_VERSION, "models": [item.to_json() for item in entries]}
    temporary = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def _entry(item, index, source) -> ManifestEntry:
    where = f"Manifest {source}, model #{index}"
    if not isinstance(item, dict):
        raise ValueError(f"{where} must be an object. Received: {item!r}")
    name, version = item.get("name"), item.get("version")
    url, size, sha256 = item.get("url"), item.get("size"), item.get("sha256")
    checks = (
        ("name", isinstance(name, str) and NAME_PATTERN.match(name), name),
        ("version", isinstance(version, int) and not isinstance(version, bool) and version >= 1,
         version),
        ("url", isinstance(url, str) and url, url),
        ("size", isinstance(size, int) and not isinstance(size, bool) and size > 0, size),
        ("sha256", isinstance(sha256, str) and SHA256_PATTERN.match(sha256), sha256),
    )
    for field, valid, value in checks:
        if not valid:
            raise ValueError(f"{where} has an invalid {field}. Received: {field}={value!r}")
    return ManifestEntry(
        name=name, version=version, url=url, size=size, sha256=sha256,
        metadata=item.get("metadata") or {},
    )
