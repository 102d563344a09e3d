"""The workflow through Slurm, in containers, with a profile derived from the site template
profiles/slurm-site.

A one-node Slurm cluster (Debian's slurm-wlm + munge, `lofar_datalake.testbed.slurm`) runs in a
private network namespace; Snakemake's Slurm executor submits every pipeline job to it, and
each job runs its rule in the stage image its `container:` names, through Snakemake's own
Apptainer code: the template's `software-deployment-method: apptainer` is kept, `apptainer`
being the Podman test launcher (lofar_datalake/testbed/launchers) and the images sandboxes
built from workflow/containers/*.def (tests/sites/conftest.py). The observation is the small
simulated one of the local workflow test, in local input mode; the template's DataLake storage
keys are dropped. The module takes about 4-5 minutes on 2 cores, plus the image builds on a
new machine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import site_run  # shared by the site tests (same test directory)
import yaml

from lofar_datalake.simulate.observation import simulate
from lofar_datalake.testbed.slurm import SYSTEM_CONF, SlurmCluster

pytestmark = pytest.mark.timeout(1200)

REPO = site_run.REPO
SNAKEMAKE = site_run.SNAKEMAKE
TEMPLATE = REPO / "profiles" / "slurm-site" / "config.yaml"
PARTITION = "debug"  # the test cluster's only partition
# A healthy run takes ~2 min; a status command that never sees jobs finish must not hang the
# suite, so Snakemake is stopped (and cancels its Slurm jobs) well before pytest's timeout.
SNAKEMAKE_TIMEOUT_S = 600
PARAMS = site_run.PARAMS

# Programs the cluster and its clients need (Debian: slurm-wlm, munge, util-linux, iproute2).
REQUIRED = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "nsenter", "ip")
APPTAINER_KEYS = site_run.APPTAINER_KEYS
# The template binds /cvmfs, which this machine lacks (a missing bind source is an error);
# the test binds the observation's directory read-only instead, as a site binds its storage.
# Never an empty string: Snakemake 9.27 then drops the value from the jobs' command line and
# the next argument becomes the apptainer arguments.


def _require_slurm() -> None:
    site_run.require(REQUIRED, "the one-node Slurm cluster (Debian's slurm-wlm and munge)")
    if SYSTEM_CONF.exists() and not SYSTEM_CONF.is_symlink():
        pytest.skip(f"{SYSTEM_CONF} is a real Slurm installation's; the test cluster needs it")
    if SYSTEM_CONF.exists():
        # Checked here: a failed up() is followed by down(), which would take the namespace
        # from under the other cluster.
        other = SYSTEM_CONF.resolve().parent
        pytest.fail(
            f"another test cluster is up ({other}); stop it: python -c 'from pathlib import "
            f"Path; from lofar_datalake.testbed.slurm import SlurmCluster; "
            f'SlurmCluster(Path("{other}")).down()\''
        )


def _netns_inode(name: str) -> int | None:
    try:
        return os.stat(f"/run/netns/{name}").st_ino
    except FileNotFoundError:
        return None


def _processes_in_netns(inode: int) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if os.stat(f"/proc/{proc.pid}/ns/net").st_ino == inode:
                found.append(proc)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return found


def _processes_using(root: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if any(str(root) in arg for arg in proc.info["cmdline"] or []):
            found.append(proc)
    return found


def _describe(proc: psutil.Process) -> str:
    try:
        return f"{proc.pid} {' '.join(proc.cmdline())}"
    except psutil.Error:
        return f"{proc.pid} (gone)"


@pytest.fixture(scope="module")
def cluster() -> Iterator[SlurmCluster]:
    _require_slurm()
    # Not under pytest's tmp dir: munged runs as its own user and must reach its socket.
    root = Path(tempfile.mkdtemp(prefix="lofar-slurm-site-"))
    slurm = SlurmCluster(root)
    try:
        slurm.up()
        yield slurm
    finally:
        inode = _netns_inode(slurm.netns)
        slurm.down()
        left = (_processes_in_netns(inode) if inode else []) + _processes_using(root)
        shutil.rmtree(root, ignore_errors=True)
    assert not left, f"still running after down: {[_describe(p) for p in left]}"
    assert _netns_inode(slurm.netns) is None, f"network namespace {slurm.netns} left behind"
    assert not SYSTEM_CONF.is_symlink(), f"{SYSTEM_CONF} link left behind"


def site_profile(template: Path, directory: Path, apptainer_args: str = "--bind /tmp") -> Path:
    """The template with the DataLake keys removed, the site's binds and the test partition
    set, and status checks tuned for seconds-long jobs."""
    profile: dict[str, Any] = yaml.safe_load(template.read_text())
    # What any Slurm site needs; without these the template would mislead every site copying it.
    assert profile.get("executor") == "slurm", "template must select the Slurm executor"
    assert profile.get("slurm-status-command"), "template must set slurm-status-command"
    resources = profile.get("default-resources")
    assert isinstance(resources, dict) and resources.get("slurm_partition"), (
        "template must set default-resources with slurm_partition"
    )
    assert profile.get("software-deployment-method") == "apptainer", "template runs containers"
    assert set(APPTAINER_KEYS) <= set(profile), "template must say where images and binds are"
    for key in list(profile):
        if key.startswith("storage-datalake-") or key == "default-storage-provider":
            del profile[key]
    profile["apptainer-args"] = apptainer_args
    profile["default-resources"] = {**resources, "slurm_partition": PARTITION}
    profile |= {
        # The executor checks I s after a check that saw a job finish and adds 10 s to every
        # wait that saw none: checks come I, 2I+10, 3I+30 s after a finish. Jobs here take
        # 11-22 s (half of it Snakemake starting inside the job); I=7 catches them at 24 s,
        # where 1 would wait for the check at 33 s.
        # (Snakemake's --seconds-between-status-checks has no effect: the executor sets them.)
        "slurm-init-seconds-before-status-checks": 7,
        "retries": 0,  # a failure fails the test at once
    }
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return directory


def test_template_has_what_a_slurm_site_needs(tmp_path: Path) -> None:
    profile = yaml.safe_load((site_profile(TEMPLATE, tmp_path) / "config.yaml").read_text())
    assert profile["software-deployment-method"] == "apptainer"
    assert not [k for k in profile if k.startswith("storage-datalake-")]
    assert profile["default-resources"]["slurm_partition"] == PARTITION


def _job_logs(workdir: Path, chars: int = 1500) -> str:
    """The end of every Slurm job's own log and of every rule's log, to see why a job failed."""
    logs = sorted((workdir / ".snakemake" / "slurm_logs").rglob("*.log"))
    logs += sorted((workdir / "logs").rglob("*.log"))
    return "\n".join(f"--- {p.relative_to(workdir)}:\n{p.read_text()[-chars:]}" for p in logs)


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="lofar-slurm-run-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.sites
def test_pipeline_runs_through_slurm_in_containers(
    cluster: SlurmCluster,
    workdir: Path,
    stage_images: dict[str, Path],
    launcher_env: dict[str, str],
    record_property: Any,
) -> None:
    simulate(PARAMS, workdir / "data")
    config = site_run.write_config(workdir, stage_images)
    data = workdir / "data"
    profile = site_profile(TEMPLATE, workdir / "profile", f"--bind {data}:{data}:ro")
    cmd = [
        *cluster.exec_prefix(),
        # SIGTERM first: Snakemake then cancels its Slurm jobs before exiting.
        "timeout", "-k", "30", str(SNAKEMAKE_TIMEOUT_S),
        SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
        "--profile", str(profile), "--configfile", str(config),
    ]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=SNAKEMAKE_TIMEOUT_S + 60,
        # The session points SLURM_CONF at an unreachable dummy; this run needs the cluster's.
        env={**os.environ, **cluster.env(), **launcher_env},
    )
    elapsed = time.monotonic() - started
    record_property("snakemake_slurm_seconds", round(elapsed, 1))
    print(f"\nsnakemake through Slurm: {elapsed:.0f} s")
    log = done.stdout + done.stderr
    assert done.returncode == 0, (
        f"snakemake exited {done.returncode} after {elapsed:.0f} s:\n{log[-5000:]}\n"
        f"slurmctld.log:\n{(cluster.root / 'slurmctld.log').read_text()[-2000:]}\n"
        f"job logs:\n{_job_logs(workdir)}\n"
        f"containers:\n{Path(launcher_env['APPTAINER_TEST_LAUNCHER_LOG']).read_text()[-3000:]}"
    )

    site_run.check_products_and_sources(workdir)

    # Slurm's own records: one COMPLETED job per pipeline job Snakemake submitted, named by
    # the run's UUID.
    run_id = re.search(r"SLURM run ID: (\S+)", log)
    assert run_id, log[-3000:]
    submitted = site_run.submitted_jobs(log, r"has been submitted with SLURM jobid (\d+)")
    cluster.wait_idle()
    records = cluster.finished_jobs()
    assert sorted(r["JobId"] for r in records) == sorted(submitted), records
    assert [r for r in records if r["JobState"] != "COMPLETED"] == []
    assert {r["Name"] for r in records} == {run_id.group(1)}

    # Every Slurm job ran its rule in a container of the image its rule names, and the tools
    # were the image's (the host has DP3 in the project's venv, not in /opt/venv).
    runs = [json.loads(line) for line in Path(launcher_env["APPTAINER_TEST_LAUNCHER_LOG"]).open()]
    assert len(runs) == len(submitted) and all(r["returncode"] == 0 for r in runs), runs
    assert {r["image"] for r in runs} == {str(p) for p in stage_images.values()}
    for log_file in (workdir / "logs" / "flag").glob("*.log"):
        assert "$ /opt/venv/bin/DP3.py " in log_file.read_text(), log_file
