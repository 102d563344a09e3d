"""Local materialisation of a replica that is a file on this machine: copy, hardlink or symlink.

Every result appears atomically: it is made under `<name>.part` and renamed once verified, so an
interrupted run never leaves a partial file under the final name. A `.part` left by a killed run
is replaced, never written through (it may be a symlink into a replica).
"""

from __future__ import annotations

import errno
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from .checksums import CHUNK, Adler32, adler32_of_file, same_adler32
from .errors import CorruptReplica, LocalWriteError, TransferFailed
from .settings import LinkMode

# Errors that mean "the local file system has no room", whatever the replica.
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def part_name(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def no_space(dest: Path, size: int) -> LocalWriteError:
    """The error for a file that does not fit: names the file, what it needs and what is free."""
    try:
        free = mib(shutil.disk_usage(dest.parent).free)
    except OSError:
        free = "unknown"
    return LocalWriteError(f"not enough space for {dest}: needs {mib(size)}, {free} free in "
                           f"{dest.parent} (the local storage area, --local-storage-prefix)")


def check_space(dest: Path, size: int) -> None:
    """Refuse before transferring a file that cannot fit: a full disk found after minutes of
    transfer wastes them, and a concurrent writer still meets ENOSPC, handled by the writers."""
    if shutil.disk_usage(dest.parent).free < size:
        raise no_space(dest, size)


def open_part(dest: Path, size: int) -> BinaryIO:
    """A fresh, empty `.part` for `dest`. A stale one is removed first, not opened: a run killed
    while linking leaves a symlink there, and writing through it would overwrite a replica."""
    part = part_name(dest)
    try:
        part.unlink(missing_ok=True)
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
    except OSError as exc:
        raise local_error(exc, dest, size) from None
    return os.fdopen(fd, "wb")


def local_error(exc: OSError, dest: Path, size: int) -> LocalWriteError:
    """The error for a failed local write; made after the `.part` is gone, so that the free
    space it reports is what the file could have had."""
    if exc.errno in NO_SPACE:
        return no_space(dest, size)
    return LocalWriteError(f"cannot write {part_name(dest)}: {exc.strerror or exc}")


def commit(part: Path, dest: Path, *, size: int, adler32: str | None, got_size: int,
           got_adler32: str) -> None:
    """Rename `part` to `dest` if it has the catalogue's size and adler32; else delete it."""
    if got_size != size:
        part.unlink(missing_ok=True)
        raise CorruptReplica(f"size mismatch: catalogue {size} bytes, got {got_size}")
    if adler32 is not None and not same_adler32(adler32, got_adler32):
        part.unlink(missing_ok=True)
        raise CorruptReplica(f"adler32 mismatch: catalogue {adler32}, got {got_adler32}")
    os.replace(part, dest)


def is_verified(path: Path, *, size: int, adler32: str | None) -> bool:
    """An existing local file (or link target) with the catalogue's size and checksum."""
    try:
        if path.stat().st_size != size:
            return False
    except OSError:
        return False
    return adler32 is None or same_adler32(adler32, adler32_of_file(path))


def copy(source: Path, dest: Path, *, size: int, adler32: str | None) -> None:
    """Copy in the kernel (copy_file_range, as cp does) while the replica is checksummed;
    where the kernel cannot (another file system type, old kernel), read, checksum and write
    in Python."""
    part = part_name(dest)
    try:
        src = open(source, "rb")
    except OSError as exc:
        raise TransferFailed(f"cannot read {source}: {exc.strerror or exc}") from None
    # The replica is checksummed on the other core while the kernel copies it (zlib and
    # copy_file_range both run without the GIL): a verified copy in about the time of cp.
    with ThreadPoolExecutor(max_workers=1) as pool:
        replica_sum = pool.submit(_checksum, source)
        try:
            with src, open_part(dest, size) as out:
                written = _kernel_copy(src, out, source)
                if written is None:
                    digest, written = _python_copy(src, out, source)
                    checksum = digest.hexdigest()
                else:
                    checksum = replica_sum.result()
        except OSError as exc:  # writing, or the flush on close: a local problem
            part.unlink(missing_ok=True)
            raise local_error(exc, dest, size) from None
        except BaseException:
            part.unlink(missing_ok=True)
            raise
    commit(part, dest, size=size, adler32=adler32, got_size=written, got_adler32=checksum)


def _checksum(source: Path) -> str:
    try:
        return adler32_of_file(source)
    except OSError as exc:
        raise TransferFailed(f"cannot read {source}: {exc.strerror or exc}") from None


def _kernel_copy(src: BinaryIO, out: BinaryIO, source: Path) -> int | None:
    """Bytes copied by copy_file_range, or None when the kernel cannot do it here."""
    if not hasattr(os, "copy_file_range"):
        return None
    written = 0
    while True:
        try:
            n = os.copy_file_range(src.fileno(), out.fileno(), 1 << 30)
        except OSError as exc:
            if written == 0 and exc.errno in (errno.EXDEV, errno.ENOSYS, errno.EINVAL,
                                              errno.EOPNOTSUPP):
                return None
            if exc.errno in NO_SPACE:
                raise
            raise TransferFailed(f"cannot copy {source}: {exc.strerror or exc}") from None
        if n == 0:
            return written
        written += n


def _python_copy(src: BinaryIO, out: BinaryIO, source: Path) -> tuple[Adler32, int]:
    digest = Adler32()
    written = 0
    while chunk := _read(src, source):
        out.write(chunk)
        digest.update(chunk)
        written += len(chunk)
    return digest, written


def _read(handle: BinaryIO, source: Path) -> bytes:
    try:
        return handle.read(CHUNK)
    except OSError as exc:  # the replica's problem, unlike errors while writing
        raise TransferFailed(f"cannot read {source}: {exc.strerror or exc}") from None


def link(source: Path, dest: Path, *, mode: LinkMode, size: int, adler32: str | None,
         verify: bool) -> str:
    """Make `dest` give access to `source` without copying where possible; returns how
    ("symlink", "hardlink" or "copy"). A replica's size is checked before it is linked, its
    adler32 too with `verify`."""
    if mode is LinkMode.COPY:
        copy(source, dest, size=size, adler32=adler32)
        return "copy"
    try:
        got = source.stat().st_size
    except OSError as exc:
        raise TransferFailed(f"cannot read {source}: {exc.strerror or exc}") from None
    if got != size:
        raise CorruptReplica(f"size mismatch: catalogue {size} bytes, {source} has {got}")
    if verify:
        # Reading the whole replica is what a link otherwise saves: sites that trust their
        # storage turn it off (--storage-datalake-verify-site-replicas size).
        got_sum = adler32_of_file(source) if adler32 is not None else ""
        if adler32 is not None and not same_adler32(adler32, got_sum):
            raise CorruptReplica(f"adler32 mismatch: catalogue {adler32}, {source} has {got_sum}")
    part = part_name(dest)
    part.unlink(missing_ok=True)
    try:
        if mode is LinkMode.HARDLINK:
            os.link(source, part)
        else:
            os.symlink(source.resolve(), part)
    except OSError as exc:
        if exc.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK):
            # Another file system, or links not allowed there: a copy still works.
            copy(source, dest, size=size, adler32=adler32)
            return "copy"
        raise TransferFailed(f"cannot link {source}: {exc.strerror or exc}") from None
    os.replace(part, dest)
    return mode.value
