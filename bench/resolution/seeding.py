"""Registering many DataLake inputs fast: the bytes go straight into the RSE's directory and
one bulk `add_replicas` per 1,000 files registers them (uploading them one by one takes minutes).
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

from lofar_datalake.datalake.rucio_adapter import RucioAdapter

SCOPE = "lofar"
SIZE = 64


def names(prefix: str, count: int) -> list[str]:
    # The bench Snakefile asks for `<prefix>/SB{sb}.dat` with three-digit subbands.
    return [f"{prefix}/SB{i:03d}.dat" for i in range(count)]


def seed(rucio: RucioAdapter, prefix: str, count: int, rse: str, local_dir: Path) -> None:
    """Register `count` files on `rse`; the same bytes go to `local_dir` for the local run."""
    from rucio.rse import rsemanager  # type: ignore[import-untyped]

    dids = names(prefix, count)
    pfns = rsemanager.lfns2pfns(
        rucio.rse_info(rse),
        [{"scope": SCOPE, "name": n} for n in dids],
        operation="write",
        scheme="file",
    )
    local_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for name in dids:
        data = os.urandom(SIZE)
        path = Path(pfns[f"{SCOPE}:{name}"].removeprefix("file://"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        (local_dir / Path(name).name).write_bytes(data)
        files.append(
            {
                "scope": SCOPE,
                "name": name,
                "bytes": len(data),
                "adler32": f"{zlib.adler32(data) & 0xFFFFFFFF:08x}",
            }
        )
    rucio.add_replicas(rse, files)
