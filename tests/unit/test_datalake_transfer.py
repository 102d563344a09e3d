"""Local materialisation and replica choice, without any service."""

import zlib
from pathlib import Path

import pytest

from datalake_core import locality, materialise
from datalake_core.locality import mounted_path, protocol_bases, sources
from datalake_core.materialise import TransferFailed
from datalake_core.resolver import FileInfo, Replica
from datalake_core.rucio_adapter import Did
from datalake_core.settings import LinkMode, Mount


def _adler(data: bytes) -> str:
    return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


@pytest.fixture()
def replica(tmp_path):
    data = b"subband data" * 1000
    path = tmp_path / "rse" / "file.dat"
    path.parent.mkdir()
    path.write_bytes(data)
    return path, data


@pytest.mark.parametrize("mode", list(LinkMode))
def test_link_modes_give_the_right_bytes(replica, tmp_path, mode):
    source, data = replica
    dest = tmp_path / "local" / "file.dat"
    dest.parent.mkdir()
    how = materialise.link(source, dest, mode=mode, size=len(data), adler32=_adler(data),
                         verify=True)
    assert how == mode.value
    assert dest.read_bytes() == data
    assert dest.is_symlink() == (mode is LinkMode.SYMLINK)
    assert not materialise.part_name(dest).exists()


def test_corrupt_source_is_refused_and_nothing_appears(replica, tmp_path):
    source, data = replica
    dest = tmp_path / "out.dat"
    with pytest.raises(TransferFailed, match="adler32 mismatch"):
        materialise.copy(source, dest, size=len(data), adler32="00000001")
    with pytest.raises(TransferFailed, match="size mismatch"):
        materialise.link(source, dest, mode=LinkMode.SYMLINK, size=len(data) + 1,
                       adler32=_adler(data), verify=True)
    assert not dest.exists() and not materialise.part_name(dest).exists()


def test_is_verified(replica):
    source, data = replica
    assert materialise.is_verified(source, size=len(data), adler32=_adler(data))
    assert not materialise.is_verified(source, size=len(data), adler32="deadbeef")
    assert not materialise.is_verified(source.with_name("nope"), size=1, adler32=None)


def test_mounted_path_by_prefix_and_by_rse():
    bases = {"SITE_C_DAV": ["file:///other/", "https://dav:8443/"]}
    mounts = (Mount("SITE_C_DAV", Path("/mnt/c")), Mount("https://x:1/data/", Path("/mnt/x")))
    assert mounted_path("SITE_C_DAV", "https://dav:8443/lofar/ab/cd/f", mounts,
                        bases.__getitem__) == Path("/mnt/c/lofar/ab/cd/f")
    assert mounted_path("OTHER", "https://x:1/data/lofar/f%20g", mounts,
                        bases.__getitem__) == Path("/mnt/x/lofar/f g")
    assert mounted_path("OTHER", "https://elsewhere/f", mounts, bases.__getitem__) is None
    assert mounted_path("OTHER", "file:///rse/f", (), bases.__getitem__) == Path("/rse/f")


def test_protocol_bases():
    info = {"protocols": [
        {"scheme": "file", "hostname": "", "port": 0, "prefix": "/rse/A/"},
        {"scheme": "https", "hostname": "h", "port": 443, "prefix": "/dav/"},
    ]}
    assert protocol_bases(info) == ["file:///rse/A/", "https://h:443/dav/"]


def test_sources_site_first_then_local_then_network(tmp_path):
    for rse in ("A", "B", "S"):
        (tmp_path / rse).mkdir()
        (tmp_path / rse / "f").write_bytes(b"x")
    info = FileInfo(Did("lofar", "f"), 1, None, None, 0.0, (
        Replica("A", "AVAILABLE", ("https://a/f",)),
        Replica("B", "AVAILABLE", (f"file://{tmp_path}/B/f", "https://b/f")),
        Replica("C", "UNAVAILABLE", (f"file://{tmp_path}/C/f",)),
        Replica("S", "AVAILABLE", (f"file://{tmp_path}/S/f", "root://s/f")),
    ))
    got = [(s.rse, s.scheme, s.at_site) for s in sources(info, ["S"], (), lambda r: [])]
    # Local paths of other RSEs come before any network read; one source per replica.
    assert got == [("S", "file", True), ("B", "file", False), ("A", "https", False)]


def test_a_replica_whose_file_system_is_not_here_is_read_over_https(tmp_path):
    info = FileInfo(Did("lofar", "f"), 1, None, None, 0.0, (
        Replica("W", "AVAILABLE", (f"file://{tmp_path}/rse/W/lofar/ab/f",)),
        Replica("X", "AVAILABLE", (f"file://{tmp_path}/rse/X/lofar/cd/f",)),
    ))
    bases = {"W": [f"file://{tmp_path}/rse/W/", "https://w:443/"],
             "X": [f"file://{tmp_path}/rse/X/", "gsiftp://x:2811/data/"]}
    got = [(s.rse, s.pfn) for s in sources(info, ["W"], (), bases.__getitem__)]
    # The same path below the RSE's https prefix; a replica with no readable protocol is left.
    assert got == [("W", "https://w:443/lofar/ab/f")]


def test_a_replica_whose_file_system_is_not_here_is_read_over_root_where_it_has_that(
        tmp_path, monkeypatch):
    monkeypatch.setattr(locality, "network_schemes",
                        lambda: (*locality.WEB_SCHEMES, locality.XROOTD_SCHEME))
    info = FileInfo(Did("lofar", "f"), 1, None, None, 0.0, (
        Replica("X", "AVAILABLE", (f"file://{tmp_path}/rse/X/lofar/cd/f",)),
    ))
    bases = {"X": [f"file://{tmp_path}/rse/X/", "root://x:1094//data/"]}
    got = [(s.rse, s.pfn, s.local) for s in sources(info, [], (), bases.__getitem__)]
    assert got == [("X", "root://x:1094//data/lofar/cd/f", None)]


def test_an_xrootd_replica_is_read_over_https_where_no_xrootd_client_is_installed(monkeypatch):
    monkeypatch.setattr(locality, "network_schemes", lambda: locality.WEB_SCHEMES)
    info = FileInfo(Did("lofar", "f"), 1, None, None, 0.0, (
        Replica("X", "AVAILABLE", ("root://x:1094//lofar/cd/f",)),
    ))
    bases = {"X": ["root://x:1094//", "https://x:443/", "file:///nowhere/X/"]}
    got = [(s.rse, s.pfn) for s in sources(info, [], (), bases.__getitem__)]
    assert got == [("X", "https://x:443/lofar/cd/f")]
