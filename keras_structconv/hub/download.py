"""Streaming downloads with timeouts, retries with back-off, and `Range` resume.

One function, `download`, writes a URL into a `.part` file and returns the sha256 of what it
wrote. A failed attempt (connection error, timeout, a body cut short, HTTP 5xx or 429) is retried
after a back-off, asking the server for the missing bytes only (`Range: bytes=N-`); a server that
ignores `Range` (answers 200) or cannot satisfy it (416) makes the download restart from byte 0.
HTTP 4xx other than 429 fails at once. Whenever `download` raises, the `.part` file is gone. A
`.part` file found at the start (left by a killed process) is resumed. Only the standard library
is used (`http.client`); `file://` URLs are copied.

Example:

```python
sha256 = download("https://example.org/m-1.tar.gz", Path("/tmp/m.tar.gz.part"),
                  policy=DownloadPolicy(), label="keras_structconv/m/1")
```
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import re
import time
import urllib.parse
import urllib.request
from pathlib import Path

from keras_structconv.hub.config import TIMEOUT_ENV, DownloadPolicy
from keras_structconv.hub.errors import DownloadError

CHUNK_BYTES = 1 << 16
MAX_REDIRECTS = 5
USER_AGENT = "keras_structconv-hub/1"
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class _RetryableError(Exception):
    """A failed attempt worth repeating (transient network or server trouble)."""


def download(
    url: str,
    part_path: Path,
    *,
    policy: DownloadPolicy,
    label: str,
    progress: bool = True,
) -> str:
    """Downloads `url` into `part_path`; returns the sha256 (hex) of the complete file.

    Args:
        url: an `http://`, `https://` or `file://` URL.
        part_path: the file to write; its existing bytes are resumed.
        policy: timeouts, retries and back-off.
        label: what the download is for (the handle), named in every error.
        progress: show a progress bar (in KiB).

    Raises:
        DownloadError: on HTTP 4xx, a missing file, or when every retry failed.
    """
    try:
        if urllib.parse.urlsplit(url).scheme.lower() == "file":
            return _copy_file_url(url, part_path, label=label, progress=progress)
        return _download_http(url, part_path, policy=policy, label=label, progress=progress)
    except BaseException:
        part_path.unlink(missing_ok=True)
        raise


def _download_http(url, part_path, *, policy, label, progress):
    failures = 0
    bar = _ProgressBar(progress)
    while True:
        try:
            _attempt(url, part_path, policy=policy, label=label, bar=bar)
            bar.finish()
            return _sha256_of_file(part_path)
        except _RetryableError as error:
            failures += 1
            if failures > policy.retries:
                raise DownloadError(
                    f"Download of {label!r} from {url} failed after {failures} attempt(s): "
                    f"{error}"
                ) from error
            time.sleep(policy.delay_before_retry(failures))


def _attempt(url, part_path, *, policy, label, bar):
    """One request: appends to `part_path` from its current size; raises `_RetryableError`."""
    offset = part_path.stat().st_size if part_path.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    connection, response, final_url = _open(url, headers, policy=policy, label=label)
    with contextlib.closing(connection):
        total = _expected_total(response, offset, part_path, label=label, url=final_url)
        start = offset if response.status == 206 else 0
        bar.start(total)
        with open(part_path, "r+b" if start else "wb") as file:
            file.seek(start)
            file.truncate()
            received = start
            bar.update(received)
            while chunk := _read(response, policy):
                file.write(chunk)
                received += len(chunk)
                bar.update(received)
    if total is not None and received != total:
        raise _RetryableError(f"the body ended after {received} of {total} bytes")


def _expected_total(response, offset, part_path, *, label, url):
    """The full file size announced by the response (None when unknown), after checking the
    status. Resets `part_path` and returns None for a 206 that does not continue it."""
    status = response.status
    if status == 200:
        length = response.getheader("Content-Length")
        return int(length) if length and length.isdigit() else None
    if status == 206:
        match = _CONTENT_RANGE.match(response.getheader("Content-Range", "").strip())
        if match is None or int(match.group(1)) != offset:
            part_path.unlink(missing_ok=True)
            raise _RetryableError(
                f"the server answered Range bytes={offset}- with Content-Range "
                f"{response.getheader('Content-Range')!r}; restarting from byte 0"
            )
        return int(match.group(3)) if match.group(3).isdigit() else None
    if status == 416:  # the part file is not a prefix of what the server has
        part_path.unlink(missing_ok=True)
        raise _RetryableError("the server could not satisfy the Range request (HTTP 416)")
    if status >= 500 or status == 429:
        raise _RetryableError(f"HTTP {status} {response.reason}")
    raise DownloadError(f"Download of {label!r} failed: HTTP {status} {response.reason} for {url}")


def _open(url, headers, *, policy, label):
    """GET `url` (following redirects): `(connection, response, final url)`."""
    for _ in range(MAX_REDIRECTS + 1):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DownloadError(f"Download of {label!r}: unsupported URL {url}")
        connection_class = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        connection = connection_class(parts.hostname, parts.port, timeout=policy.connect_timeout)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            connection.connect()
            connection.sock.settimeout(policy.read_timeout)
            connection.request(
                "GET",
                target,
                headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **headers},
            )
            response = connection.getresponse()
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            raise _RetryableError(_describe(error, policy)) from error
        if response.status in (301, 302, 303, 307, 308) and response.getheader("Location"):
            url = urllib.parse.urljoin(url, response.getheader("Location"))
            connection.close()
            continue
        return connection, response, url
    raise DownloadError(f"Download of {label!r}: more than {MAX_REDIRECTS} redirects from {url}")


def _read(response, policy):
    try:
        return response.read(CHUNK_BYTES)
    except (OSError, http.client.HTTPException) as error:
        raise _RetryableError(_describe(error, policy)) from error


def _describe(error, policy):
    if isinstance(error, TimeoutError):
        return (
            f"no data for {policy.read_timeout:g} s (the timeout; {TIMEOUT_ENV} sets it): {error}"
        )
    return f"{type(error).__name__}: {error}"


def _copy_file_url(url, part_path, *, label, progress):
    source = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
    if not source.is_file():
        raise DownloadError(f"Download of {label!r} failed: no such file {source} ({url})")
    bar = _ProgressBar(progress)
    bar.start(source.stat().st_size)
    copied = 0
    with open(source, "rb") as reader, open(part_path, "wb") as writer:
        while chunk := reader.read(CHUNK_BYTES):
            writer.write(chunk)
            copied += len(chunk)
            bar.update(copied)
    bar.finish()
    return _sha256_of_file(part_path)


def _sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK_BYTES * 16):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_of_file(path: Path) -> str:
    """The sha256 (hex) of a file, read in chunks."""
    return _sha256_of_file(Path(path))


class _ProgressBar:
    """A `keras.utils.Progbar` in KiB, created on the first response (when the size is known)."""

    def __init__(self, enabled):
        self.enabled = enabled
        self.bar = None

    def start(self, total_bytes):
        if self.enabled and self.bar is None:
            import keras

            target = None if total_bytes is None else max(1, -(-total_bytes // 1024))
            self.bar = keras.utils.Progbar(target, unit_name="KiB", interval=0.25)

    def update(self, received_bytes):
        if self.bar is not None:
            self.bar.update(received_bytes // 1024)

    def finish(self):
        if self.bar is not None and self.bar.target is not None:
            self.bar.update(self.bar.target, finalize=True)
