"""The FTS stand-in's copy of one file between file:// URLs: bytes, checksums, FTS reasons."""

from __future__ import annotations

import os
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


@pytest.fixture()
def payload(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(2 * mover.CHUNK + 123)  # several chunks, the last one short
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
    result = mover.copy(
        _request(src, dst, checksum=f"ADLER32:{_adler(data).upper()}"), abort=_never
    )
    assert dst.read_bytes() == data
    assert result.size == len(data)
    assert result.checksum == f"adler32:{_adler(data)}"
    assert _leftovers(tmp_path / "out") == []


def test_md5_checksum_is_verified(payload, tmp_path):
    import hashlib

    src, data = payload
    good = hashlib.md5(data, usedforsecurity=False).hexdigest()
    mover.copy(_request(src, tmp_path / "a", checksum=f"MD5:{good}"), abort=_never)
    with pytest.raises(mover.TransferError, match="checksum mismatch"):
        mover.copy(_request(src, tmp_path / "b", checksum="MD5:" + "0" * 32), abort=_never)


def test_missing_source_is_a_permanent_source_error(tmp_path):
    missing = tmp_path / "nope.bin"
    with pytest.raises(mover.TransferError) as caught:
        mover.copy(_request(missing, tmp_path / "out.bin"), abort=_never)
    assert str(caught.value).startswith("SOURCE [2] ")
    assert str(missing) in str(caught.value)
    assert "No such file or directory" in str(caught.value)
    assert not caught.value.recoverable
    assert not (tmp_path / "out.bin").exists()


def test_checksum_mismatch_leaves_no_destination(payload, tmp_path):
    src, _ = payload
    dst = tmp_path / "out" / "file.bin"
    with pytest.raises(mover.TransferError) as caught:
        mover.copy(_request(src, dst, checksum="ADLER32:00000001"), abort=_never)
    assert str(caught.value).startswith("TRANSFER [5] checksum mismatch")
    assert not dst.exists()
    assert _leftovers(tmp_path / "out") == []


def test_verify_none_ignores_the_checksum(payload, tmp_path):
    src, data = payload
    dst = tmp_path / "out.bin"
    mover.copy(_request(src, dst, checksum="ADLER32:00000001", verify="none"), abort=_never)
    assert dst.read_bytes() == data


def test_existing_destination_needs_overwrite(payload, tmp_path):
    src, data = payload
    dst = tmp_path / "out.bin"
    dst.write_bytes(b"old")
    with pytest.raises(mover.TransferError) as caught:
        mover.copy(_request(src, dst), abort=_never)
    # Rucio recognises exactly this phrase (FTS_FILE_EXISTS_ERROR_MSG_LEGACY).
    assert "Destination file exists and overwrite is not enabled" in str(caught.value)
    assert str(caught.value).startswith("DESTINATION [17] ")
    assert dst.read_bytes() == b"old"
    mover.copy(_request(src, dst, overwrite=True), abort=_never)
    assert dst.read_bytes() == data


def test_abort_mid_copy_removes_partial_output(payload, tmp_path):
    src, _ = payload
    dst = tmp_path / "out" / "file.bin"
    calls = []

    def abort_after_first_chunk() -> bool:
        calls.append(1)
        return len(calls) > 1

    written = []
    with pytest.raises(mover.Aborted):
        mover.copy(
            _request(src, dst),
            abort=abort_after_first_chunk,
            on_write=lambda: written.append(True),
        )
    assert written == [True]
    assert not dst.exists()
    assert _leftovers(tmp_path / "out") == []


def test_unknown_scheme_is_refused(payload, tmp_path):
    src, _ = payload
    with pytest.raises(mover.TransferError, match=r"^DESTINATION \[93\] Protocol not supported"):
        mover.copy(
            mover.CopyRequest(src.as_uri(), "gsiftp://host/x", None, "none", False, "t"),
            abort=_never,
        )


def test_remove_partial_deletes_the_temporary_file(tmp_path):
    dst = tmp_path / "file.bin"
    temp = mover.temporary_path(dst, "fts7")
    temp.write_bytes(b"partial")
    mover.remove_partial(dst.as_uri(), "fts7")
    assert not temp.exists()
