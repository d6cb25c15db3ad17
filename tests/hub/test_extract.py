"""Safe extraction: archives that would write outside their folder are refused, nothing stays."""

from __future__ import annotations

import hashlib
import io
import tarfile

import pytest

from keras_structconv import hub
from tests.hub.hub_testing import (
    FAST_POLICY,
    assert_cache_clean,
    entries,
    small_archive_files,
    write_archive,
)


def _member(name, kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    data = b"escaped" if kind == tarfile.REGTYPE else None
    info.size = len(data) if data else 0
    return info, data


UNSAFE = {
    "parent": (_member("../x"), r"'\.\./x': a path with '\.\.'"),
    "nested_parent": (_member("variables/../../x"), r"a path with '\.\.'"),
    "absolute": (_member("/abs"), r"'/abs': an absolute path"),
    "symlink": (_member("link", tarfile.SYMTYPE, "/etc/passwd"), r"'link': a symbolic link"),
    "hardlink": (_member("hard", tarfile.LNKTYPE, "model.keras"), r"'hard': a hard link"),
    "device": (_member("dev", tarfile.CHRTYPE), r"'dev': a device, FIFO"),
    "fifo": (_member("fifo", tarfile.FIFOTYPE), r"'fifo': a device, FIFO"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_member_is_refused_before_anything_is_written(case, server, hub_env, tmp_path):
    (member, data), message = UNSAFE[case]
    archive = server.root / f"{case}.tar.gz"
    sha256 = write_archive(archive, small_archive_files(size=1000), [(member, data)])
    with tarfile.open(archive) as tar:  # the member is stored as written
        assert tar.getmembers()[-1].name == member.name
    handle = f"{server.url}{archive.name}#sha256={sha256}"
    with pytest.raises(hub.UnsafeArchiveError, match=message) as raised:
        hub.resolve(handle, policy=FAST_POLICY, progress=False)
    assert handle in str(raised.value)
    assert not (tmp_path / "x").exists() and not (hub_env.parent / "x").exists()
    assert_cache_clean(hub_env)
    assert entries(hub_env) == []


def test_explicit_check_is_stricter_than_the_data_filter():
    # filter="data" would extract "/abs" as "abs" and keep a hard link that stays inside the
    # folder; the explicit check refuses every one of them.
    passed_by_filter = set()
    for case, ((member, _), message) in UNSAFE.items():
        with pytest.raises(hub.UnsafeArchiveError, match=message):
            hub.extract.check_member(member, label=case)
        try:
            tarfile.data_filter(member, "/tmp/destination")
            passed_by_filter.add(case)
        except tarfile.FilterError:
            passed_by_filter.discard(case)  # refused by the filter alone, as expected
    assert passed_by_filter == {"absolute", "hardlink"}
    safe, _ = _member("variables/variables.index")
    hub.extract.check_member(safe, label="safe")


def test_file_not_matching_metadata_is_refused(server, hub_env):
    files = small_archive_files(size=1000)
    archive = server.root / "tampered.tar.gz"
    write_archive(archive, files)
    # Rebuild with model.keras changed but the metadata (and its hashes) kept.
    with tarfile.open(archive) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    members["model.keras"] = b"something else"
    metadata = members.pop("metadata.json")
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in [*members.items(), ("metadata.json", metadata)]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    sha256 = hashlib.sha256(archive.read_bytes()).hexdigest()
    with pytest.raises(hub.ChecksumError, match=r"File model.keras of .*tampered.tar.gz"):
        hub.resolve(f"{server.url}{archive.name}#sha256={sha256}", policy=FAST_POLICY)
    assert_cache_clean(hub_env)
    assert entries(hub_env) == []


def test_not_a_tar_gz(server, hub_env):
    archive = server.root / "junk.tar.gz"
    archive.write_bytes(b"not gzip at all" * 100)
    sha256 = hashlib.sha256(archive.read_bytes()).hexdigest()
    with pytest.raises(hub.ArchiveError, match=r"junk.tar.gz.* is not a readable .tar.gz"):
        hub.resolve(f"{server.url}{archive.name}#sha256={sha256}", policy=FAST_POLICY)
    assert_cache_clean(hub_env)
