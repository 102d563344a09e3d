"""datalake_core.transfer_xrootd with a stand-in `xrdcp` on PATH: what reaches the caller when
the copy works, fails, is cut short or cannot start (the real server: tests/integration/
test_xrootd_storage.py)."""

from __future__ import annotations

import ast
import sys
import zlib
from pathlib import Path

import pytest

from datalake_core import transfer_retry, transfer_xrootd
from datalake_core.errors import CorruptReplica, TransferFailed, TransientFailure

URL = "root://127.0.0.1:1094//lofar/ab/cd/SB000.dat"
DATA = b"visibilities" * 1000


def _adler(data: bytes) -> str:
    return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


@pytest.fixture()
def xrdcp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Install a fake `xrdcp` that writes `out` to stdout, `err` to stderr, exits with `code`,
    and records its arguments and the environment it saw."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", str(bindir), prepend=":")
    calls = tmp_path / "calls"

    def install(out: bytes = DATA, err: str = "", code: int = 0) -> Path:
        (tmp_path / "out").write_bytes(out)
        script = bindir / "xrdcp"
        script.write_text(
            f"#!{sys.executable}\n"
            "import os, sys\n"
            f"open({str(calls)!r}, 'a').write(repr([sys.argv[1:], "
            "os.environ.get('XRD_CONNECTIONRETRY'), os.environ.get('XRD_REQUESTTIMEOUT')]) "
            "+ '\\n')\n"
            f"sys.stdout.buffer.write(open({str(tmp_path / 'out')!r}, 'rb').read())\n"
            f"sys.stderr.write({err!r})\n"
            f"sys.exit({code})\n")
        script.chmod(0o755)
        return calls

    return install


def _leftovers(dest: Path) -> list[Path]:
    return [p for p in (dest, dest.with_name(dest.name + ".part")) if p.exists()]


def test_a_complete_copy_is_verified_and_renamed(xrdcp, tmp_path):
    calls = xrdcp()
    dest = tmp_path / "SB000.dat"
    transfer_xrootd.fetch(URL, dest, size=len(DATA), adler32=_adler(DATA), timeout=30)
    assert dest.read_bytes() == DATA
    argv, retries, timeout = ast.literal_eval(calls.read_text())
    assert argv == ["--nopbar", URL, "-"]
    assert (retries, timeout) == ("1", "30")


def test_bytes_that_differ_from_the_catalogue_are_a_corrupt_replica(xrdcp, tmp_path):
    xrdcp(out=b"X" * len(DATA))
    dest = tmp_path / "SB000.dat"
    with pytest.raises(CorruptReplica, match="adler32 mismatch"):
        transfer_xrootd.fetch(URL, dest, size=len(DATA), adler32=_adler(DATA), timeout=30)
    assert _leftovers(dest) == []


def test_a_failed_copy_names_the_server_how_far_it_got_and_xrdcp_s_reason(xrdcp, tmp_path):
    xrdcp(out=DATA[:100], code=54,
          err="[1.2kB/12kB][ 10%]\nRun: [ERROR] Server responded with an error: [3011] "
              "Unable to open /lofar/ab/cd/SB000.dat; no such file or directory\n")
    dest = tmp_path / "SB000.dat"
    with pytest.raises(TransferFailed) as failure:
        transfer_xrootd.fetch(URL, dest, size=len(DATA), adler32=_adler(DATA), timeout=30)
    assert type(failure.value) is TransferFailed
    assert str(failure.value) == (
        f"xrdcp from root://127.0.0.1:1094 failed after 100 of {len(DATA)} bytes: [ERROR] "
        "Server responded with an error: [3011] Unable to open /lofar/ab/cd/SB000.dat; no such "
        "file or directory")
    assert _leftovers(dest) == []


def test_a_timed_out_copy_is_tried_again_then_reported(xrdcp, tmp_path, monkeypatch):
    monkeypatch.setattr(transfer_retry, "BACKOFF", 0.0)
    calls = xrdcp(out=b"", code=52, err="Run: [ERROR] Operation expired\n[FATAL] Socket timeout\n")
    dest = tmp_path / "SB000.dat"
    with pytest.raises(TransientFailure, match="Socket timeout"):
        transfer_xrootd.fetch(URL, dest, size=len(DATA), adler32=_adler(DATA), timeout=30)
    assert len(calls.read_text().splitlines()) == transfer_retry.ATTEMPTS
    assert _leftovers(dest) == []


def test_without_xrdcp_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(TransferFailed, match=r"`xrdcp` is not installed .*xrootd-client"):
        transfer_xrootd.fetch(URL, tmp_path / "x", size=1, adler32=None, timeout=30)
