"""The cache (marker, leftovers of killed processes), offline mode, manifest lookups, handles."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from keras_structconv import hub
from tests.hub.hub_testing import (
    FAST_POLICY,
    assert_cache_clean,
    entries,
    publish_to_manifest,
    small_archive_files,
)


def _resolve(handle, **kwargs):
    return hub.resolve(handle, policy=FAST_POLICY, progress=False, **kwargs)


def test_entry_without_marker_is_fetched_again(server, hub_env):
    files = small_archive_files()
    publish_to_manifest(server.root, "small", 1, files)
    folder = Path(_resolve("keras_structconv/small/1"))
    # What a killed process leaves: a folder without its marker (and with a stray file), plus a
    # half-done extraction.
    (hub_env / "small-v1.sha256").unlink()
    (folder / "stray").write_text("half written")
    (hub_env / "small-v1.tmp-killed").mkdir()
    assert Path(_resolve("keras_structconv/small/1")) == folder
    assert len(server.requests_for("small-1.tar.gz")) == 2
    assert not (folder / "stray").exists()
    assert (folder / "saved_model.pb").read_bytes() == files["saved_model.pb"]
    assert_cache_clean(hub_env)


def test_entry_with_an_outdated_marker_is_replaced(server, hub_env):
    publish_to_manifest(server.root, "small", 1, small_archive_files(seed=0))
    _resolve("keras_structconv/small/1")
    new_files = small_archive_files(seed=1)  # republished under the same version
    new_entry = publish_to_manifest(server.root, "small", 1, new_files)
    # With its version named, the verified copy is used without asking the server.
    requests = len(server.requests)
    _resolve("keras_structconv/small/1")
    assert len(server.requests) == requests
    # Without, the manifest is read: its sha256 differs from the marker's, so it is fetched.
    folder = Path(_resolve("keras_structconv/small"))
    assert (folder / "saved_model.pb").read_bytes() == new_files["saved_model.pb"]
    assert (hub_env / "small-v1.sha256").read_text().strip() == new_entry.sha256
    assert_cache_clean(hub_env)


def test_offline_with_the_entry_uses_the_cache_only(server, hub_env, monkeypatch):
    files = small_archive_files()
    publish_to_manifest(server.root, "small", 1, files)
    publish_to_manifest(server.root, "small", 2, small_archive_files(seed=2))
    folder = _resolve("keras_structconv/small/1")
    server.stop()  # nothing answers any more
    requests = len(server.requests)
    monkeypatch.setenv("KERAS_STRUCTCONV_HUB_OFFLINE", "1")
    assert _resolve("keras_structconv/small/1") == folder
    assert len(server.requests) == requests
    # The manifest copy says the newest is version 2, which was never pulled.
    with pytest.raises(hub.OfflineError, match=r"'keras_structconv/small' is not in the cache"):
        _resolve("keras_structconv/small")
    assert_cache_clean(hub_env)


def test_offline_without_the_entry(server, hub_env, monkeypatch):
    publish_to_manifest(server.root, "small", 1)
    monkeypatch.setenv("KERAS_STRUCTCONV_HUB_OFFLINE", "1")
    with pytest.raises(hub.OfflineError, match=r"'keras_structconv/small/1' is not in the cache"):
        _resolve("keras_structconv/small/1")
    url = server.url + "small-1.tar.gz"
    with pytest.raises(hub.OfflineError, match=rf"'{url}' is not in the cache"):
        _resolve(url)
    assert server.requests == []
    assert_cache_clean(hub_env)
    assert not hub_env.exists() or entries(hub_env) == []


def test_handle_not_in_the_manifest_lists_close_names(server, hub_env):
    for name in ("cifar_resnet20", "cifar_resnet56", "qgn_camvid"):
        publish_to_manifest(server.root, name, 1)
    with pytest.raises(hub.HandleError) as raised:
        _resolve("keras_structconv/cifar_resnet2")
    message = str(raised.value)
    close = "Close names: keras_structconv/cifar_resnet20, keras_structconv/cifar_resnet56."
    assert close in message
    assert "qgn_camvid" not in message
    assert message.endswith("Received: handle='keras_structconv/cifar_resnet2'")
    with pytest.raises(hub.HandleError, match=r"no version 3 .* versions: 1\. Received"):
        _resolve("keras_structconv/qgn_camvid/3")
    assert all(record["path"] == "manifest.json" for record in server.requests)
    assert_cache_clean(hub_env)


def test_newest_version_when_the_handle_names_none(server, hub_env):
    for version in (1, 3, 2):
        publish_to_manifest(server.root, "small", version, small_archive_files(seed=version))
    folder = Path(_resolve("keras_structconv/small"))
    assert folder.name == "small-v3"
    assert (folder / "saved_model.pb").read_bytes() == small_archive_files(seed=3)["saved_model.pb"]


def test_list_models_and_info_read_the_manifest_without_downloading(server, hub_env):
    entry = publish_to_manifest(server.root, "small", 1)
    listed = hub.list_models()
    assert [model["handle"] for model in listed] == ["keras_structconv/small/1"]
    assert listed[0]["url"] == server.url + "small-1.tar.gz"
    assert listed[0]["sha256"] == entry.sha256 and listed[0]["size"] == entry.size
    assert hub.info("keras_structconv/small")["metadata"] == {"metrics": {"top1": 0.5}}
    assert server.requests_for("small-1.tar.gz") == []


def test_local_archive_and_folder_handles(hub_env, tmp_path):
    from tests.hub.hub_testing import write_archive

    files = small_archive_files(size=1000)
    archive = tmp_path / "local.tar.gz"
    write_archive(archive, files)
    folder = Path(_resolve(str(archive)))
    assert folder.parent == hub_env and folder.name.startswith("archive-")
    assert Path(_resolve(archive.as_uri())) == folder  # file:// URL, same content, same entry
    assert _resolve(str(folder)) == str(folder)  # an extracted folder is used in place
    assert hub.info(str(archive))["metadata"]["name"] == "local.tar.gz"  # its metadata.json
    (folder / "model.keras").write_bytes(b"edited")
    with pytest.raises(hub.ChecksumError, match="File model.keras of"):
        _resolve(str(folder))
    assert_cache_clean(hub_env)


def test_packaged_manifest_resolves_against_the_checkout_zoo_dist(hub_env):
    manifest = hub.manifest.load_manifest(hub_env)
    assert manifest.source == str(hub.config.PACKAGED_MANIFEST)
    data = json.loads(hub.config.PACKAGED_MANIFEST.read_text())
    assert data["format_version"] == 1 and len(manifest.entries) == len(data["models"])
    repo = Path(hub.__file__).resolve().parents[2]
    assert manifest.base_url == (repo / "zoo" / "dist").as_uri() + "/"
    entry = hub.manifest.ManifestEntry(name="m", version=1, url="m-1.tar.gz", size=1,
                                       sha256="0" * 64)
    assert manifest.archive_url(entry) == (repo / "zoo" / "dist" / "m-1.tar.gz").as_uri()


def test_file_url_hub(hub_env, tmp_path, monkeypatch):
    dist = tmp_path / "dist"
    dist.mkdir()
    files = small_archive_files(size=1000)
    publish_to_manifest(dist, "small", 1, files)
    monkeypatch.setenv("KERAS_STRUCTCONV_HUB_URL", dist.as_uri())
    folder = Path(_resolve("keras_structconv/small/1"))
    assert (folder / "model.keras").read_bytes() == files["model.keras"]
    shutil.rmtree(dist)
    monkeypatch.setenv("KERAS_STRUCTCONV_HUB_OFFLINE", "yes")
    assert Path(_resolve("keras_structconv/small/1")) == folder
    assert Path(_resolve("keras_structconv/small")) == folder  # newest, from the manifest copy
    assert_cache_clean(hub_env)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("keras_structconv/cifar_resnet20", ("cifar_resnet20", None)),
        ("keras_structconv/cifar_resnet20/12", ("cifar_resnet20", 12)),
    ],
)
def test_manifest_handles(text, expected):
    parsed = hub.handles.parse_handle(text)
    assert (parsed.name, parsed.version) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("keras_structconv/Bad", "lower-case model name"),
        ("keras_structconv/m/0", "version of a manifest handle is a positive integer"),
        ("keras_structconv/m/1/x", "keras_structconv/<model>"),
        ("https://h/m.tar.gz#md5=abc", "#sha256=<64 hex digits>"),
        ("ftp://h/m.tar.gz", "Unsupported URL scheme 'ftp'"),
        ("no/such/folder", "No such file or folder"),
        ("", "non-empty string"),
    ],
)
def test_malformed_handles(text, message):
    with pytest.raises(hub.HandleError, match=message) as raised:
        hub.handles.parse_handle(text)
    assert str(raised.value).endswith(f"Received: handle={text!r}")


def test_bad_environment_values_are_named(monkeypatch, hub_env):
    monkeypatch.setenv("KERAS_STRUCTCONV_HUB_OFFLINE", "maybe")
    with pytest.raises(ValueError, match="Received: KERAS_STRUCTCONV_HUB_OFFLINE='maybe'"):
        hub.resolve("keras_structconv/m/1")
