"""Helpers of the hub tests: a scriptable HTTP server on 127.0.0.1, archives, cache checks.

`HubServer` serves the files of a folder and answers each request for a path with the next
behaviour scripted for it (then "ok"): "ok" (honours Range), "404", "500", "cut" (announces the
full length, sends half, closes), "ignore_range" (answers 200 with everything), "stall" (sends
half, then waits until the server stops), "slow" (sends in small pieces with pauses). It records
every request: path, Range header, behaviour, bytes sent.
"""

from __future__ import annotations

import collections
import hashlib
import http.server
import io
import json
import tarfile
import threading
import time
from pathlib import Path

import numpy as np

from keras_structconv import hub

# Short timeouts and back-offs keep the failure tests fast (each still waits for real).
FAST_POLICY = hub.DownloadPolicy(connect_timeout=2.0, read_timeout=0.5, retries=2, backoff=0.01)


class _ScriptedHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        server = self.server
        name = self.path.split("?")[0].lstrip("/")
        behaviour = server.next_behaviour(name)
        record = {"path": name, "range": self.headers.get("Range"), "behaviour": behaviour,
                  "sent": 0}
        server.requests.append(record)
        path = server.root / name
        if behaviour in ("404", "500") or not path.is_file():
            status = 500 if behaviour == "500" else 404
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = path.read_bytes()
        start = 0
        requested = self.headers.get("Range")
        if requested and behaviour != "ignore_range":
            start = int(requested.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if behaviour in ("cut", "stall"):
            self._send(record, body[: len(body) // 2])
            if behaviour == "stall":
                server.stopping.wait(10)
            self.close_connection = True
            return
        if behaviour == "slow":
            for offset in range(0, len(body), 4096):
                self._send(record, body[offset : offset + 4096])
                time.sleep(server.slow_pause)
            return
        self._send(record, body)

    def _send(self, record, chunk):
        self.wfile.write(chunk)
        self.wfile.flush()
        record["sent"] += len(chunk)

    def log_message(self, format, *args):
        """Silent: request lines would drown the test output."""


class HubServer:
    """A threaded HTTP server on 127.0.0.1 (any free port) over the folder `root`."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ScriptedHandler)
        self.httpd.daemon_threads = True
        self.httpd.root = self.root
        self.httpd.requests = []
        self.httpd.stopping = threading.Event()
        self.httpd.slow_pause = 0.02
        self._plans = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()
        self.httpd.next_behaviour = self._next_behaviour
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    @property
    def requests(self) -> list[dict]:
        return self.httpd.requests

    def requests_for(self, name: str) -> list[dict]:
        return [record for record in self.requests if record["path"] == name]

    def plan(self, name: str, *behaviours: str) -> None:
        with self._lock:
            self._plans[name].extend(behaviours)

    def _next_behaviour(self, name):
        with self._lock:
            return self._plans[name].popleft() if self._plans[name] else "ok"

    def stop(self) -> None:
        self.httpd.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def write_archive(path: Path, files: dict[str, bytes], extra_members=()) -> str:
    """A hub-format .tar.gz: `files` plus a metadata.json listing their sha256; `extra_members`
    are (TarInfo, bytes or None) pairs added as they are. Returns the archive's sha256."""
    metadata = {"name": path.name, "files": {name: hashlib.sha256(data).hexdigest()
                                             for name, data in files.items()}}
    members = [*files.items(), ("metadata.json", json.dumps(metadata).encode())]
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info, data in extra_members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def small_archive_files(size: int = 200_000, seed: int = 0) -> dict[str, bytes]:
    """The files a hub archive must hold, with random content (the transfer tests never load
    them): large enough that a cut body leaves a real partial file."""
    rng = np.random.default_rng(seed)
    return {
        "saved_model.pb": rng.bytes(size),
        "variables/variables.index": rng.bytes(100),
        "model.keras": rng.bytes(1000),
    }


def publish_to_manifest(dist: Path, name: str, version: int, files=None, *, seed=0,
                        sha256=None) -> hub.manifest.ManifestEntry:
    """Writes `<name>-<version>.tar.gz` into `dist` and its entry into dist/manifest.json
    (with `sha256` instead of the real hash when given)."""
    archive = dist / f"{name}-{version}.tar.gz"
    real = write_archive(archive, files or small_archive_files(seed=seed))
    entry = hub.manifest.ManifestEntry(
        name=name, version=version, url=archive.name, size=archive.stat().st_size,
        sha256=sha256 or real, metadata={"metrics": {"top1": 0.5}},
    )
    hub.manifest.write_entry(dist / "manifest.json", entry)
    return entry


def assert_cache_clean(cache: Path) -> None:
    """Nothing half-written: no .part, no .tmp-, every entry folder has its marker, and every
    marker its folder."""
    if not cache.exists():
        return
    names = {path.name for path in cache.iterdir()}
    for name in names:
        assert ".part" not in name and ".tmp-" not in name, f"leftover {name} in {sorted(names)}"
        path = cache / name
        if path.is_dir() and name != "manifests":
            assert f"{name}.sha256" in names, f"entry {name} without its marker: {sorted(names)}"
        if name.endswith(".sha256"):
            assert name.removesuffix(".sha256") in names, f"marker without entry: {name}"
    manifests = cache / "manifests"
    if manifests.exists():
        leftovers = [path.name for path in manifests.iterdir() if not path.name.endswith(".json")]
        assert not leftovers, leftovers


def entries(cache: Path) -> list[str]:
    """The entry folders of the cache."""
    folders = (path for path in cache.iterdir() if path.is_dir() and path.name != "manifests")
    return sorted(path.name for path in folders)
