"""Downloads against a real HTTP server on 127.0.0.1: failures, retries, Range resume, checksums.

Every test ends by checking that nothing half-written stays in the cache.
"""

from __future__ import annotations

import hashlib

import pytest

from keras_structconv import hub
from tests.hub.hub_testing import (
    FAST_POLICY,
    assert_cache_clean,
    entries,
    publish_to_manifest,
    small_archive_files,
)

HANDLE = "keras_structconv/small/1"
ARCHIVE = "small-1.tar.gz"


def _resolve(**kwargs):
    return hub.resolve(HANDLE, policy=FAST_POLICY, progress=False, **kwargs)


def _assert_extracted(folder, files):
    from pathlib import Path

    for name, data in files.items():
        assert (Path(folder) / name).read_bytes() == data


def test_complete_download_extracts_the_archive_and_marks_it(server, hub_env):
    files = small_archive_files()
    entry = publish_to_manifest(server.root, "small", 1, files)
    folder = _resolve()
    _assert_extracted(folder, files)
    assert (hub_env / "small-v1.sha256").read_text().strip() == entry.sha256
    assert [record["behaviour"] for record in server.requests_for(ARCHIVE)] == ["ok"]
    assert_cache_clean(hub_env)
    # A second call finds the verified entry: no new archive request.
    assert _resolve() == folder
    assert len(server.requests_for(ARCHIVE)) == 1


def test_404_fails_at_once_naming_the_handle(server, hub_env):
    publish_to_manifest(server.root, "small", 1)
    server.plan(ARCHIVE, "404")
    with pytest.raises(hub.DownloadError, match=r"keras_structconv/small/1.*HTTP 404"):
        _resolve()
    assert len(server.requests_for(ARCHIVE)) == 1, "a 404 must not be retried"
    assert_cache_clean(hub_env)
    assert entries(hub_env) == []


def test_500_then_200_is_retried(server, hub_env):
    files = small_archive_files()
    publish_to_manifest(server.root, "small", 1, files)
    server.plan(ARCHIVE, "500")
    _assert_extracted(_resolve(), files)
    assert [record["behaviour"] for record in server.requests_for(ARCHIVE)] == ["500", "ok"]
    assert_cache_clean(hub_env)


def test_5xx_until_the_retries_run_out(server, hub_env):
    publish_to_manifest(server.root, "small", 1)
    server.plan(ARCHIVE, "500", "500", "500", "500")
    with pytest.raises(hub.DownloadError, match=r"'keras_structconv/small/1'.*3 attempt.*HTTP 500"):
        _resolve()
    assert len(server.requests_for(ARCHIVE)) == 1 + FAST_POLICY.retries
    assert_cache_clean(hub_env)
    assert entries(hub_env) == []


def test_cut_body_is_resumed_with_range(server, hub_env):
    files = small_archive_files()
    publish_to_manifest(server.root, "small", 1, files)
    size = (server.root / ARCHIVE).stat().st_size
    server.plan(ARCHIVE, "cut")
    _assert_extracted(_resolve(), files)
    first, second = server.requests_for(ARCHIVE)
    assert first["range"] is None and 0 < first["sent"] < size
    assert second["range"] == f"bytes={first['sent']}-"
    assert first["sent"] + second["sent"] == size, "the resumed request sent only the rest"
    assert_cache_clean(hub_env)


def test_cut_body_is_restarted_when_the_server_ignores_range(server, hub_env):
    files = small_archive_files()
    publish_to_manifest(server.root, "small", 1, files)
    size = (server.root / ARCHIVE).stat().st_size
    server.plan(ARCHIVE, "cut", "ignore_range")
    _assert_extracted(_resolve(), files)
    first, second = server.requests_for(ARCHIVE)
    assert second["range"] == f"bytes={first['sent']}-"
    assert second["sent"] == size, "the server sent everything again (200), from byte 0"
    assert_cache_clean(hub_env)


def test_wrong_sha256_deletes_the_download_and_names_both_hashes(server, hub_env):
    wrong = "0" * 64
    publish_to_manifest(server.root, "small", 1, sha256=wrong)
    received = hashlib.sha256((server.root / ARCHIVE).read_bytes()).hexdigest()
    with pytest.raises(hub.ChecksumError) as raised:
        _resolve()
    message = str(raised.value)
    assert "keras_structconv/small/1" in message
    assert f"expected {wrong}" in message and f"received {received}" in message
    assert_cache_clean(hub_env)
    assert entries(hub_env) == []


def test_stalling_server_times_out_with_a_clear_error(server, hub_env):
    publish_to_manifest(server.root, "small", 1)
    server.plan(ARCHIVE, "stall", "stall", "stall")
    with pytest.raises(hub.DownloadError) as raised:
        _resolve()
    message = str(raised.value)
    assert "keras_structconv/small/1" in message
    assert "no data for 0.5 s" in message and "KERAS_STRUCTCONV_HUB_TIMEOUT" in message
    assert len(server.requests_for(ARCHIVE)) == 1 + FAST_POLICY.retries
    assert_cache_clean(hub_env)
    assert entries(hub_env) == []


def test_url_handle_uses_the_fragment_or_the_published_checksum_file(server, hub_env):
    files = small_archive_files(seed=3)
    publish_to_manifest(server.root, "small", 1, files)
    sha256 = hashlib.sha256((server.root / ARCHIVE).read_bytes()).hexdigest()
    url = server.url + ARCHIVE
    # No #sha256= and no .sha256 file beside the archive: refused before any download.
    with pytest.raises(hub.HandleError, match=r"No sha256 is known for .*small-1.tar.gz"):
        hub.resolve(url, policy=FAST_POLICY, progress=False)
    assert server.requests_for(ARCHIVE) == []
    _assert_extracted(hub.resolve(f"{url}#sha256={sha256}", policy=FAST_POLICY), files)
    # The checksum file `publish` writes beside each archive (sha256sum format).
    (server.root / f"{ARCHIVE}.sha256").write_text(f"{sha256}  {ARCHIVE}\n")
    _assert_extracted(hub.resolve(url, policy=FAST_POLICY, progress=False), files)
    assert_cache_clean(hub_env)


def test_timeout_variable_sets_the_default_policy(monkeypatch):
    monkeypatch.setenv("KERAS_STRUCTCONV_HUB_TIMEOUT", "2.5")
    policy = hub.config.default_policy()
    assert (policy.connect_timeout, policy.read_timeout) == (2.5, 2.5)
    monkeypatch.setenv("KERAS_STRUCTCONV_HUB_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="Received: KERAS_STRUCTCONV_HUB_TIMEOUT='soon'"):
        hub.config.default_policy()
