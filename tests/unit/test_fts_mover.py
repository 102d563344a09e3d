"""The FTS stand-in's copy of one file between file:// URLs through gfal2 (Debian's python3-gfal2
in a helper process, as in the service): bytes, checksums, FTS reasons, the storage roots."""

from __future__ import annotations

import os
import threading
import time
import zlib
from pathlib import Path

import pytest

from lofar_datalake_testbed.servers.fts import mover
from lofar_datalake_testbed.servers.fts.streams import parse_checksum


def _adler(data: bytes) -> str:
    return f"{zlib.adler32(data):08x}"


def _request(src: Path, dst: Path, **overrides) -> mover.CopyRequest:
    fields = {
        "source": src.as_uri(),
        "destination": dst.as_uri(),
        "checksum": None,
        "verify": "both",
        "overwrite": False,
        "tag": "t1",
    }
    fields.update(overrides)
    return mover.CopyRequest(**fields)


def _never() -> bool:
    return False


def _copy(req: mover.CopyRequest, root: Path, **kwargs) -> mover.CopyResult:
    kwargs.setdefault("abort", _never)
    return mover.copy(req, gfal=mover.Gfal(roots=[Path(os.path.realpath(root))]), **kwargs)


@pytest.fixture()
def payload(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(5 * 2**20 + 123)  # more than one of gfal2's 4 MiB buffers
    src = tmp_path / "src" / "file.bin"
    src.parent.mkdir()
    src.write_bytes(data)
    return src, data


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob("*.part")) if directory.exists() else []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ADLER32:0A1B2C3D", ("adler32", "0a1b2c3d")),
        ("adler32:1b2c3d", ("adler32", "001b2c3d")),
        ("ADLER32", ("adler32", None)),
        ("MD5:ABCDEF", ("md5", "abcdef")),
        (None, ("adler32", None)),
    ],
)
def test_parse_checksum(text, expected):
    assert parse_checksum(text) == expected


def test_copy_is_byte_identical_with_checksum(payload, tmp_path):
    src, data = payload
    dst = tmp_path / "out" / "deep" / "file.bin"  # parents are created
    result = _copy(_request(src, dst, checksum=f"ADLER32:{_adler(data).upper()}"), tmp_path)
    assert dst.read_bytes() == data
    assert result.size == len(data)
    assert result.checksum == f"adler32:{_adler(data)}"
    assert _leftovers(tmp_path / "out") == []


def test_md5_checksum_is_verified(payload, tmp_path):
    import hashlib

    src, data = payload
    good = hashlib.md5(data, usedforsecurity=False).hexdigest()
    _copy(_request(src, tmp_path / "a", checksum=f"MD5:{good}"), tmp_path)
    with pytest.raises(mover.TransferError, match=r"(?i)checksum mismatch"):
        _copy(_request(src, tmp_path / "b", checksum="MD5:" + "0" * 32), tmp_path)


def test_missing_source_is_a_permanent_source_error(tmp_path):
    missing = tmp_path / "nope.bin"
    with pytest.raises(mover.TransferError) as caught:
        _copy(_request(missing, tmp_path / "out.bin"), tmp_path)
    assert str(caught.value).startswith("SOURCE [2] ")
    assert str(missing) in str(caught.value)
    assert "No such file or directory" in str(caught.value)
    assert not caught.value.recoverable
    assert not (tmp_path / "out.bin").exists()


def test_checksum_mismatch_leaves_no_destination(payload, tmp_path):
    src, _ = payload
    dst = tmp_path / "out" / "file.bin"
    with pytest.raises(mover.TransferError) as caught:
        _copy(_request(src, dst, checksum="ADLER32:00000001"), tmp_path)
    # gfal2's own words, as FTS reports them: the source's adler32 is not the one given.
    assert str(caught.value).startswith("SOURCE [5] SOURCE CHECKSUM MISMATCH")
    assert "00000001" in str(caught.value)
    assert caught.value.recoverable
    assert not dst.exists()
    assert _leftovers(tmp_path / "out") == []


def test_verify_none_ignores_the_checksum(payload, tmp_path):
    src, data = payload
    dst = tmp_path / "out.bin"
    _copy(_request(src, dst, checksum="ADLER32:00000001", verify="none"), tmp_path)
    assert dst.read_bytes() == data


def test_existing_destination_needs_overwrite(payload, tmp_path):
    src, data = payload
    dst = tmp_path / "out.bin"
    dst.write_bytes(b"old")
    with pytest.raises(mover.TransferError) as caught:
        _copy(_request(src, dst), tmp_path)
    # Rucio recognises exactly this phrase (FTS_FILE_EXISTS_ERROR_MSG_LEGACY).
    assert "Destination file exists and overwrite is not enabled" in str(caught.value)
    assert str(caught.value).startswith("DESTINATION [17] ")
    assert dst.read_bytes() == b"old"
    _copy(_request(src, dst, overwrite=True), tmp_path)
    assert dst.read_bytes() == data


def test_abort_mid_copy_kills_the_copy_and_removes_partial_output(tmp_path):
    pipe = tmp_path / "slow.pipe"
    os.mkfifo(pipe)
    release = threading.Event()

    def feed() -> None:  # some bytes, then a source that stalls until released
        with open(pipe, "wb", buffering=0) as out:
            out.write(b"x" * 4096)
            release.wait(30)

    threading.Thread(target=feed, daemon=True).start()
    dst = tmp_path / "out" / "file.bin"
    written = []
    try:
        with pytest.raises(mover.Aborted):
            _copy(
                _request(pipe, dst, verify="none"),
                tmp_path,
                abort=lambda: bool(_leftovers(tmp_path / "out")),  # once gfal2 writes
                on_write=lambda: written.append(True),
            )
    finally:
        release.set()
    assert written == [True]
    assert not dst.exists()
    assert _leftovers(tmp_path / "out") == []


def test_unknown_scheme_is_refused(payload, tmp_path):
    src, _ = payload
    with pytest.raises(mover.TransferError, match=r"^DESTINATION \[93\] Protocol not supported"):
        _copy(
            mover.CopyRequest(src.as_uri(), "gsiftp://host/x", None, "none", False, "t"), tmp_path
        )


def test_local_paths_are_checked_against_the_roots_when_the_copy_starts(payload, tmp_path):
    """A symlink swapped in after submission cannot lead the copy out of the storage roots."""
    src, _ = payload
    root = tmp_path / "root"
    (root / "in").mkdir(parents=True)
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the service")
    link = root / "in" / "data.bin"
    link.symlink_to(secret)
    with pytest.raises(mover.TransferError) as caught:
        _copy(_request(link, root / "out.bin"), root)
    assert str(caught.value).startswith("SOURCE [13] Local path outside the storage roots")
    assert not (root / "out.bin").exists()
    inside = root / "in" / "src.bin"
    inside.write_bytes(src.read_bytes())
    (root / "escape").symlink_to(tmp_path)
    with pytest.raises(mover.TransferError, match=r"^DESTINATION \[13\] Local path outside"):
        _copy(_request(inside, root / "escape" / "planted.bin"), root)
    assert not (tmp_path / "planted.bin").exists()


def test_remove_partial_deletes_the_temporary_file(tmp_path):
    dst = tmp_path / "file.bin"
    temp = mover.temporary_path(dst, "fts7")
    temp.write_bytes(b"partial")
    mover.remove_partial(dst.as_uri(), "fts7", mover.Gfal(roots=[tmp_path]))
    assert not temp.exists()


def test_the_copy_helper_refuses_a_source_swapped_for_a_symlink_after_the_check(tmp_path):
    """What the service checked is a regular file; what gfal2 would open is a symlink leading
    out of the roots (swapped in meanwhile): the helper opens without following it, and a
    directory swapped for a symlink shows in the path of the file it holds open."""
    root = tmp_path / "root"
    (root / "in").mkdir(parents=True)
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("not for the service")
    (root / "in" / "data.bin").symlink_to(secret)
    (root / "dir").symlink_to(secret.parent)
    gfal = mover.Gfal(roots=[Path(os.path.realpath(root))])
    for source in (root / "in" / "data.bin", root / "dir" / "secret.txt"):
        request = mover._gfal_request(
            _request(source, root / "out.bin"), gfal, source.as_uri(), (root / "out.bin").as_uri()
        )
        answer = mover._helper(gfal, request, _never, deadline=time.monotonic() + 60)
        assert (answer["ok"], answer["side"], answer["errno"]) == (False, "SOURCE", 13), answer
    assert not (root / "out.bin").exists()
