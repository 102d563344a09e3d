"""Pack a Measurement Set into a deterministic tar: the preprocessed subbands that travel between
sites as DataLake files (`placement.stage: preprocess` writes them, `process` unpacks them with
`unpack.unpack_ms`).

Rucio files are immutable and compared by checksum, so a subband preprocessed twice from the
same data must give the same bytes: members are sorted, and every header field that records
where or when the archive was made (mtime, owner, permissions beyond the execute bit) is fixed.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

# 2000-01-01T00:00:00Z: any fixed time; not 0, which some tools show as "no time".
FIXED_MTIME = 946684800


def _members(ms: Path) -> list[Path]:
    """`ms` and every directory and file under it, in path order (a directory right before its
    content), refusing anything `unpack_ms` would refuse (links, devices, sockets)."""
    found = [ms]
    for directory, dirnames, filenames in os.walk(ms):
        for name in dirnames + filenames:
            path = Path(directory, name)
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                raise ValueError(f"{path}: only files and directories can be packed")
            found.append(path)
    return sorted(found, key=lambda p: p.relative_to(ms).parts)


def _header(path: Path, arcname: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(arcname)
    info.mtime = FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if path.is_dir():
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    else:
        info.size = path.stat().st_size
        info.mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
    return info


def pack_ms(ms: Path, archive: Path) -> Path:
    """Write `ms` (a Measurement Set directory) as `archive`, its one top-level directory
    named as `ms`; equal contents give equal bytes."""
    if not (ms / "table.dat").is_file():
        raise ValueError(f"{ms} is not a Measurement Set (no table.dat)")
    archive.parent.mkdir(parents=True, exist_ok=True)
    part = archive.with_name(archive.name + ".part")
    with tarfile.open(part, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in _members(ms):
            info = _header(path, (Path(ms.name) / path.relative_to(ms)).as_posix())
            if info.isdir():
                tar.addfile(info)
            else:
                with path.open("rb") as fh:
                    tar.addfile(info, fh)
    part.replace(archive)
    return archive

