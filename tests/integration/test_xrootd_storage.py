"""The XRootD RSE (SITE_D_XRD) against the real server `testbed up` runs: Debian's xrootd 5.5
serving the RSE's directory over `root://` and, through XrdHttp, over https, with adler32 from
the server; anonymous reads, writes only with the pipeline's certificate; the plugin's reads
through `xrdcp` (datalake_core.transfer_xrootd) under a corrupt replica and a killed server."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import threading
import time
import zlib

import pytest
import requests

from datalake_core import transfer_xrootd
from datalake_core.errors import CorruptReplica, StagingError, TransferFailed
from datalake_core.journal import Staged, Way
from datalake_core.resolver import Resolver
from datalake_core.rucio_adapter import Did
from datalake_core.settings import ProviderConfig
from datalake_core.staging import Stager
from lofar_datalake_testbed import pki, xrootd
from lofar_datalake_testbed.layout import SITES, XROOTD

pytestmark = pytest.mark.integration

[SITE] = [s for s in SITES if s.storage == XROOTD]
RSE = SITE.rse
ANONYMOUS = {k: v for k, v in os.environ.items()
             if not k.startswith(("X509_", "XrdSec", "BEARER_TOKEN"))}


def _adler(data: bytes) -> str:
    return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


def _root_pfn(rucio, did: Did) -> str:
    [replica] = rucio.list_replicas([did])
    [pfn] = [p for p, i in replica["pfns"].items() if i["rse"] == RSE]
    return pfn


def _path(pfn: str) -> str:
    """The path part of root://host:port//path."""
    return "/" + pfn.split("//", 2)[2].lstrip("/")


def _xrd(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=60,
                          env=env or ANONYMOUS, stdin=subprocess.DEVNULL)


def _writer_env(testbed) -> dict[str, str]:
    cadir = xrootd.config_dir(testbed.layout, SITE) / "certificates"
    return {**ANONYMOUS, **xrootd.client_env(testbed.pki, cadir)}


def _server(testbed):
    [proc] = [p for p in testbed.services() if p.name == f"xrootd-{RSE}"]
    return proc


def test_a_file_uploaded_to_the_xrootd_rse_reads_back_over_root_and_https_with_its_adler32(
        testbed, rucio, unique, tmp_path):
    data = os.urandom(3 * 2**20) + b"xrootd"
    source = tmp_path / "upload.bin"
    source.write_bytes(data)
    did = Did("lofar", f"{unique}/SB000.dat")
    assert rucio.upload(source, did, RSE) == _adler(data)
    pfn = _root_pfn(rucio, did)
    assert pfn.startswith(xrootd.root_url(testbed.layout.ports(), SITE) + "//")

    query = _xrd("xrdfs", xrootd.root_url(testbed.layout.ports(), SITE), "query", "checksum",
                 _path(pfn))
    assert query.returncode == 0, query.stderr
    assert query.stdout.split() == ["adler32", _adler(data)]

    copied = tmp_path / "xrdcp.bin"
    done = _xrd("xrdcp", "--nopbar", pfn, str(copied))
    assert done.returncode == 0, done.stderr
    assert copied.read_bytes() == data

    https = xrootd.https_url(testbed.layout.ports(), SITE) + _path(pfn)
    reply = requests.get(https, headers={"Want-Digest": "adler32"}, timeout=30,
                         verify=str(testbed.pki.ca_cert))
    assert reply.status_code == 200
    assert reply.headers["Digest"] == f"adler32={_adler(data)}"
    assert reply.content == data

    fetched = tmp_path / "plugin" / "SB000.dat"
    fetched.parent.mkdir()
    transfer_xrootd.fetch(pfn, fetched, size=len(data), adler32=_adler(data), timeout=30)
    assert fetched.read_bytes() == data


def test_the_plugin_stages_from_the_xrootd_rse_over_root(testbed, rucio, seed, unique,
                                                          tmp_path):
    [f] = seed([f"{unique}/SB001.dat"], RSE, size=4096)
    stager = Stager(ProviderConfig(site_rse=RSE), Resolver(lambda: rucio), lambda: rucio,
                    logging.getLogger("test"))
    try:
        dest = tmp_path / "SB001.dat"
        assert stager.stage(f.did, dest) == Staged(Way.XROOTD, RSE)
    finally:
        stager.close()
    assert dest.read_bytes() == f.data


def test_anonymous_writes_are_refused_over_root_and_https(testbed, tmp_path):
    ports = testbed.layout.ports()
    source = tmp_path / "intruder.bin"
    source.write_bytes(b"not wanted")
    target = testbed.layout.rse_dir(RSE) / "auth-probe" / "intruder.bin"

    put = _xrd("xrdcp", "--nopbar", str(source),
               f"{xrootd.root_url(ports, SITE)}//auth-probe/intruder.bin")
    assert put.returncode != 0
    assert "permission denied" in put.stderr.lower()
    reply = requests.put(f"{xrootd.https_url(ports, SITE)}/auth-probe/intruder.bin",
                         data=b"not wanted", timeout=30, verify=str(testbed.pki.ca_cert))
    assert reply.status_code == 403
    assert not target.exists()

    # Reads stay open to anyone: the server's own file is listed.
    listed = _xrd("xrdfs", xrootd.root_url(ports, SITE), "ls", "/")
    assert listed.returncode == 0, listed.stderr


def test_the_pipeline_certificate_may_write_over_root_and_https(testbed, tmp_path):
    ports = testbed.layout.ports()
    source = tmp_path / "allowed.bin"
    source.write_bytes(b"pipeline bytes")
    probe = testbed.layout.rse_dir(RSE) / "auth-probe"
    try:
        put = _xrd("xrdcp", "--nopbar", str(source),
                   f"{xrootd.root_url(ports, SITE)}//auth-probe/allowed.bin",
                   env=_writer_env(testbed))
        assert put.returncode == 0, put.stderr
        assert (probe / "allowed.bin").read_bytes() == b"pipeline bytes"
        reply = requests.put(f"{xrootd.https_url(ports, SITE)}/auth-probe/allowed-https.bin",
                             data=b"pipeline bytes", timeout=30,
                             verify=str(testbed.pki.ca_cert), cert=str(testbed.pki.proxy))
        assert reply.status_code in (200, 201), reply.text
        assert (probe / "allowed-https.bin").read_bytes() == b"pipeline bytes"
    finally:
        for leftover in probe.glob("allowed*"):
            leftover.unlink()


def test_a_certificate_with_the_pipelines_name_from_another_ca_cannot_write(testbed, tmp_path):
    """Same subject as the pipeline's certificate, issued by another CA: gsi and TLS refuse it."""
    impostor = pki.ensure_pki(tmp_path / "other-ca")
    assert xrootd.grid_dn(impostor.proxy) == xrootd.grid_dn(testbed.pki.proxy)
    ports = testbed.layout.ports()
    source = tmp_path / "impostor.bin"
    source.write_bytes(b"not wanted")
    env = {**_writer_env(testbed), "X509_USER_CERT": str(impostor.proxy),
           "X509_USER_KEY": str(impostor.proxy)}
    put = _xrd("xrdcp", "--nopbar", str(source),
               f"{xrootd.root_url(ports, SITE)}//auth-probe/impostor.bin", env=env)
    assert put.returncode != 0
    with pytest.raises(requests.exceptions.SSLError):
        requests.put(f"{xrootd.https_url(ports, SITE)}/auth-probe/impostor.bin",
                     data=b"not wanted", timeout=30, verify=str(testbed.pki.ca_cert),
                     cert=str(impostor.proxy))
    assert not (testbed.layout.rse_dir(RSE) / "auth-probe" / "impostor.bin").exists()


def test_a_corrupt_xrootd_replica_is_detected_by_the_plugin_and_nothing_is_left(
        testbed, rucio, seed, unique, tmp_path):
    [f] = seed([f"{unique}/SB002.dat"], RSE, size=8192)
    f.path.write_bytes(b"X" * len(f.data))  # same size, other bytes: bit rot on the server
    dest = tmp_path / "SB002.dat"
    with pytest.raises(CorruptReplica, match=f"adler32 mismatch: catalogue {_adler(f.data)}"):
        transfer_xrootd.fetch(_root_pfn(rucio, f.did), dest, size=len(f.data),
                              adler32=_adler(f.data), timeout=30)
    assert not dest.exists() and not dest.with_name(dest.name + ".part").exists()

    stager = Stager(ProviderConfig(site_rse=RSE), Resolver(lambda: rucio), lambda: rucio,
                    logging.getLogger("test"))
    try:
        with pytest.raises(StagingError, match=f"{RSE} \\(root\\): adler32 mismatch"):
            stager.stage(f.did, dest)
    finally:
        stager.close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.timeout(180)
def test_the_xrootd_server_killed_mid_read_is_a_clear_error_and_leaves_no_partial_file(
        testbed, rucio, seed, unique, tmp_path, monkeypatch):
    """SIGKILL to the server once the first bytes have arrived: xrdcp cannot finish, the read
    says which server and how far it got, and neither the file nor its .part remains."""
    size = 256 * 2**20  # more than xrdcp has in flight (a few 8 MiB chunks) when it is killed
    [f] = seed([f"{unique}/big.dat"], RSE, data=os.urandom(size))
    server = _server(testbed).process()
    assert server is not None
    killed = threading.Event()
    real_open = transfer_xrootd.open_part

    class KillOnFirstWrite:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.handle.__exit__(*exc)

        def write(self, chunk: bytes) -> int:
            if not killed.is_set():
                os.killpg(server.pid, signal.SIGKILL)
                killed.set()
                time.sleep(0.5)  # the server is gone before xrdcp asks for more
            return self.handle.write(chunk)

    monkeypatch.setattr(transfer_xrootd, "open_part",
                        lambda dest, n: KillOnFirstWrite(real_open(dest, n)))
    dest = tmp_path / "big.dat"
    began = time.monotonic()
    try:
        with pytest.raises(TransferFailed) as failure:
            transfer_xrootd.fetch(_root_pfn(rucio, f.did), dest, size=size,
                                  adler32=_adler(f.data), timeout=10)
    finally:
        testbed.up()  # the server back for the other tests
    assert killed.is_set()
    assert not isinstance(failure.value, CorruptReplica)
    message = str(failure.value)
    assert message.startswith(f"xrdcp from {xrootd.root_url(testbed.layout.ports(), SITE)} "
                              "failed"), message
    # When the kill reads as a reset, the retry cannot connect: its error keeps the first's.
    assert re.search(rf"failed after [1-9]\d* of {size} bytes", message), message
    assert time.monotonic() - began < 120
    assert not dest.exists() and not dest.with_name(dest.name + ".part").exists()


def test_the_xrootd_server_leaves_the_testbeds_directories_open_to_its_database(testbed):
    # XRootD chmods 0700 every directory along its admin path. Under the state directory that
    # closed it to the embedded PostgreSQL (a user of its own, absolute paths), which died at
    # its next checkpoint; the admin path lives elsewhere now.
    root = testbed.layout.root
    for directory in (root, root.parent):
        assert directory.stat().st_mode & 0o001, f"{directory} is closed to other users"
    admin = xrootd.admin_dir(testbed.layout, SITE)
    assert not admin.is_relative_to(root) and (admin / RSE).is_dir()
