"""Unpacking a submitted workflow archive: hostile input, so every member is checked.

The format is told by the content (magic bytes), never by the file's name: tar (ustar, GNU,
pax), tar compressed with gzip, bzip2 or xz, and zip. Refused, naming the member: absolute
paths, `..` components, links of either kind (symbolic or hard: refusing them all is simplest and
safe), devices, fifos and other special files, a name given twice, encrypted zip members, more
members than allowed, and more bytes unpacked than allowed. Bytes are counted as they are
written, so a zip whose headers lie about its sizes gains nothing, and nothing beyond the limit
reaches the disk. Tar members also pass `tarfile.data_filter` (Python 3.11.4+, PEP 706: no
absolute or escaping paths, no special files, ownership dropped, modes clamped) before any of
their bytes are written. Everything is unpacked beside `dest` first and moved into it only when
the whole archive was accepted: a refused archive leaves `dest` empty.
"""

from __future__ import annotations

import lzma
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import IO, Literal

if not hasattr(tarfile, "data_filter"):  # added in 3.11.4 (PEP 706)
    raise ImportError("lofar_datalake.service.archive needs Python 3.11.4 or newer: it relies on "
                      "tarfile's data extraction filter")

CHUNK = 1024**2
NAME_MAX = 255  # bytes in one path component (Linux)
PATH_MAX = 1024  # bytes in a member's whole path: far more than any workflow needs
# The first bytes of each accepted format (a plain tar says "ustar" at offset 257).
MAGIC = ((b"\x1f\x8b", "gz"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"),
         (b"PK\x03\x04", "zip"), (b"PK\x05\x06", "zip"))
FORMATS = ".tar, .tar.gz (.tgz), .tar.bz2, .tar.xz or .zip"
TOP_KEPT = "workflow"  # a lone top-level directory of this name is Snakemake's layout: kept


class ArchiveError(ValueError):
    """An archive refused; the message is for the researcher (submission.unpack_archive makes
    it a SubmissionError)."""


def shown(text: str, limit: int = 120) -> str:
    """`text` quoted for a message: one line, control characters escaped, long text cut."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


def unpack_archive(archive: Path, dest: Path, max_bytes: int, max_files: int = 10000) -> None:
    """Unpack `archive` into `dest` (made if missing; it must be empty). An archive holding one
    top-level directory (as GitHub's archives do) is unpacked as if that directory were its root,
    unless that directory is `workflow/` (Snakemake's own layout)."""
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise ValueError(f"{dest}: not empty; unpack_archive needs an empty directory")
    kind = _kind(archive)
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=dest.parent))
    try:
        budget = _Budget(archive.name, max_bytes, max_files)
        if kind == "zip":
            _unzip(archive, staging, budget)
        else:
            _untar(archive, kind, staging, budget)
        if budget.files == 0:
            raise ArchiveError(f"{archive.name}: the archive holds no files; it should hold "
                               "the workflow (its Snakefile, config and scripts)")
        entries = list(staging.iterdir())
        top = staging
        if len(entries) == 1 and entries[0].is_dir() and entries[0].name != TOP_KEPT:
            top = entries[0]
        for entry in top.iterdir():
            entry.rename(dest / entry.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class _Budget:
    """Members and bytes unpacked so far, against the limits."""

    def __init__(self, archive: str, max_bytes: int, max_files: int) -> None:
        self.archive, self.max_bytes, self.max_files = archive, max_bytes, max_files
        self.members = self.files = self.bytes = 0
        self.last = ""  # the last member's name
        self.seen: set[str] = set()

    def member(self, name: str) -> None:
        self.members, self.last = self.members + 1, name
        if self.members > self.max_files:
            raise ArchiveError(
                f"{self.archive}: more than {self.max_files} members (the limit), at member "
                f"{shown(name)}: leave data, results and .git out of the archive")

    def add(self, name: str, count: int) -> None:
        self.bytes += count
        if self.bytes > self.max_bytes:
            raise ArchiveError(
                f"{self.archive}: unpacks to more than {_size(self.max_bytes)} (your limit for "
                f"an archive, unpacked), passed at member {shown(name)}: leave data and results "
                "out of the archive (the workflow reads its inputs as DIDs)")

    def once(self, name: str, rel: PurePosixPath) -> None:
        if str(rel) in self.seen:
            raise ArchiveError(f"{self.archive}: member {shown(name)} appears more than once; "
                                  "each path may be in the archive only once")
        self.seen.add(str(rel))


def _size(count: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if count >= scale:
            return f"{count / scale:.{0 if count % scale == 0 else 1}f} {unit}"
    return f"{count} bytes"


def _kind(archive: Path) -> str:
    with archive.open("rb") as f:
        head = f.read(512)
    for magic, kind in MAGIC:
        if head.startswith(magic):
            return kind
    if head[257:262] == b"ustar":
        return "tar"
    raise ArchiveError(f"{archive.name}: not an archive this service unpacks (its content is "
                          f"none of {FORMATS}, whatever its name says): upload one of those")


def _relative(archive: str, name: str) -> PurePosixPath | None:
    """The member's path inside the archive, or None for the archive's root itself (`./`)."""
    what = f"{archive}: member {shown(name)}"
    if name.startswith("/"):
        raise ArchiveError(f"{what} has an absolute path; members must be relative to the "
                              "workflow's root")
    if "\\" in name or "\x00" in name:
        raise ArchiveError(f"{what} has a backslash or NUL in its name; use '/' between "
                              "directories and plain file names")
    rel = PurePosixPath(name)
    if ".." in rel.parts:
        raise ArchiveError(f"{what} has a '..' component: no member may point outside the "
                              "workflow's root")
    if len(name.encode("utf-8", "surrogateescape")) > PATH_MAX or any(
            len(part.encode("utf-8", "surrogateescape")) > NAME_MAX for part in rel.parts):
        raise ArchiveError(f"{what} has a name longer than {NAME_MAX} bytes per component or "
                              f"{PATH_MAX} bytes in all")
    return rel if rel.parts else None


def _write(src: IO[bytes], target: Path, mode: int, budget: _Budget, name: str) -> None:
    _mkdir(target.parent, budget, name)
    try:  # nothing in the staging directory is a link, and nothing may be overwritten
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except (FileExistsError, IsADirectoryError, NotADirectoryError) as e:
        raise ArchiveError(f"{budget.archive}: member {shown(name)} clashes with an earlier "
                              "member (a file and a directory of the same name)") from e
    with os.fdopen(fd, "wb") as out:
        while chunk := src.read(CHUNK):
            budget.add(name, len(chunk))  # before the bytes reach the disk
            out.write(chunk)
    budget.files += 1


def _mkdir(target: Path, budget: _Budget, name: str) -> None:
    try:
        target.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as e:
        raise ArchiveError(f"{budget.archive}: member {shown(name)} clashes with an earlier "
                              "member (a file and a directory of the same name)") from e


def _corrupt(archive: str, error: BaseException) -> ArchiveError:
    return ArchiveError(f"{archive}: the archive is corrupt or truncated ({error}); make it "
                           f"again ({FORMATS}) and upload it again")


def _untar(archive: Path, kind: str, staging: Path, budget: _Budget) -> None:
    modes: dict[str, Literal["r:", "r:gz", "r:bz2", "r:xz"]] = {
        "tar": "r:", "gz": "r:gz", "bz2": "r:bz2", "xz": "r:xz"}
    mode = modes[kind]
    try:
        with tarfile.open(archive, mode) as tar:
            for member in tar:  # one header at a time: the limits apply before all are read
                _untar_member(tar, member, staging, budget)
            _check_end(tar, budget)
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as e:
        raise _corrupt(archive.name, e) from e
    except OSError as e:
        if e.errno is not None:  # the service's own disk, not the archive
            raise
        raise _corrupt(archive.name, e) from e  # gzip's and bzip2's complaints about the data


def _check_end(tar: tarfile.TarFile, budget: _Budget) -> None:
    """What follows the last member must be the end-of-archive zeros, read to the end: tarfile
    takes a header it cannot read after the first for the end of the archive, and would never
    read the rest of a compressed stream, whose checksum is checked only at its end."""
    assert tar.fileobj is not None
    tar.fileobj.seek(tar.offset)
    after = 0  # bounded on its own: zeros are all it may hold, but not gigabytes of them
    while chunk := tar.fileobj.read(CHUNK):
        after += len(chunk)
        if chunk.count(0) != len(chunk) or after > budget.max_bytes:
            raise ArchiveError(f"{budget.archive}: the archive is corrupt: after member "
                               f"{shown(budget.last)} comes something that is neither a member "
                               "nor the archive's end")


def _untar_member(tar: tarfile.TarFile, member: tarfile.TarInfo, staging: Path,
                  budget: _Budget) -> None:
    name = member.name
    budget.member(name)
    what = f"{budget.archive}: member {shown(name)}"
    rel = _relative(budget.archive, name)
    if member.issym() or member.islnk():
        kind = "a symbolic link" if member.issym() else "a hard link"
        raise ArchiveError(f"{what} is {kind} (to {shown(member.linkname)}); links are not "
                              "accepted: put the file itself in the archive")
    if not (member.isreg() or member.isdir()):
        kind = ("a character device" if member.ischr() else "a block device" if member.isblk()
                else "a fifo" if member.isfifo() else "not a regular file or directory")
        raise ArchiveError(f"{what} is {kind}; only files and directories are accepted")
    if rel is None:
        return
    try:
        filtered = tarfile.data_filter(member, str(staging))
    except tarfile.FilterError as e:
        raise ArchiveError(f"{what} is refused: {e}") from e
    if member.isdir():
        _mkdir(staging / rel, budget, name)
        return
    budget.once(name, rel)
    src = tar.extractfile(member)
    if src is None:  # only for members that are not files; checked above
        raise ArchiveError(f"{what} cannot be read as a file")
    with src:
        _write(src, staging / rel, filtered.mode or 0o600, budget, name)


def _unzip(archive: Path, staging: Path, budget: _Budget) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                _unzip_member(zf, info, staging, budget)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError,
            zlib.error, lzma.LZMAError) as e:
        raise _corrupt(archive.name, e) from e
    except OSError as e:
        if e.errno is not None:
            raise
        raise _corrupt(archive.name, e) from e


def _unzip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, staging: Path,
                  budget: _Budget) -> None:
    name = info.filename
    budget.member(name)
    what = f"{budget.archive}: member {shown(name)}"
    rel = _relative(budget.archive, name)
    unix = info.external_attr >> 16  # the Unix mode, when the zip was made on Unix
    if stat.S_ISLNK(unix):
        raise ArchiveError(f"{what} is a symbolic link; links are not accepted: put the file "
                              "itself in the archive")
    is_dir = info.is_dir() or stat.S_ISDIR(unix)
    if stat.S_IFMT(unix) and not (stat.S_ISREG(unix) or stat.S_ISDIR(unix)):
        raise ArchiveError(f"{what} is a device, fifo or socket; only files and directories "
                              "are accepted")
    if info.flag_bits & 0x1:
        raise ArchiveError(f"{what} is encrypted; upload an archive without a password")
    if rel is None:
        return
    if is_dir:
        _mkdir(staging / rel, budget, name)
        return
    budget.once(name, rel)
    with zf.open(info) as src:  # its CRC is checked at the end of the member's data
        _write(src, staging / rel, 0o755 if unix & 0o100 else 0o644, budget, name)
