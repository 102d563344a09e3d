"""Unpack one LOFAR archive subband (`L<obsid>_SB<nnn>_uv.MS.tar`)."""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from pathlib import Path


def _safe_members(archive: Path, tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """The archive's members, refusing anything but plain files and directories inside it."""
    members = tar.getmembers()
    for m in members:
        parts = Path(m.name).parts
        if not (m.isfile() or m.isdir()) or m.name.startswith("/") or ".." in parts:
            raise ValueError(f"{archive}: refusing member {m.name!r} (only files and "
                             "directories inside the Measurement Set are extracted)")
        m.mode &= 0o755  # no set-id or world-writable bits from an archive
    return members


def unpack_ms(archive: Path, dest: Path) -> Path:
    """Extract the single Measurement Set in `archive` to `dest` (the MS directory itself).

    The archive's top-level directory may be named differently from `dest` (archives are
    sometimes renamed on ingest); its content is what counts. Only regular files and
    directories are extracted, and nothing outside the archive's own tree.
    """
    with tarfile.open(archive) as tar:
        tops = {Path(m.name).parts[0] for m in tar.getmembers() if m.name not in ("", ".")}
        if len(tops) != 1:
            raise ValueError(f"{archive}: expected one Measurement Set, found {sorted(tops)}")
        top = tops.pop()
        if not top.endswith(".MS"):
            raise ValueError(f"{archive}: {top} is not a Measurement Set")
        dest.parent.mkdir(parents=True, exist_ok=True)
        members = _safe_members(archive, tar)
        with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
            # Extraction filters exist from Python 3.11.4 on; the stage images' Debian 3.11.2
            # lacks them, and _safe_members already refuses what the "data" filter would.
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, members=members, filter="data")
            else:
                tar.extractall(tmp, members=members)  # noqa: S202 (members checked above)
            if dest.exists():
                shutil.rmtree(dest)
            Path(tmp, top).rename(dest)
    if not (dest / "table.dat").exists():
        raise ValueError(f"{archive}: {top} has no main table")
    return dest
