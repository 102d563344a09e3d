"""Faults at the testbed's sites, with small workflows run the way a site's user runs them
(`lofar-datalake testbed exec <site> -- snakemake --profile profiles/testbed-<site>`):

- an HTCondor worker that cannot reach the storage endpoint of the best replica reads the next
  replica over https;
- a held HTCondor job fails the run, naming the job and HTCondor's hold reason, and leaves
  nothing in the queue;
- a Slurm job killed while it runs is submitted again and succeeds, and its input is not
  staged a second time.

About 2 min on 2 cores (the sites start once per module).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from datalake_core.journal import read_events
from lofar_datalake_testbed import orchestrator

pytestmark = [pytest.mark.timeout(600), pytest.mark.sites]

CLI = str(Path(sys.executable).with_name("lofar-datalake"))
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 300


def _exec(bed: orchestrator.Testbed, kind: str, run: Path, *args: str) -> list[str]:
    """`testbed exec <kind>`: Snakemake on the site's access point with the site's profile."""
    return [CLI, "testbed", "exec", kind, "--dir", str(bed.layout.root), "--cwd", str(run),
            "--", SNAKEMAKE, "-s", "Snakefile",
            "--profile", str(REPO / "profiles" / f"testbed-{kind}"), *args]


def _reading(did_name: str, output: str, shell: str) -> str:
    """A one-job workflow: `shell` turns the DataLake file lofar:<did_name> into `output`."""
    return (f'rule all:\n    input: "{output}"\n\n'
            f'rule read:\n    input: storage.datalake("datalake://lofar/{did_name}")\n'
            f'    output: "{output}"\n    shell: "{shell}"\n')


def _run_dir(site: Any, name: str, snakefile: str) -> Path:
    run = site.run_area() / f"{name}-{time.time_ns()}"
    run.mkdir(parents=True)
    (run / "Snakefile").write_text(snakefile)
    site.prepare_run_dir(run)
    return run


def test_a_worker_that_cannot_reach_the_best_replica_reads_the_next(
        testbed_session: orchestrator.Testbed, testbed_pool: Any, seed: Callable[..., Any],
        unique: str) -> None:
    name = f"{unique}/endpoint.dat"
    # The pool's own RSE is tried first; a second replica sits at SITE_B.
    first = seed([name], "SITE_HTCONDOR_DAV", size=4096)[0]
    seed([name], "SITE_B_DISK", data=first.data)
    run = _run_dir(testbed_pool, "endpoint", _reading(name, "copied.dat", "cp {input} {output}"))
    layout = testbed_session.layout
    dav = next(p for p in testbed_session.services() if p.name == "webdav-SITE_HTCONDOR_DAV")
    dav.stop()
    try:
        done = subprocess.run(_exec(testbed_session, "htcondor", run), capture_output=True,
                              text=True, timeout=RUN_TIMEOUT_S)
    finally:
        testbed_session.up()  # the endpoint back for the tests after this one
    log = done.stdout + done.stderr
    job_err = "\n".join(p.read_text() for p in (run / ".snakemake" / "htcondor").rglob("*.err"))
    assert done.returncode == 0, log[-4000:] + job_err[-4000:]
    assert (run / "copied.dat").read_bytes() == first.data
    reads = [e for e in read_events(run) if e["event"] == "input"]
    assert [(e["rse"], e["how"]) for e in reads] == [("SITE_B_DISK", "https from SITE_B_DISK")]
    port = layout.ports()["dav_SITE_HTCONDOR_DAV"]
    assert f"https://127.0.0.1:{port}" in job_err and "Connection refused" in job_err, job_err


def test_a_held_htcondor_job_fails_the_run_naming_the_job_and_the_reason(
        testbed_session: orchestrator.Testbed, testbed_pool: Any) -> None:
    run = _run_dir(testbed_pool, "held", """
rule all:
    input: "made.txt"

rule make:
    output: "made.txt"
    resources: htcondor_transfer_input_files="no-such-input.dat"
    shell: "echo made > {output}"
""")
    done = subprocess.run(_exec(testbed_session, "htcondor", run), capture_output=True,
                          text=True, timeout=RUN_TIMEOUT_S)
    log = done.stdout + done.stderr
    assert done.returncode != 0, log[-3000:]
    held = re.search(r"Job \d+ with HTCondor Cluster ID (\d+) is held: (.+)", log)
    assert held, log[-3000:]
    assert "Error in rule make" in log
    assert "no-such-input.dat" in held.group(2), held.group(2)
    # HTCondor's own record agrees. Executor 0.3.0 leaves the held job in the queue when it
    # fails the run (README, known limitations): the operator removes it.
    cluster = held.group(1)
    reasons = testbed_pool.hold_reasons(cluster)
    assert list(reasons) == [f"{cluster}.0"], reasons
    assert "no-such-input.dat" in reasons[f"{cluster}.0"]
    testbed_pool.pool.tool("condor_rm", cluster)
    testbed_pool.pool.wait_idle()


def test_a_slurm_job_killed_mid_run_is_rerun_without_staging_again(
        testbed_session: orchestrator.Testbed, testbed_cluster: Any, seed: Callable[..., Any],
        unique: str) -> None:
    name = f"{unique}/killed.dat"
    data = seed([name], "SITE_B_DISK", size=2048)[0].data
    run = _run_dir(testbed_cluster, "killed",
                   _reading(name, "counted.txt", "sleep 20; wc -c < {input} > {output}"))
    env = {**os.environ, **testbed_cluster.env()}
    proc = subprocess.Popen(_exec(testbed_session, "slurm", run), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        job = _first_running_job(env, deadline=time.monotonic() + 120)
        subprocess.run(["scancel", job], env=env, check=True, timeout=30)
        log, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, log[-4000:]
    assert (run / "counted.txt").read_text().strip() == str(len(data))
    states = {r["JobId"]: r["JobState"] for r in testbed_cluster.cluster().finished_jobs()}
    assert states[job] == "CANCELLED", states
    submitted = re.findall(r"submitted with SLURM jobid (\d+)", log)
    assert len(submitted) == 2 and submitted[0] == job, log[-3000:]
    assert states[submitted[1]] == "COMPLETED", states
    # One Rucio rule staged the input, once; for the second attempt it was linked again from
    # the site's replica, not copied.
    events = read_events(run)
    staged = [e for e in events if e["event"] == "site_transfer"]
    assert len(staged) == 1 and staged[0]["destination"] == "SITE_SLURM_DISK", staged
    reads = [e["how"] for e in events if e["event"] == "input"]
    assert reads and set(reads) == {"symlink from SITE_SLURM_DISK"}, reads


def _first_running_job(env: dict[str, str], deadline: float) -> str:
    while time.monotonic() < deadline:
        done = subprocess.run(["squeue", "-h", "-t", "R", "-o", "%i"], env=env,
                              capture_output=True, text=True, timeout=20)
        running = done.stdout.split()
        if running:
            time.sleep(3)  # well into the job's `sleep`
            return running[0]
        time.sleep(0.5)
    raise TimeoutError("no Slurm job started running")
