"""Load on the real DataLake: one job with 1,000 DataLake inputs read over https with 64
transfers at a time, and the FTS service with 200 jobs queued at once (and crashing while they
wait). Small files keep both fast; what is exercised is the number of things in flight."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import fts3.rest.client.easy as fts3
import pytest
from fts_support import wait_for

from datalake_core.fts_adapter import FINAL_JOB_STATES, FtsAdapter, FtsTransfer
from datalake_core.journal import read_events
from datalake_core.request_counter import ENV_VAR, read_counts
from lofar_datalake_testbed.components import fts_url

pytestmark = pytest.mark.integration

N_INPUTS = 1000
MAX_TRANSFERS = 64
N_JOBS = 200

# One job reading all inputs: Snakemake retrieves a job's storage inputs together, so all
# 1,000 reach the provider as one batch.
SNAKEFILE = """
import sys
N = int(config["count"])
CHECK = (
    "import sys, zlib, os\\n"
    "for p in sys.argv[1:]:\\n"
    "    d = open(p, 'rb').read()\\n"
    "    print(os.path.basename(p), len(d), f'{zlib.adler32(d) & 0xFFFFFFFF:08x}')"
)

rule gather:
    input:
        [storage.datalake(f"datalake://lofar/{config['prefix']}/f{i:04d}.dat") for i in range(N)]
    output:
        "summary.txt"
    params:
        py=sys.executable,
        code=CHECK,
    shell:
        "{params.py} -c {params.code:q} {input} > {output}"
"""


def _max_in_flight(events: list[dict[str, Any]]) -> int:
    """Most reads running at the same moment, from each input's start and recording time."""
    edges = sorted([(float(e["start"]), 1) for e in events]
                   + [(float(e["time"]), -1) for e in events])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


@pytest.mark.timeout(600)
def test_1000_inputs_over_https_with_64_transfers_at_once(
        seed, unique, datalake_args, run_snakemake, client_env, tmp_path):
    files = seed([f"{unique}/f{i:04d}.dat" for i in range(N_INPUTS)], "SITE_C_DAV", size=64)
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text(SNAKEFILE)
    counts = tmp_path / "requests.txt"
    args = [*datalake_args, "--storage-datalake-stage-policy", "download",
            "--storage-datalake-max-concurrent-transfers", str(MAX_TRANSFERS),
            "--config", f"prefix={unique}", f"count={N_INPUTS}"]
    result = run_snakemake(tmp_path, snakefile, args, {**client_env, ENV_VAR: str(counts)},
                           timeout=500)
    assert result.returncode == 0, result.stderr[-4000:]

    expected = "".join(f"{Path(f.did.name).name} {len(f.data)} "
                       f"{zlib.adler32(f.data) & 0xFFFFFFFF:08x}\n" for f in files)
    assert (tmp_path / "summary.txt").read_text() == expected
    assert result.stderr.count("via https from SITE_C_DAV") == N_INPUTS
    assert "skipped" not in result.stderr and "Traceback" not in result.stderr
    assert f"making {N_INPUTS} files local (policy download, up to {MAX_TRANSFERS} at once)" \
        in result.stderr, "all inputs in one batch"

    reads = [e for e in read_events(tmp_path) if e["event"] == "input"]
    assert len(reads) == N_INPUTS
    in_flight = _max_in_flight(reads)
    print(f"{in_flight} reads in flight at most")
    # A 64-byte read takes milliseconds, so how many overlap depends on the scheduler (26 to 64
    # seen): the reads do run in parallel, and never beyond the limit.
    assert 1 < in_flight <= MAX_TRANSFERS
    # Resolved in bulk: a handful of Rucio requests for 1,000 inputs, not one per file.
    rucio_requests = [r for r in read_counts(counts) if " /auth" not in r]
    assert len(rucio_requests) <= 6, rucio_requests


def _statuses(context: Any, job_ids: list[str]) -> dict[str, dict[str, Any]]:
    out = {}
    for start in range(0, len(job_ids), 50):  # keeps each request line short
        for status in fts3.get_jobs_statuses(context, job_ids[start:start + 50],
                                             list_files=True):
            out[status["job_id"]] = status
    return out


def _states_in_store(testbed: Any, job_ids: list[str]) -> dict[str, str]:
    """Job states straight from the database of the (stopped) service."""
    db = sqlite3.connect(testbed.layout.fts_dir / "fts.sqlite")
    try:
        marks = ",".join("?" * len(job_ids))
        rows = db.execute(f"SELECT job_id, job_state FROM jobs WHERE job_id IN ({marks})",
                          job_ids)
        return dict(rows.fetchall())
    finally:
        db.close()


def _small_transfers(directory: Path, count: int) -> list[FtsTransfer]:
    transfers = []
    for i in range(count):
        data = os.urandom(512) + str(i).encode()
        path = directory / "src" / f"f{i:03d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        transfers.append(FtsTransfer(path.as_uri(), (directory / "dst" / path.name).as_uri(),
                                     len(data), f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"))
    return transfers


@pytest.mark.timeout(300)
def test_fts_service_finishes_200_queued_jobs_across_a_crash(testbed, tmp_path):
    [service] = [p for p in testbed.services() if p.name == "fts"]
    [dav] = [p for p in testbed.services() if p.name == "webdav-SITE_C_DAV"]
    slots = int(service.argv[list(service.argv).index("--max-active") + 1])
    endpoint = fts_url(testbed.layout.ports())
    fts = FtsAdapter(endpoint, verify=str(testbed.pki.ca_cert),
                     x509_proxy=str(testbed.pki.proxy))

    # Every copy slot is taken by a read from a frozen storage, so the 200 jobs really queue.
    blob = testbed.layout.rse_dir("SITE_C_DAV") / "tests" / tmp_path.name / "blocker.bin"
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(os.urandom(4096))
    # Local sources and destinations in an RSE directory: the service copies nowhere else.
    work = testbed.layout.rse_dir("SITE_A_DISK") / "tests" / tmp_path.name
    url = f"https://127.0.0.1:{testbed.layout.ports()['dav_SITE_C_DAV']}/tests/" \
          f"{tmp_path.name}/blocker.bin"
    blockers = [FtsTransfer(url, (work / "held" / f"{i}.bin").as_uri(), 4096,
                            f"{zlib.adler32(blob.read_bytes()) & 0xFFFFFFFF:08x}")
                for i in range(slots)]
    frozen = dav.process()
    assert frozen is not None
    frozen.suspend()
    try:
        held = [fts.submit([t]) for t in blockers]
        wait_for(lambda: all(s["job_state"] == "ACTIVE"
                             for s in _statuses(fts.context, held).values()),
                 60, "the blocking jobs to be ACTIVE", interval=0.5)
        transfers = _small_transfers(work, N_JOBS)
        with ThreadPoolExecutor(16) as pool:  # many clients submitting at the same time
            job_ids = list(pool.map(lambda t: fts.submit([t]), transfers))
        assert len(set(job_ids)) == N_JOBS
        # The service crashes with all of them queued.
        running = service.process()
        assert running is not None
        os.killpg(running.pid, signal.SIGKILL)
        running.wait(10)
        assert set(_states_in_store(testbed, job_ids).values()) == {"SUBMITTED"}
    finally:
        frozen.resume()
    testbed.up()

    final = wait_for(lambda: _all_final(fts.context, held + job_ids), 240, "every job to end",
                     interval=0.5)
    states = {job_id: status["job_state"] for job_id, status in final.items()}
    assert set(states.values()) == {"FINISHED"}, json.dumps(states)[:2000]
    for t in transfers:
        data = (work / "src" / Path(t.source).name).read_bytes()
        assert (work / "dst" / Path(t.source).name).read_bytes() == data
    assert len(list((work / "held").iterdir())) == slots, "interrupted copies were redone"
    assert not list(work.glob("*/.*.part")), "no partial copies left behind"
    blob.unlink()
    shutil.rmtree(work)


def _all_final(context: Any, job_ids: list[str]) -> dict[str, dict[str, Any]] | None:
    statuses = _statuses(context, job_ids)
    done = all(s["job_state"] in FINAL_JOB_STATES for s in statuses.values())
    return statuses if done and len(statuses) == len(job_ids) else None
