"""Helpers of the tape tests: an observation put on LTA_TAPE, the tape endpoint's files, FTS's
job records of recalls."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import fts3.rest.client.easy as fts3
import requests
from fts_support import fts_context_for, wait_for

from lofar_datalake_testbed.layout import TAPE_RSE
from lofar_datalake_testbed.seed import seed

FINAL = ("FINISHED", "FAILED", "FINISHEDDIRTY", "CANCELED")
STAMP = "%Y-%m-%dT%H:%M:%S"


@dataclass(frozen=True)
class OnTape:
    name: str
    url: str  # its PFN on the tape endpoint (also LTA_STAGING's)
    path: Path  # its bytes in the tape area
    relative: str
    data: bytes


def put_on_tape(testbed, tmp_path: Path, count: int, size: int = 50_000) -> list[OnTape]:
    """An observation of `count` subbands whose only replicas are on LTA_TAPE (`seed --tape`)."""
    from rucio.client import Client

    obsid = f"L{uuid.uuid4().int % 10**9}"
    directory = tmp_path / obsid
    directory.mkdir()
    contents = {}
    for sb in range(count):
        name = f"{obsid}_SB{sb:03d}_uv.MS.tar"
        contents[name] = os.urandom(size)
        (directory / name).write_bytes(contents[name])
    seed(testbed, directory, rses=[TAPE_RSE])
    dids = [{"scope": "lofar", "name": n} for n in sorted(contents)]
    found = []
    for replica in Client().list_replicas(dids, schemes=["https"]):
        assert set(replica["states"]) == {TAPE_RSE}, replica
        url = next(iter(replica["rses"][TAPE_RSE]))
        relative = urlparse(url).path.lstrip("/")
        path = testbed.layout.rse_dir(TAPE_RSE) / relative
        found.append(OnTape(replica["name"], url, path, relative, contents[replica["name"]]))
    return sorted(found, key=lambda f: f.name)


def get(testbed, url: str) -> requests.Response:
    return requests.get(url, verify=str(testbed.pki.ca_cert), timeout=10)


def stage(testbed, files: list[OnTape], pin_lifetime: int, bring_online: int = 600) -> str:
    """A staging-only FTS job (source == destination), as Rucio's conveyor-stager submits."""
    transfers = [fts3.new_transfer(f.url, f.url) for f in files]
    job = fts3.new_job(transfers, bring_online=bring_online, copy_pin_lifetime=pin_lifetime)
    return str(fts3.submit(fts_context_for(testbed), job))


def wait_job(testbed, job_id: str, timeout: float = 60) -> dict:
    context = fts_context_for(testbed)

    def final() -> dict | None:
        status = fts3.get_job_status(context, job_id, list_files=True)
        return status if status["job_state"] in FINAL else None

    return wait_for(final, timeout, f"FTS job {job_id} to end", interval=0.5)


def when(stamp: str) -> dt.datetime:
    return dt.datetime.strptime(stamp, STAMP)


def most_staging_at_once(files: list[dict]) -> int:
    """From FTS's records: the most files between their staging_start and staging_finished."""
    events = []
    for f in files:
        events += [(when(f["staging_start"]), 1), (when(f["staging_finished"]), -1)]
    most = current = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):
        current += step
        most = max(most, current)
    return most
