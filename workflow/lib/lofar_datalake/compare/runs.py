"""Running a Snakemake workflow for a comparison, and reading back what the run did: wall time,
per-rule job times (Snakemake's own metadata records), staging (the provider's journal) and
the Rucio requests made (counted by the request counter)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datalake_core import request_counter
from datalake_core.journal import InputEvent, SiteTransferEvent, read_journal
from snakemake_storage_plugin_datalake import snakemake_internals as internals

if TYPE_CHECKING:
    from .at_site import SiteRuns

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


@dataclass
class Run:
    label: str
    workdir: Path
    exit_code: int = -1
    started: float = 0.0
    wall_s: float = 0.0
    log: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def requests_file(self) -> Path:
        return self.workdir / ".snakemake" / "datalake" / "rucio-requests.txt"


def run_snakemake(run: Run, args: Sequence[str], env: dict[str, str] | None = None,
                  site: SiteRuns | None = None) -> Run:
    """Run Snakemake in `run.workdir` with its output in a log file there; at a testbed site
    through the site's access point."""
    run.workdir.mkdir(parents=True, exist_ok=True)
    run.requests_file.parent.mkdir(parents=True, exist_ok=True)
    run.requests_file.unlink(missing_ok=True)
    run.log = run.workdir / "snakemake.log"
    counter = {request_counter.ENV_VAR: str(run.requests_file)}
    if site is None:
        cmd = [SNAKEMAKE, "--directory", str(run.workdir), *args]
    else:
        site.prepare(run.workdir)
        cmd = site.command(run.workdir, list(args), {**site.env(), **(env or {}), **counter})
    where = f" at the testbed's {site.kind} site ({site.executor} executor)" if site else ""
    print(f"==> {run.label} run in {run.workdir}{where}", flush=True)
    environment = {**os.environ, **(site.env() if site else {}), **(env or {}), **counter}
    run.started = time.time()
    with open(run.log, "w") as log:
        done = subprocess.run(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=environment, check=False,
            cwd=run.workdir,
        )
    run.wall_s = time.time() - run.started
    run.exit_code = done.returncode
    state = "done" if done.returncode == 0 else f"FAILED (exit {done.returncode})"
    print(f"    {state} in {run.wall_s:.0f} s; log: {run.log}", flush=True)
    return run


def stage_times(workdir: Path, since: float) -> dict[str, dict[str, float]]:
    """Per rule: jobs and summed wall seconds, from Snakemake's metadata of jobs run since."""
    jobs: dict[tuple[str, str], tuple[float, float]] = {}
    for path, record in internals.job_records(workdir):
        start, end = record.get("starttime"), record.get("endtime")
        if start is None or end is None or float(start) < since:
            continue
        # The outputs of one job share its hash: count the job once.
        key = (str(record.get("rule")), str(record.get("job_hash") or path.name))
        jobs[key] = (float(start), float(end))
    stages: dict[str, dict[str, float]] = {}
    for (rule, _), (start, end) in sorted(jobs.items(), key=lambda kv: kv[1][0]):
        entry = stages.setdefault(rule, {"jobs": 0, "wall_s": 0.0})
        entry["jobs"] += 1
        entry["wall_s"] += max(0.0, end - start)
    return stages


def staging_events(workdir: Path, since: float) -> list[InputEvent]:
    """Inputs made local in this run, from the provider's journal."""
    return [e for e in read_journal(workdir, since) if isinstance(e, InputEvent)]


def site_transfers(workdir: Path, since: float) -> list[SiteTransferEvent]:
    return [e for e in read_journal(workdir, since) if isinstance(e, SiteTransferEvent)]


def rucio_requests(run: Run) -> int:
    return len(request_counter.read_counts(run.requests_file))
