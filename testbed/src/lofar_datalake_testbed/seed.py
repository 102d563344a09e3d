"""`lofar-datalake testbed seed DIR`: put an observation's archives into the local DataLake.

Each `L<obsid>_SB<nnn>_uv.MS.tar` in DIR is uploaded (TLS verified against the testbed CA, the
stored size checked, registered with its adler32) to one of the given RSEs in turn, so that the
files are spread over several simulated sites as in a real DataLake; files already registered
with the same checksum are left alone. With `--tape` they all go to the tape RSE LTA_TAPE, their
only replicas, nearline until recalled.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from datalake_core.checksums import adler32_of_file
from datalake_core.rucio_adapter import DataLakeError, Did, RucioAdapter

from .orchestrator import Testbed
from .rucio_config import PIPELINE_SCOPE

DEFAULT_RSES = ("SITE_B_DISK", "SITE_C_DAV")


def seed(bed: Testbed, directory: Path, rses: Sequence[str] = DEFAULT_RSES,
         scope: str = PIPELINE_SCOPE) -> list[tuple[Did, str]]:
    """Upload every archive of `directory`; return (DID, RSE) for each file."""
    archives = sorted(directory.glob("L*_SB*_uv.MS.tar"))
    if not archives:
        raise FileNotFoundError(f"no L<obsid>_SB<nnn>_uv.MS.tar archives in {directory}")
    os.environ.update(bed.client_env())
    rucio = RucioAdapter()
    known = {r["name"]: r for r in rucio.list_replicas([Did(scope, a.name) for a in archives])}
    placed = []
    for index, archive in enumerate(archives):
        did, rse = Did(scope, archive.name), rses[index % len(rses)]
        existing = known.get(archive.name)
        if existing is not None:
            if existing["adler32"] != adler32_of_file(archive):
                raise DataLakeError(f"{did} is already registered with other content "
                                    f"(adler32 {existing['adler32']}); Rucio files are immutable")
            where = sorted(existing["rses"]) or [rse]
            print(f"  {did} already in the DataLake ({', '.join(where)})", flush=True)
            placed.append((did, where[0]))
            continue
        rucio.upload(archive, did, rse)
        print(f"  {did} -> {rse} ({archive.stat().st_size / 2**20:.1f} MiB)", flush=True)
        placed.append((did, rse))
    return placed
