"""Helpers of the plugin's tape tests: inputs whose only replicas are on LTA_TAPE, and FTS's
records of the recalls (staging_start / staging_finished per file)."""

from __future__ import annotations

import datetime as dt
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import requests

from datalake_core.rucio_adapter import Did, RucioAdapter
from lofar_datalake_testbed.components import fts_url
from lofar_datalake_testbed.layout import STAGING_RSE, TAPE_RSE

STAMP = "%Y-%m-%dT%H:%M:%S"
JOB_STATES = "SUBMITTED,STAGING,STARTED,ACTIVE,FINISHED,FAILED,FINISHEDDIRTY,CANCELED"


@dataclass(frozen=True)
class TapeFile:
    did: Did
    url: str  # its PFN on the tape endpoint (the staging area's too)
    path: Path  # its bytes in the tape library
    relative: str
    data: bytes


def on_tape(testbed, rucio: RucioAdapter, names: list[str], size: int = 20_000
            ) -> list[TapeFile]:
    """Files written into the tape library and registered on LTA_TAPE only (nearline)."""
    from rucio.rse import rsemanager

    info = rucio.rse_info(TAPE_RSE)
    pfns = rsemanager.lfns2pfns(info, [{"scope": "lofar", "name": n} for n in names],
                                operation="read", scheme="https")
    root = testbed.layout.rse_dir(TAPE_RSE)
    out, files = [], []
    for name in names:
        did = Did("lofar", name)
        url = str(pfns[str(did)])
        relative = url.split("/", 3)[3]
        data = os.urandom(size) + name.encode()
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files.append({"scope": "lofar", "name": name, "bytes": len(data),
                      "adler32": f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"})
        out.append(TapeFile(did, url, path, relative, data))
    rucio.add_replicas(TAPE_RSE, files)
    return out


def summary_of(files: list[TapeFile]) -> str:
    """What tests/workflow/storage/Snakefile writes for these inputs."""
    return "".join(
        f"{Path(f.did.name).stem} {len(f.data)} {zlib.adler32(f.data) & 0xFFFFFFFF:08x}\n"
        for f in sorted(files, key=lambda f: f.did.name))


def staging_records(testbed, files: list[TapeFile]) -> list[dict]:
    """FTS's file records of bring-online jobs for these files (the service's latest 500
    jobs)."""
    cert, ca = str(testbed.pki.proxy), str(testbed.pki.ca_cert)
    base = fts_url(testbed.layout.ports())
    urls = {f.url for f in files}
    jobs = requests.get(f"{base}/jobs", params={"state_in": JOB_STATES, "limit": 500},
                        cert=cert, verify=ca, timeout=30).json()
    records = []
    for job in jobs:
        if not int(job.get("bring_online") or 0) > 0:
            continue
        found = requests.get(f"{base}/jobs/{job['job_id']}/files", cert=cert, verify=ca,
                             timeout=30).json()
        records += [r for r in found if r["source_surl"] in urls]
    return records


def most_staging_at_once(records: list[dict]) -> int:
    """The most files between their staging_start and staging_finished at any moment."""
    events = []
    for r in records:
        if r.get("staging_start"):
            end = r.get("staging_finished") or r["staging_start"]
            events += [(_when(r["staging_start"]), 1), (_when(end), -1)]
    most = current = 0
    for _, step in sorted(events):
        current += step
        most = max(most, current)
    return most


def recall_rules(rucio: RucioAdapter, files: list[TapeFile]) -> list[dict]:
    """This account's rules on the staging area for these files."""
    mine = rucio.account_rules(STAGING_RSE)
    return [mine[f.did] for f in files if f.did in mine]


def released(rule: dict) -> bool:
    """Deleted by its owner: Rucio deletes softly, the rule expiring within the hour."""
    expires = rule["expires_at"]
    if isinstance(expires, str):
        expires = dt.datetime.strptime(expires, "%a, %d %b %Y %H:%M:%S UTC")
    return expires <= dt.datetime.utcnow() + dt.timedelta(seconds=3600 + 60)


def _when(stamp: str) -> dt.datetime:
    return dt.datetime.strptime(stamp, STAMP)
