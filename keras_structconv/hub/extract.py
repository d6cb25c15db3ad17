"""Safe extraction of a hub archive, and the check of its files against `metadata.json`.

A member is refused, before anything is written, when its path is absolute or climbs out with
`..`, or when it is a symbolic link, a hard link, a device or a FIFO: an archive holds regular
files and folders only. `tarfile`'s `filter="data"` then applies the same rules a second time
(and drops permission bits that make no sense in a cache).

Example:

```python
safe_extract(Path("m-1.tar.gz"), Path("/tmp/m"), label="keras_structconv/m/1")
verify_files(Path("/tmp/m"), label="keras_structconv/m/1")
```
"""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path, PurePosixPath

from keras_structconv.hub.download import sha256_of_file
from keras_structconv.hub.errors import ArchiveError, ChecksumError, UnsafeArchiveError

METADATA_FILE = "metadata.json"
KERAS_FILE = "model.keras"
SAVED_MODEL_FILE = "saved_model.pb"
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


def safe_extract(archive: Path, destination: Path, *, label: str) -> None:
    """Extracts the gzipped tar `archive` into the existing folder `destination`.

    Raises:
        UnsafeArchiveError: a member is absolute, contains `..`, or is not a file or folder.
        ArchiveError: the file is not a gzipped tar.
    """
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            for member in members:
                check_member(member, label=label)
            tar.extractall(destination, members=members, filter="data")
    except tarfile.FilterError as error:
        raise UnsafeArchiveError(f"Archive of {label!r} refused by tarfile: {error}") from error
    except (tarfile.ReadError, EOFError) as error:
        raise ArchiveError(f"Archive of {label!r} is not a readable .tar.gz: {error}") from error


def check_member(member: tarfile.TarInfo, *, label: str) -> None:
    """Raises `UnsafeArchiveError` when `member` could write outside the extraction folder."""
    name = member.name
    where = f"Archive of {label!r} holds {name!r}"
    if name.startswith(("/", "\\")) or _WINDOWS_DRIVE.match(name):
        raise UnsafeArchiveError(f"{where}: an absolute path")
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        raise UnsafeArchiveError(f"{where}: a path with '..'")
    if member.issym() or member.islnk():
        raise UnsafeArchiveError(f"{where}: a {'symbolic' if member.issym() else 'hard'} link")
    if not (member.isfile() or member.isdir()):
        raise UnsafeArchiveError(f"{where}: a device, FIFO or other special file")


def read_metadata(folder: Path, *, label: str) -> dict:
    """The parsed `metadata.json` of an extracted archive."""
    path = Path(folder) / METADATA_FILE
    if not path.is_file():
        raise ArchiveError(f"Model {label!r} has no {METADATA_FILE} in {folder}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ArchiveError(f"{METADATA_FILE} of {label!r} is not valid JSON: {error}") from error


def verify_files(folder: Path, *, label: str) -> dict:
    """Checks every file listed in `metadata.json` against its sha256; returns the metadata.

    The archive's own sha256 guards the transfer; this guards the publishing (an archive put
    together by hand, or a local folder edited after the fact)."""
    metadata = read_metadata(folder, label=label)
    files = metadata.get("files")
    if not isinstance(files, dict) or KERAS_FILE not in files:
        raise ArchiveError(
            f"{METADATA_FILE} of {label!r} must map each file (model.keras included) to its sha256"
        )
    for relative, expected in sorted(files.items()):
        if ".." in PurePosixPath(relative).parts or relative.startswith("/"):
            raise UnsafeArchiveError(f"{METADATA_FILE} of {label!r} lists {relative!r}")
        path = Path(folder) / relative
        if not path.is_file():
            raise ArchiveError(f"Model {label!r} lacks {relative}, listed in {METADATA_FILE}")
        received = sha256_of_file(path)
        if received != expected:
            raise ChecksumError(
                f"File {relative} of {label!r} has sha256 {received}, but {METADATA_FILE} "
                f"expects {expected}"
            )
    if not (Path(folder) / SAVED_MODEL_FILE).is_file():
        raise ArchiveError(f"Model {label!r} has no SavedModel ({SAVED_MODEL_FILE}) at its root")
    return metadata
