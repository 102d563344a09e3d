"""Unpack one LOFAR archive subband (`L<obsid>_SB<nnn>_uv.MS.tar`)."""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from pathlib import Path


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
        with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
            tar.extractall(tmp, filter="data")
            if dest.exists():
                shutil.rmtree(dest)
            Path(tmp, top).rename(dest)
    if not (dest / "table.dat").exists():
        raise ValueError(f"{archive}: {top} has no main table")
    return dest
