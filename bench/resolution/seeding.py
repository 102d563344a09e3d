"""Registering many DataLake inputs fast: the bytes go straight into the RSE's directory and
one bulk `add_replicas` per 1,000 files registers them (uploading them one by one takes minutes).
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

from datalake_core.rucio_adapter import RucioAdapter

SCOPE = "lofar"
SIZE = 64


def names(prefix: str, count: int) -> list[str]:
    # The bench Snakefile asks for `<prefix>/SB{sb}.dat` with three-digit subbands.
    return [f"{prefix}/SB{i:03d}.dat" for i in range(count)]


def register(rucio: RucioAdapter, rse: str, contents: dict[str, bytes]) -> None:
    """Write each file's bytes where the RSE keeps that DID, then register all of them with one
    bulk `add_replicas` per 1,000."""
    from rucio.rse import rsemanager  # type: ignore[import-untyped]

    pfns = rsemanager.lfns2pfns(
        rucio.rse_info(rse),
        [{"scope": SCOPE, "name": n} for n in contents],
        operation="write",
        scheme="file",
    )
    files = []
    for name, data in contents.items():
        path = Path(pfns[f"{SCOPE}:{name}"].removeprefix("file://"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files.append(
            {
                "scope": SCOPE,
                "name": name,
                "bytes": len(data),
                "adler32": f"{zlib.adler32(data) & 0xFFFFFFFF:08x}",
            }
        )
    for start in range(0, len(files), 1000):
        rucio.add_replicas(rse, files[start : start + 1000])


def seed(rucio: RucioAdapter, prefix: str, count: int, rse: str, local_dir: Path) -> None:
    """Register `count` files on `rse`; the same bytes go to `local_dir` for the local run."""
    contents = {name: os.urandom(SIZE) for name in names(prefix, count)}
    local_dir.mkdir(parents=True, exist_ok=True)
    for name, data in contents.items():
        (local_dir / Path(name).name).write_bytes(data)
    register(rucio, rse, contents)
