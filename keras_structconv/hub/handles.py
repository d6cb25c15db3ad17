"""Handles: the strings that name a model, parsed into what the hub must fetch.

- `keras_structconv/<model>[/<version>]`: an entry of the manifest (newest version by default);
- `https://...` or `http://...`: an archive URL, optionally ending with `#sha256=<hex>`;
- `file:///...`, or a local path: an archive (`.tar.gz`) or an extracted folder.

Example:

```python
parse_handle("keras_structconv/cifar_resnet20/2")  # ManifestHandle(name="cifar_resnet20", ...)
parse_handle("https://example.org/m-1.tar.gz#sha256=9f86d0...")  # UrlHandle(...)
```
"""

from __future__ import annotations

import dataclasses
import os
import re
import urllib.parse
import urllib.request
from pathlib import Path

from keras_structconv.hub.errors import HandleError

PREFIX = "keras_structconv/"
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
_FORMS = (
    "keras_structconv/<model>[/<version>], an http(s):// or file:// URL of an archive, "
    "or a local folder or .tar.gz path"
)


@dataclasses.dataclass(frozen=True)
class ManifestHandle:
    """`keras_structconv/<name>[/<version>]`; `version` None means the newest."""

    text: str
    name: str
    version: int | None


@dataclasses.dataclass(frozen=True)
class UrlHandle:
    """An http(s) archive URL; `sha256` comes from a `#sha256=<hex>` fragment when given."""

    text: str
    url: str
    sha256: str | None


@dataclasses.dataclass(frozen=True)
class LocalHandle:
    """A local archive file or extracted folder (from a path or a `file://` URL)."""

    text: str
    path: Path


Handle = ManifestHandle | UrlHandle | LocalHandle


def parse_handle(handle: str | os.PathLike) -> Handle:
    """Parses `handle`; raises `HandleError` (a `ValueError`) naming it when it is malformed."""
    if isinstance(handle, os.PathLike):
        return _local(str(handle), Path(handle))
    if not isinstance(handle, str) or not handle.strip():
        raise HandleError(f"`handle` must be a non-empty string: {_FORMS}. Received: {handle=}")
    text = handle.strip()
    if text.startswith(PREFIX):
        return _manifest_handle(text)
    scheme = urllib.parse.urlsplit(text).scheme.lower()
    if scheme in ("http", "https"):
        return _url_handle(text)
    if scheme == "file":
        path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(text).path))
        return _local(text, path)
    if len(scheme) > 1:  # a one-letter scheme is a Windows drive, not a URL
        raise HandleError(f"Unsupported URL scheme {scheme!r}; a handle is {_FORMS}. "
                          f"Received: handle={text!r}")
    return _local(text, Path(text).expanduser())


def is_archive_name(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def _manifest_handle(text: str) -> ManifestHandle:
    parts = text[len(PREFIX) :].split("/")
    if len(parts) not in (1, 2) or not NAME_PATTERN.match(parts[0]):
        raise HandleError(
            f"A manifest handle is keras_structconv/<model>[/<version>] with a lower-case model "
            f"name (letters, digits, '_', '.', '-'). Received: handle={text!r}"
        )
    version = None
    if len(parts) == 2:
        if not parts[1].isdigit() or int(parts[1]) < 1:
            raise HandleError(
                f"The version of a manifest handle is a positive integer. Received: handle={text!r}"
            )
        version = int(parts[1])
    return ManifestHandle(text=text, name=parts[0], version=version)


def _url_handle(text: str) -> UrlHandle:
    url, fragment = urllib.parse.urldefrag(text)
    sha256 = None
    if fragment:
        key, _, value = fragment.partition("=")
        if key != "sha256" or not SHA256_PATTERN.match(value.lower()):
            raise HandleError(
                f"The only URL fragment a handle takes is #sha256=<64 hex digits>. "
                f"Received: handle={text!r}"
            )
        sha256 = value.lower()
    return UrlHandle(text=text, url=url, sha256=sha256)


def _local(text: str, path: Path) -> LocalHandle:
    if path.is_dir() or (path.is_file() and is_archive_name(path.name)):
        return LocalHandle(text=text, path=path.resolve())
    if path.exists():
        raise HandleError(
            f"A local handle is an extracted folder or a .tar.gz archive; {path} is neither. "
            f"Received: handle={text!r}"
        )
    raise HandleError(
        f"No such file or folder: {path}. A handle is {_FORMS}. Received: handle={text!r}"
    )
