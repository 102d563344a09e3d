"""Unpacking a submitted archive: the formats, and hostile archives above all."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import stat
import struct
import tarfile
import zipfile
from pathlib import Path

import pytest

from lofar_datalake.service.submission import SubmissionError, unpack_archive

LIMIT = 64 * 1024
SNAKEFILE = b"rule all:\n    input: []\n"
CONFIG = b"threshold: 5\n"


def tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def member(name: str, data: bytes | None = None, kind: bytes = tarfile.REGTYPE,
           linkname: str = "", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, mode
    if kind == tarfile.DIRTYPE:
        info.mode = 0o755
    return info, data if kind == tarfile.REGTYPE else None


def workflow_members(prefix: str = "") -> list[tuple[tarfile.TarInfo, bytes | None]]:
    return [member(f"{prefix}Snakefile", SNAKEFILE), member(f"{prefix}config.yaml", CONFIG),
            member(f"{prefix}scripts/run.sh", b"#!/bin/sh\necho hi\n", mode=0o755)]


def zip_bytes(files: dict[str, bytes], infos: list[tuple[zipfile.ZipInfo, bytes]] = ()
              ) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        for info, data in infos:
            zf.writestr(info, data)
    return buf.getvalue()


@pytest.fixture()
def dest(tmp_path: Path) -> Path:
    return tmp_path / "run" / "workflow"


def unpack(tmp_path: Path, name: str, content: bytes, dest: Path, max_bytes: int = LIMIT,
           max_files: int = 100) -> None:
    archive = tmp_path / name
    archive.write_bytes(content)
    unpack_archive(archive, dest, max_bytes, max_files)


def refused(tmp_path: Path, name: str, content: bytes, dest: Path, **limits: int) -> str:
    """The refusal's message; and nothing of the archive was left anywhere."""
    with pytest.raises(SubmissionError) as caught:
        unpack(tmp_path, name, content, dest, **limits)
    assert list(dest.iterdir()) == []
    assert [p.name for p in dest.parent.iterdir()] == ["workflow"]  # the staging area is gone
    assert not (tmp_path / "x").exists() and not (tmp_path / "run" / "x").exists()
    return str(caught.value)


# --- archives that are fine ---------------------------------------------------------------------

def compressed(kind: str, data: bytes) -> bytes:
    return {"tar": lambda d: d, "gz": gzip.compress, "bz2": bz2.compress,
            "xz": lzma.compress}[kind](data)


@pytest.mark.parametrize("kind", ["tar", "gz", "bz2", "xz", "zip"])
def test_every_format_unpacks_by_its_content_whatever_its_name_says(tmp_path, dest, kind):
    if kind == "zip":
        content = zip_bytes({"Snakefile": SNAKEFILE, "config.yaml": CONFIG})
    else:
        content = compressed(kind, tar_bytes(workflow_members()))
    unpack(tmp_path, "upload.bin", content, dest)
    assert (dest / "Snakefile").read_bytes() == SNAKEFILE
    assert (dest / "config.yaml").read_bytes() == CONFIG


def test_a_tar_keeps_its_directories_and_the_owners_execute_bit_only(tmp_path, dest):
    members = [member("scripts", kind=tarfile.DIRTYPE), *workflow_members(),
               member("setuid", b"x", mode=0o4777)]
    unpack(tmp_path, "wf.tar.gz", gzip.compress(tar_bytes(members)), dest)
    assert stat.S_IMODE((dest / "scripts" / "run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "config.yaml").stat().st_mode) == 0o644
    assert stat.S_IMODE((dest / "setuid").stat().st_mode) == 0o755  # no setuid, no go+w


def test_a_github_style_archive_is_unpacked_one_level_up(tmp_path, dest):
    members = [member("repo-0123abc", kind=tarfile.DIRTYPE), *workflow_members("repo-0123abc/")]
    unpack(tmp_path, "repo.tar.gz", gzip.compress(tar_bytes(members)), dest)
    assert sorted(p.name for p in dest.iterdir()) == ["Snakefile", "config.yaml", "scripts"]


def test_a_github_style_zip_is_unpacked_one_level_up(tmp_path, dest):
    unpack(tmp_path, "repo.zip", zip_bytes({"repo-main/": b"", "repo-main/Snakefile": SNAKEFILE,
                                            "repo-main/config/c.yaml": CONFIG}), dest)
    assert (dest / "Snakefile").is_file() and (dest / "config" / "c.yaml").is_file()


def test_a_lone_workflow_directory_is_kept_as_snakemakes_own_layout(tmp_path, dest):
    unpack(tmp_path, "wf.tar", tar_bytes(workflow_members("workflow/")), dest)
    assert (dest / "workflow" / "Snakefile").is_file()


def test_a_tar_made_of_the_directory_itself_unpacks(tmp_path, dest):
    members = [member(".", kind=tarfile.DIRTYPE), *workflow_members("./")]
    unpack(tmp_path, "wf.tar", tar_bytes(members), dest)
    assert (dest / "Snakefile").read_bytes() == SNAKEFILE


# --- hostile archives ---------------------------------------------------------------------------

@pytest.mark.parametrize(("bad", "words"), [
    (member("../x", b"escaped"), ["'../x'", ".."]),
    (member("scripts/../../x", b"escaped"), ["'scripts/../../x'", ".."]),
    (member("/etc/x", b"absolute"), ["'/etc/x'", "absolute"]),
    (member("passwd", kind=tarfile.SYMTYPE, linkname="/etc/passwd"),
     ["'passwd'", "symbolic link", "/etc/passwd"]),
    (member("inside", kind=tarfile.SYMTYPE, linkname="Snakefile"), ["'inside'", "symbolic link"]),
    (member("hard", kind=tarfile.LNKTYPE, linkname="Snakefile"), ["'hard'", "hard link"]),
    (member("null", kind=tarfile.CHRTYPE), ["'null'", "character device"]),
    (member("disk", kind=tarfile.BLKTYPE), ["'disk'", "block device"]),
    (member("pipe", kind=tarfile.FIFOTYPE), ["'pipe'", "fifo"]),
    (member("a\\..\\..\\x", b"windows"), ["backslash"]),
])
def test_a_hostile_tar_member_is_refused_by_name(tmp_path, dest, bad, words):
    content = gzip.compress(tar_bytes([*workflow_members(), bad]))
    message = refused(tmp_path, "wf.tar.gz", content, dest)
    assert "wf.tar.gz" in message
    for word in words:
        assert word in message, message


def special_zip(name: str, kind: int, data: bytes) -> bytes:
    info = zipfile.ZipInfo(name)
    info.external_attr = (kind | 0o777) << 16
    return zip_bytes({"Snakefile": SNAKEFILE}, [(info, data)])


@pytest.mark.parametrize(("content", "words"), [
    (zip_bytes({"Snakefile": SNAKEFILE, "../x": b"escaped"}), ["'../x'", ".."]),
    (zip_bytes({"Snakefile": SNAKEFILE, "/etc/x": b"absolute"}), ["'/etc/x'", "absolute"]),
    (special_zip("passwd", stat.S_IFLNK, b"/etc/passwd"), ["'passwd'", "symbolic link"]),
    (special_zip("pipe", stat.S_IFIFO, b""), ["'pipe'", "fifo"]),
])
def test_a_hostile_zip_member_is_refused_by_name(tmp_path, dest, content, words):
    message = refused(tmp_path, "wf.zip", content, dest)
    for word in words:
        assert word in message, message


def test_a_zip_naming_a_file_twice_is_refused(tmp_path, dest):
    with pytest.warns(UserWarning, match="Duplicate name"):  # zipfile warns, but writes it
        content = zip_bytes({"Snakefile": SNAKEFILE}, [(zipfile.ZipInfo("Snakefile"), b"2")])
    assert "'Snakefile' appears more than once" in refused(tmp_path, "wf.zip", content, dest)


def test_more_members_than_allowed_are_refused_naming_the_limit(tmp_path, dest):
    members = [member(f"f{i}", b"x") for i in range(11)]
    message = refused(tmp_path, "many.tar", tar_bytes(members), dest, max_files=10)
    assert "more than 10 members" in message and "'f10'" in message
    message = refused(tmp_path, "many.zip", zip_bytes({f"f{i}": b"x" for i in range(11)}), dest,
                      max_files=10)
    assert "more than 10 members" in message


def test_a_zip_bomb_is_stopped_at_the_limit_while_unpacking(tmp_path, dest):
    bomb = zip_bytes({"Snakefile": SNAKEFILE, "bomb.bin": b"\0" * (10 * LIMIT)})
    assert len(bomb) < LIMIT // 10  # small when packed
    message = refused(tmp_path, "bomb.zip", bomb, dest)
    assert "more than 64 KiB" in message and "'bomb.bin'" in message


def test_a_zip_whose_headers_lie_about_the_size_is_refused_too(tmp_path, dest):
    bomb = bytearray(zip_bytes({"bomb.bin": b"\0" * (10 * LIMIT)}))
    # Both the local header and the central directory claim 100 bytes unpacked.
    struct.pack_into("<I", bomb, 22, 100)
    central = bytes(bomb).index(b"PK\x01\x02")
    struct.pack_into("<I", bomb, central + 24, 100)
    message = refused(tmp_path, "liar.zip", bytes(bomb), dest)
    assert "'bomb.bin'" in message or "corrupt" in message


def test_a_tar_bomb_is_refused_at_the_limit(tmp_path, dest):
    bomb = gzip.compress(tar_bytes([member("zeros", b"\0" * (10 * LIMIT))]))
    message = refused(tmp_path, "bomb.tar.gz", bomb, dest)
    assert "more than 64 KiB" in message and "'zeros'" in message


def test_the_size_limit_counts_all_members_together(tmp_path, dest):
    members = [member(f"part{i}", b"\1" * (LIMIT // 4)) for i in range(5)]
    message = refused(tmp_path, "parts.tar", tar_bytes(members), dest)
    assert "'part4'" in message


def test_a_corrupt_gzip_is_refused(tmp_path, dest):
    good = gzip.compress(tar_bytes([*workflow_members(), member("data", bytes(range(256)) * 64)]))
    corrupt = bytearray(good)
    for i in range(len(corrupt) // 2, len(corrupt) // 2 + 16):
        corrupt[i] ^= 0xFF
    assert "corrupt" in refused(tmp_path, "wf.tar.gz", bytes(corrupt), dest)
    assert "corrupt" in refused(tmp_path, "wf.tar.gz", good[: len(good) // 2], dest)


def test_a_tar_with_a_damaged_header_is_refused_not_cut_short(tmp_path, dest):
    damaged = bytearray(tar_bytes([*workflow_members(), member("last", b"x")]))
    header = bytes(damaged).index(b"config.yaml")
    damaged[header + 148:header + 156] = b"99999999"  # its checksum
    message = refused(tmp_path, "wf.tar", bytes(damaged), dest)
    assert "corrupt: after member 'Snakefile'" in message


def test_the_zeros_ending_a_tar_do_not_count_against_the_limit(tmp_path, dest):
    members = [member("Snakefile", b"\1" * (LIMIT - 100))]
    assert len(tar_bytes(members)) > LIMIT  # its end is padded with zeros
    unpack(tmp_path, "full.tar.gz", gzip.compress(tar_bytes(members)), tmp_path / "full")
    tail = gzip.compress(tar_bytes(members) + b"\0" * (2 * LIMIT))
    assert "corrupt: after member 'Snakefile'" in refused(tmp_path, "tail.tar.gz", tail, dest)


def test_a_corrupt_zip_is_refused(tmp_path, dest):
    good = zip_bytes({"Snakefile": SNAKEFILE, "data": bytes(range(256)) * 64})
    assert "corrupt" in refused(tmp_path, "wf.zip", good[: len(good) - 30], dest)


def test_a_text_file_named_tar_gz_is_refused(tmp_path, dest):
    message = refused(tmp_path, "wf.tar.gz", b"rule all:\n    input: []\n" * 40, dest)
    assert "wf.tar.gz" in message and "not an archive" in message and ".zip" in message


def test_gzipped_text_is_not_a_tar(tmp_path, dest):
    message = refused(tmp_path, "wf.tar.gz", gzip.compress(b"just text\n" * 100), dest)
    assert "corrupt" in message


def test_an_empty_archive_is_refused(tmp_path, dest):
    assert "no files" in refused(tmp_path, "empty.zip", zip_bytes({}), dest)
    assert "no files" in refused(tmp_path, "dirs.tar", tar_bytes(
        [member("d", kind=tarfile.DIRTYPE)]), dest)


def test_a_file_and_a_directory_of_one_name_are_refused(tmp_path, dest):
    message = refused(tmp_path, "clash.tar", tar_bytes(
        [member("a", b"file"), member("a/b", b"under a file")]), dest)
    assert "'a/b'" in message and "clashes" in message
    message = refused(tmp_path, "twice.tar", tar_bytes(
        [member("Snakefile", b"one"), member("Snakefile", b"two")]), dest)
    assert "more than once" in message
