"""The cache: one folder per model, filled under a lock, published by one atomic rename.

Layout of the cache folder for an entry `KEY` (`<model>-v<version>` for a manifest handle,
`url-<hash>` for a URL, `archive-<hash>` for a local archive):

```
KEY/             the extracted archive (SavedModel at its root, model.keras, metadata.json)
KEY.sha256       marker: the verified sha256 of the archive; written last
KEY.lock         lock file (fcntl.flock): one process fills KEY, the others wait, then reuse it
KEY.part         the download in progress (resumed if a killed process left it)
KEY.tmp-XXXXXX/  the extraction in progress, renamed to KEY once verified
```

An entry counts only with its marker (and, when the expected hash is known, a marker that holds
it): a folder without one is what a killed process left, and is fetched again.

Example:

```python
entry = CacheEntry(cache_dir(), "cifar_resnet20-v1")
folder = fill(entry, source="https://.../cifar_resnet20-1.tar.gz", expected_sha256="9f86...",
              label="keras_structconv/cifar_resnet20/1", policy=DownloadPolicy())
```
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

from keras_structconv.hub import download as download_lib
from keras_structconv.hub.config import DownloadPolicy
from keras_structconv.hub.errors import ChecksumError, OfflineError
from keras_structconv.hub.extract import safe_extract, verify_files


@dataclasses.dataclass(frozen=True)
class CacheEntry:
    """The paths of one cache entry."""

    root: Path
    key: str

    @property
    def folder(self) -> Path:
        return self.root / self.key

    @property
    def marker(self) -> Path:
        return self.root / f"{self.key}.sha256"

    @property
    def lock_path(self) -> Path:
        return self.root / f"{self.key}.lock"

    @property
    def part(self) -> Path:
        return self.root / f"{self.key}.part"

    def verified_sha256(self) -> str | None:
        """The hash in the marker when the entry is complete, else None."""
        if not (self.folder.is_dir() and self.marker.is_file()):
            return None
        return self.marker.read_text(encoding="ascii").strip() or None

    def is_complete(self, expected_sha256: str | None) -> bool:
        verified = self.verified_sha256()
        return verified is not None and expected_sha256 in (None, verified)


def lookup_offline(entry: CacheEntry, expected_sha256: str | None, *, label: str) -> Path:
    """The entry's folder when it is complete; else `OfflineError` naming `label`."""
    if entry.is_complete(expected_sha256):
        return entry.folder
    state = "is not in" if not entry.folder.exists() else "is incomplete or outdated in"
    raise OfflineError(
        f"Offline mode (KERAS_STRUCTCONV_HUB_OFFLINE=1) and {label!r} {state} the cache "
        f"{entry.root}. Pull it once online (structconv hub pull {label})."
    )


def fill(
    entry: CacheEntry,
    *,
    source: str | Path,
    expected_sha256: str | None,
    label: str,
    policy: DownloadPolicy,
    progress: bool = True,
) -> Path:
    """The entry's folder, downloading and extracting `source` first unless it is complete.

    Args:
        entry: the cache entry.
        source: a URL to download, or the `Path` of a local archive (read in place).
        expected_sha256: the archive's sha256; None accepts what arrives (local archives, whose
            hash is the key).
        label: the handle, named in errors.
        policy: download timeouts and retries.
        progress: show a progress bar.

    Raises:
        ChecksumError: the archive's sha256 is not `expected_sha256` (the download is deleted).
    """
    entry.root.mkdir(parents=True, exist_ok=True)
    with _locked(entry.lock_path):
        if entry.is_complete(expected_sha256):
            return entry.folder
        _remove_leftovers(entry)
        if isinstance(source, Path):
            archive, received = source, download_lib.sha256_of_file(source)
        else:
            archive = entry.part
            received = download_lib.download(
                source, archive, policy=policy, label=label, progress=progress
            )
        try:
            if expected_sha256 is not None and received != expected_sha256:
                raise ChecksumError(
                    f"Archive of {label!r} has the wrong sha256: expected {expected_sha256}, "
                    f"received {received} (from {source}); the download was deleted"
                )
            _extract_and_publish(entry, archive, received, label=label)
        finally:
            entry.part.unlink(missing_ok=True)
    return entry.folder


def _extract_and_publish(entry: CacheEntry, archive: Path, sha256: str, *, label: str) -> None:
    staging = Path(tempfile.mkdtemp(dir=entry.root, prefix=f"{entry.key}.tmp-"))
    try:
        safe_extract(archive, staging, label=label)
        verify_files(staging, label=label)
        staging.chmod(0o755)  # mkdtemp's 0o700 would make the entry private to its creator
        os.rename(staging, entry.folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _write_atomically(entry.marker, sha256 + "\n")


def _remove_leftovers(entry: CacheEntry) -> None:
    """Under the lock: an unmarked or outdated folder, its marker, and extractions of killed
    processes go; a `.part` file stays, to be resumed."""
    entry.marker.unlink(missing_ok=True)
    if entry.folder.exists():
        shutil.rmtree(entry.folder)
    for staging in entry.root.glob(f"{entry.key}.tmp-*"):
        shutil.rmtree(staging, ignore_errors=True)
    for marker in entry.root.glob(f"{entry.marker.name}.tmp-*"):
        marker.unlink(missing_ok=True)


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    temporary.write_text(text, encoding="ascii")
    os.replace(temporary, path)


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive `fcntl.flock` on `path`: released by the kernel if the process dies, so a
    killed holder never leaves a stale lock."""
    import fcntl  # POSIX only

    with open(path, "a+b") as lock_file:
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)
