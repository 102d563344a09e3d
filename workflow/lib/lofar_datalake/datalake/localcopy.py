"""Local materialisation of a replica that is a file on this machine: copy, hardlink or symlink.

Every result appears atomically: it is made under `<name>.part` and renamed once verified, so an
interrupted run never leaves a partial file under the final name.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from .checksums import CHUNK, Adler32, adler32_of_file, same_adler32
from .settings import LinkMode


class TransferFailed(Exception):
    """One attempt to obtain a replica failed; the message is the reason, without secrets."""


def part_name(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def commit(part: Path, dest: Path, *, size: int, adler32: str | None, got_size: int,
           got_adler32: str) -> None:
    """Rename `part` to `dest` if it has the catalogue's size and adler32; else delete it."""
    if got_size != size:
        part.unlink(missing_ok=True)
        raise TransferFailed(f"size mismatch: catalogue {size} bytes, got {got_size}")
    if adler32 is not None and not same_adler32(adler32, got_adler32):
        part.unlink(missing_ok=True)
        raise TransferFailed(f"adler32 mismatch: catalogue {adler32}, got {got_adler32}")
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
    part = part_name(dest)
    digest = Adler32()
    written = 0
    try:
        with open(source, "rb") as src, open(part, "wb") as out:
            while chunk := src.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                written += len(chunk)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise TransferFailed(f"cannot copy {source}: {exc.strerror or exc}") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    commit(part, dest, size=size, adler32=adler32, got_size=written,
           got_adler32=digest.hexdigest())


def link(source: Path, dest: Path, *, mode: LinkMode, size: int, adler32: str | None,
         verify: bool) -> str:
    """Make `dest` give access to `source` without copying where possible; returns how
    ("symlink", "hardlink" or "copy"). A replica is verified before it is linked."""
    if mode is LinkMode.COPY:
        copy(source, dest, size=size, adler32=adler32)
        return "copy"
    if verify:
        try:
            got = source.stat().st_size
        except OSError as exc:
            raise TransferFailed(f"cannot read {source}: {exc.strerror or exc}") from None
        got_sum = adler32_of_file(source) if adler32 is not None else ""
        if got != size:
            raise TransferFailed(f"size mismatch: catalogue {size} bytes, {source} has {got}")
        if adler32 is not None and not same_adler32(adler32, got_sum):
            raise TransferFailed(f"adler32 mismatch: catalogue {adler32}, {source} has {got_sum}")
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
