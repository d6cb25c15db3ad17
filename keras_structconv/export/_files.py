"""Writing exported files atomically: a reader finds the complete file or none."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

PathLike = str | os.PathLike


def write_atomically(path: Path, content: bytes) -> None:
    """Writes `content` to a temporary file beside `path`, then renames it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(content)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
