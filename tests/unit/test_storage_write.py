"""Which write protocol of an RSE an upload uses, and the local copy where its directory is here
(the https path runs against real storage in tests/integration/test_upload_tls.py)."""

from __future__ import annotations

import pytest

from datalake_core import storage_write
from datalake_core.checksums import adler32_of_file
from datalake_core.errors import StorageTargetExists, StorageWriteError
from datalake_core.storage_write import Target


def _file_target(prefix: str, name: str = "lofar/ab/cd/x.dat") -> Target:
    return Target("SITE_A_DISK", "file", f"file://{prefix}/{name}", prefix + "/")


def test_a_file_protocol_whose_directory_is_here_gets_a_verified_copy(tmp_path):
    source = tmp_path / "x.dat"
    source.write_bytes(b"bytes of a product" * 100)
    rse_dir = tmp_path / "rse"
    rse_dir.mkdir()
    target = _file_target(str(rse_dir))

    used = storage_write.write(source, [target], size=source.stat().st_size,
                               adler32=adler32_of_file(source), verify=True)

    assert used == target
    assert (rse_dir / "lofar/ab/cd/x.dat").read_bytes() == source.read_bytes()
    assert not list(rse_dir.rglob("*.part"))
    storage_write.remove(used, verify=True)
    assert not (rse_dir / "lofar/ab/cd/x.dat").exists()


def test_a_file_protocol_not_mounted_here_gives_way_to_https(tmp_path):
    away = _file_target(str(tmp_path / "not-mounted"))
    web = Target("SITE_A_DISK", "davs", "davs://storage.example:443/dav/lofar/x.dat", "/dav/")
    assert away.local() is None and web.local() is None
    assert web.url == "https://storage.example:443/dav/lofar/x.dat"
    assert web.origin == "https://storage.example:443"


def test_no_usable_protocol_says_what_each_needs(tmp_path):
    source = tmp_path / "x.dat"
    source.write_bytes(b"x")
    away = _file_target(str(tmp_path / "not-mounted"))
    with pytest.raises(StorageWriteError, match=r"no write protocol of SITE_A_DISK is usable") \
            as failed:
        storage_write.write(source, [away], size=1, adler32=adler32_of_file(source), verify=True)
    assert str(tmp_path / "not-mounted") in str(failed.value)
    assert "https protocol" in str(failed.value)


def test_a_copy_that_does_not_match_leaves_nothing(tmp_path):
    source = tmp_path / "x.dat"
    source.write_bytes(b"some bytes")
    rse_dir = tmp_path / "rse"
    rse_dir.mkdir()
    with pytest.raises(StorageWriteError, match="SITE_A_DISK"):
        storage_write.write(source, [_file_target(str(rse_dir))], size=10, adler32="00000001",
                            verify=True)
    assert [p for p in rse_dir.rglob("*") if p.is_file()] == []


def test_an_exclusive_write_leaves_a_file_already_there_alone(tmp_path):
    source = tmp_path / "x.dat"
    source.write_bytes(b"new")
    rse_dir = tmp_path / "rse"
    there = rse_dir / "lofar/ab/cd/x.dat"
    there.parent.mkdir(parents=True)
    there.write_bytes(b"someone else's")
    target = _file_target(str(rse_dir))

    with pytest.raises(StorageTargetExists, match="exists already"):
        storage_write.write(source, [target], size=3, adler32=adler32_of_file(source),
                            verify=True, exclusive=True)
    assert there.read_bytes() == b"someone else's"
    storage_write.write(source, [target], size=3, adler32=adler32_of_file(source), verify=True)
    assert there.read_bytes() == b"new"
