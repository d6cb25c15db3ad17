"""A static HTTP server for a hub folder, with `Range` support (standard library only).

`structconv hub serve DIST --port P` runs it, so a team or CI can host the archives `publish`
wrote: point `KERAS_STRUCTCONV_HUB_URL` at `http://HOST:P/`. It serves files only (no listing),
answers `Range: bytes=a-b`, `bytes=a-` and `bytes=-n` with 206 (416 when unsatisfiable), and
ignores multi-range requests (full 200 answer, which HTTP allows).

Example:

```python
server = make_server("zoo/dist", port=0)  # 0: any free port
threading.Thread(target=server.serve_forever, daemon=True).start()
print(f"http://127.0.0.1:{server.server_address[1]}/")
```
"""

from __future__ import annotations

import email.utils
import functools
import http.server
import os
import re
import shutil
from pathlib import Path

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeRequestHandler(http.server.SimpleHTTPRequestHandler):
    """`SimpleHTTPRequestHandler` for files, plus single byte ranges; no folder listings."""

    protocol_version = "HTTP/1.1"

    def send_head(self):
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404, "File not found")
            return None
        file = open(path, "rb")  # closed by do_GET after copyfile
        try:
            size = os.fstat(file.fileno()).st_size
            span = self._requested_span(size)
            if span is False:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                file.close()
                return None
            start, end = span if span else (0, size - 1)
            self.send_response(206 if span else 200)
            self.send_header("Content-Type", self.guess_type(str(path)))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Last-Modified", email.utils.formatdate(os.path.getmtime(path),
                                                                     usegmt=True))
            if span:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.send_header("Content-Length", str(max(0, end - start + 1)))
            self.end_headers()
            file.seek(start)
            return _Window(file, end - start + 1)
        except BaseException:
            file.close()
            raise

    def copyfile(self, source, outputfile):
        shutil.copyfileobj(source, outputfile, 1 << 16)

    def _requested_span(self, size):
        """(start, end) for a satisfiable single range, None for no (or an ignored) range,
        False for an unsatisfiable one."""
        match = _RANGE.match(self.headers.get("Range", "").replace(" ", ""))
        if match is None or match.groups() == ("", ""):
            return None
        first, last = match.groups()
        if first == "":  # the last n bytes
            start, end = max(0, size - int(last)), size - 1
        else:
            start = int(first)
            end = min(int(last), size - 1) if last else size - 1
        if start >= size or start > end:
            return False
        return start, end

    def log_message(self, format, *args):
        if not getattr(self.server, "quiet", False):
            super().log_message(format, *args)


class _Window:
    """Reads at most `remaining` bytes of `file`; closing closes the file."""

    def __init__(self, file, remaining):
        self.file, self.remaining = file, remaining

    def read(self, size=-1):
        size = self.remaining if size is None or size < 0 else min(size, self.remaining)
        data = self.file.read(size)
        self.remaining -= len(data)
        return data

    def close(self):
        self.file.close()


def make_server(
    directory: str | os.PathLike, *, port: int = 8000, host: str = "127.0.0.1", quiet: bool = False
) -> http.server.ThreadingHTTPServer:
    """A threading HTTP server on `host:port` serving the files under `directory`.

    Args:
        directory: the hub folder (archives, `.sha256` files, `manifest.json`).
        port: TCP port; 0 picks a free one (read it from `server.server_address[1]`).
        host: the interface; the default serves this machine only, `0.0.0.0` every interface.
        quiet: no request log on stderr.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"`directory` must be an existing folder. Received: {directory=}")
    handler = functools.partial(RangeRequestHandler, directory=str(directory.resolve()))
    server = http.server.ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    server.quiet = quiet
    return server
