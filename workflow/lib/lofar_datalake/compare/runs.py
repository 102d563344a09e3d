"""Running a Snakemake workflow for a comparison, and reading back what the run did: wall time,
per-rule job times (Snakemake's own metadata records), staging (the provider's journal) and
the Rucio requests made (counted by the request counter), summed up as the verdict's record of
the run; of one run, or of several run directories that together are one side (a chain)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datalake_core import request_counter
from datalake_core.journal import InputEvent, SiteTransferEvent, read_journal
from datalake_core.rucio_adapter import DataLakeError, RucioAdapter
from snakemake_storage_plugin_datalake import snakemake_internals as internals

from . import accounting
from .verdict import Bar, Requests, RunSummary, Stage, Staging

if TYPE_CHECKING:
    from .at_site import SiteRuns

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
# Where Snakemake looks for the workflow when none is named.
SNAKEFILES = ("Snakefile", "snakefile", "workflow/Snakefile", "workflow/snakefile")


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


def names_snakefile(args: Sequence[str]) -> bool:
    return any(a in ("-s", "--snakefile") or a.startswith("--snakefile=") for a in args)


def snakefile_in(directory: Path) -> Path | None:
    """The Snakefile Snakemake started in `directory` would find."""
    return next((directory / n for n in SNAKEFILES if (directory / n).is_file()), None)


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


def describe(run: Run, rucio: Callable[[], RucioAdapter] | None) -> RunSummary:
    """What `run` did in this comparison (nothing to read when it never started)."""
    if not run.started:
        return summarise(run, [], 0.0, rucio, requests=None)
    return summarise(run, [run.workdir], run.started, rucio, requests=rucio_requests(run))


def summarise(run: Run, workdirs: Sequence[Path], since: float,
              rucio: Callable[[], RucioAdapter] | None, requests: int | None) -> RunSummary:
    """The record of `run` from the journals and job records of `workdirs` since `since`:
    its staging, bytes moved and per-rule times summed over them."""
    events = [e for w in workdirs for e in staging_events(w, since)]
    transfers = [t for w in workdirs for t in site_transfers(w, since)]
    try:
        moved = accounting.moved_bytes(events, transfers, rucio)
    except DataLakeError as exc:
        moved = {"bytes": None, "bytes_source": f"Rucio records not readable: {exc}"}
    starts = [e.began for e in events] + [t.start for t in transfers]
    ends = [e.time for e in events] + [t.time for t in transfers]
    stages: dict[str, Stage] = {}
    for workdir in workdirs:
        for rule, s in stage_times(workdir, since).items():
            seen = stages.get(rule, Stage())
            stages[rule] = Stage(seen.jobs + int(s["jobs"]), seen.wall_s + s["wall_s"])
    return RunSummary(
        label=run.label,
        workdir=str(run.workdir),
        exit_code=run.exit_code,
        log=str(run.log) if run.log else None,
        wall_s=round(run.wall_s, 2),
        stages=stages,
        staging=Staging(
            wall_s=round(max(ends) - min(starts), 2) if starts else 0.0,
            files=len(events),
            bytes=moved.get("bytes"),
            bytes_source=moved.get("bytes_source"),
            events=_site_bars(transfers) + _input_bars(events),
        ),
        requests=Requests(rucio=requests, fts_jobs=moved.get("fts_jobs"),
                          rucio_rules=moved.get("rucio_rules")),
    )


def _site_bars(transfers: list[SiteTransferEvent]) -> list[Bar]:
    """Rules and FTS jobs bringing files to the site, as bars of the staging timeline."""
    bars = []
    for t in transfers:
        way = "Rucio rule (conveyor + FTS)" if t.policy == "rule" else "FTS jobs"
        bars.append(Bar(f"{t.policy} to {t.destination}", t.start, t.time, t.bytes,
                        f"{way}, {len(t.files)} files", is_input=False))
    return bars


def _input_bars(events: list[InputEvent]) -> list[Bar]:
    """Each input made local, as a bar of the staging timeline."""
    return [Bar(e.did, e.began, e.time, e.bytes, str(e.how), e.rse) for e in events]
