"""Round trip with a real model: train, publish, serve, load in fresh processes (both formats).

Four processes pull the same handle at once from a server that sends slowly: the server counts
one download of the archive, and every process loads the model in both formats and computes
what the trained model computed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from keras_structconv import hub
from tests.conftest import REPO
from tests.hub.hub_testing import assert_cache_clean

PULLERS = 4
TOLERANCE = 1e-5

_PULLER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    import numpy as np
    from keras_structconv import hub

    barrier, handle, images = Path(sys.argv[1]), sys.argv[2], np.load(sys.argv[3])
    (barrier / str(sys.argv[4])).touch()
    deadline = time.monotonic() + 120
    while len(list(barrier.iterdir())) < int(sys.argv[5]) and time.monotonic() < deadline:
        time.sleep(0.01)
    model = hub.load(handle, progress=False)
    layer = hub.load(handle, format="savedmodel", progress=False)
    print(json.dumps({
        "folder": hub.resolve(handle, progress=False),
        "keras": np.asarray(model(images, training=False)).tolist(),
        "savedmodel": np.asarray(layer(images)).tolist(),
        "model_class": type(model).__name__,
        "layers": [type(layer).__name__ for layer in model.layers],
    }))
    """
)


def test_archive_layout_and_metadata(tiny_model_files):
    entry = tiny_model_files["entry"]
    dist = tiny_model_files["dist"]
    archive = dist / entry.url
    assert entry.handle == "keras_structconv/tiny_psconv/1" and entry.url == "tiny_psconv-1.tar.gz"
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        assert all(m.isfile() or m.isdir() for m in tar.getmembers())
        assert all(m.mtime == 0 and m.uid == 0 for m in tar.getmembers())
        metadata = json.load(tar.extractfile("metadata.json"))
    # The SavedModel at the root (TensorFlow Hub's compressed layout), plus the .keras file.
    assert {"saved_model.pb", "variables/variables.index", "model.keras"} <= names
    assert set(metadata["files"]) == names - {"metadata.json", "variables", "assets"}
    model_bytes = tiny_model_files["model_path"].read_bytes()
    assert metadata["files"]["model.keras"] == hashlib.sha256(model_bytes).hexdigest()
    assert metadata["inputs"] == [{"name": "images", "shape": [None, 8, 8, 3],
                                   "dtype": "float32"}]
    assert metadata["parameters"]["total"] == metadata["parameters"]["trainable"]
    assert metadata["preprocessing"]["value_range"] == [0, 255]
    assert metadata["serving_endpoint"] == "serve"
    assert metadata["metrics"] == {"loss": 1.0} and metadata["license"] == "MIT"
    manifest = json.loads((dist / "manifest.json").read_text())
    assert manifest["models"][0]["sha256"] == entry.sha256
    assert manifest["models"][0]["size"] == archive.stat().st_size
    assert (dist / f"{entry.url}.sha256").read_text() == f"{entry.sha256}  {entry.url}\n"


def test_four_processes_pull_once_and_load_both_formats(tiny_model_files, server, hub_env,
                                                        tmp_path):
    for name in ("manifest.json", tiny_model_files["entry"].url):
        shutil.copy(tiny_model_files["dist"] / name, server.root / name)
    archive = tiny_model_files["entry"].url
    server.plan(archive, *["slow"] * PULLERS)  # a download long enough for all to meet it
    images_path = tmp_path / "images.npy"
    np.save(images_path, tiny_model_files["images"])
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    handle = "keras_structconv/tiny_psconv"
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _PULLER, str(barrier), handle, str(images_path), str(index),
             str(PULLERS)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment, text=True,
        )
        for index in range(PULLERS)
    ]
    results = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-3000:]
        results.append(json.loads(stdout.strip().splitlines()[-1]))

    assert len(server.requests_for(archive)) == 1, server.requests
    assert {result["folder"] for result in results} == {str(hub_env / "tiny_psconv-v1")}
    expected = tiny_model_files["outputs"]
    for result in results:
        assert "PSConv2D" in result["layers"]
        np.testing.assert_allclose(result["keras"], expected, atol=TOLERANCE, rtol=0)
        np.testing.assert_allclose(result["savedmodel"], expected, atol=TOLERANCE, rtol=0)
    assert_cache_clean(hub_env)


def test_cli_publish_serve_list_info_pull(tiny_model_files, hub_env, tmp_path, monkeypatch,
                                          capsys):
    cli = _hub_cli()
    dist = tmp_path / "dist"
    metrics = tmp_path / "results.json"
    metrics.write_text(json.dumps({"top1": 0.25}))
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\nship\n")
    packaged = tmp_path / "packaged_manifest.json"
    assert cli(["publish", str(tiny_model_files["model_path"]), "--name", "tiny", "--version", "2",
                "--out", str(dist), "--metrics", str(metrics), "--labels", str(labels),
                "--training-command", "pytest", "--also-manifest", str(packaged)]) == 0
    assert "published keras_structconv/tiny/2" in capsys.readouterr().out
    assert json.loads(packaged.read_text()) == json.loads((dist / "manifest.json").read_text())
    # A published version is immutable.
    with pytest.raises(ValueError, match="immutable"):
        cli(["publish", str(tiny_model_files["model_path"]), "--name", "tiny", "--version", "2",
             "--out", str(dist)])

    server = hub.make_server(dist, port=0, quiet=True)  # what `structconv hub serve` runs
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        monkeypatch.setenv("KERAS_STRUCTCONV_HUB_URL", f"http://127.0.0.1:{server.server_port}/")
        assert cli(["list"]) == 0
        listed = capsys.readouterr().out
        assert "keras_structconv/tiny/2" in listed and "top1 0.25" in listed
        assert cli(["info", "keras_structconv/tiny"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert info["metadata"]["labels"] == ["cat", "dog", "ship"]
        assert info["metadata"]["training"] == {"command": "pytest"}
        assert cli(["pull", "keras_structconv/tiny/2", "--no-progress", "--format",
                    "savedmodel"]) == 0
        out = capsys.readouterr().out
        assert out.splitlines()[0] == str(hub_env / "tiny-v2") and "loaded as savedmodel" in out
        assert cli(["pull", "keras_structconv/tiny_cnn"]) == 1  # one line, no traceback
        error = capsys.readouterr().err
        assert error.startswith("structconv hub pull: HandleError: Handle 'keras_structconv/tiny_c")
        assert "Close names: keras_structconv/tiny." in error
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    # The server is gone: a pinned version in the cache needs no request.
    model = hub.load("keras_structconv/tiny/2", progress=False)
    np.testing.assert_allclose(model.predict(tiny_model_files["images"], verbose=0),
                               tiny_model_files["outputs"], atol=TOLERANCE, rtol=0)
    assert_cache_clean(hub_env)


def test_cli_tflite_matches_keras(tiny_model_files, hub_env, tmp_path, capsys):
    output = tmp_path / "tiny.tflite"
    archive = tiny_model_files["dist"] / tiny_model_files["entry"].url
    status = _hub_cli()(["tflite", str(archive), "-o", str(output)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert output.stat().st_size > 0 and ": OK" in out
    assert "builtin ops only" in out


def _hub_cli():
    """`structconv hub ...` as registered by keras_structconv.cli.hub, called in-process."""
    import argparse

    from keras_structconv.cli import hub as hub_cli

    parser = argparse.ArgumentParser(prog="structconv")
    hub_cli.register(parser.add_subparsers(dest="command", required=True))

    def run(argv):
        args = parser.parse_args(["hub", *argv])
        return args.handler(args)

    return run


def test_server_answers_ranges(tmp_path):
    import http.client

    (tmp_path / "f.bin").write_bytes(bytes(range(100)))
    server = hub.make_server(tmp_path, port=0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        def get(headers):
            connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=5)
            connection.request("GET", "/f.bin", headers=headers)
            response = connection.getresponse()
            body = response.read()
            connection.close()
            return response.status, response.getheader("Content-Range"), body

        assert get({}) == (200, None, bytes(range(100)))
        assert get({"Range": "bytes=90-"}) == (206, "bytes 90-99/100", bytes(range(90, 100)))
        assert get({"Range": "bytes=10-19"}) == (206, "bytes 10-19/100", bytes(range(10, 20)))
        assert get({"Range": "bytes=-5"}) == (206, "bytes 95-99/100", bytes(range(95, 100)))
        assert get({"Range": "bytes=100-"}) == (416, "bytes */100", b"")
        assert get({"Range": "bytes=0-1,5-6"})[0] == 200  # multi-range: the whole file
        connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=5)
        connection.request("GET", "/")
        assert connection.getresponse().status == 404  # no folder listings
        connection.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_hub_imports_no_model_builder():
    # hub/ knows archives, not architectures (DESIGN.md): no import of models, surgery, zoo.
    for path in Path(hub.__file__).parent.glob("*.py"):
        text = path.read_text()
        for forbidden in ("keras_structconv.models", "keras_structconv.surgery", "import zoo",
                          "from keras_structconv import models"):
            assert forbidden not in text, f"{path.name} imports {forbidden}"
