"""The workflow through HTCondor with a profile derived from the site template
profiles/htcondor-site, without a shared file system.

A personal HTCondor pool (Debian 13's HTCondor in a cached chroot, `lofar_datalake.testbed.
htcondor`) runs every pipeline job in HTCondor's scratch sandbox, as an account that cannot read
the submit directory: inputs and outputs travel by HTCondor file transfer, as at a grid site.
Only software is shared (the checkout, its venv and Python, read-only, like CVMFS). Snakemake
runs as the pool's submitter on its access point (the chroot). The observation is the small
simulated one of the Slurm site test, in local input mode; the template's Apptainer and
DataLake storage keys are dropped as there. Measured on 2 cores: building the chroot ~65 s
(debootstrap + apt; cached afterwards), pool start ~2 s, simulation ~5 s, the run ~2 min: the
module takes ~3.2 min on a new machine, ~2.2 min with the chroot cached.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import site_run  # shared by the site tests (same test directory)
import yaml

from lofar_datalake.simulate.observation import simulate
from lofar_datalake.testbed import htcondor_chroot
from lofar_datalake.testbed.htcondor import HTCondorPool
from lofar_datalake.testbed.processes import tail

pytestmark = pytest.mark.timeout(900)

REPO = site_run.REPO
SNAKEMAKE = site_run.SNAKEMAKE
PARAMS = site_run.PARAMS
TEMPLATE = REPO / "profiles" / "htcondor-site" / "config.yaml"
WRAPPER = REPO / "profiles" / "htcondor-site" / "job-wrapper.sh"
# A healthy run takes ~2 min; a status check that never sees jobs finish must not hang the suite.
SNAKEMAKE_TIMEOUT_S = 480
STORAGE_KEYS = ("default-storage-provider",)
# Read by every job while Snakemake parses the workflow; no rule declares them as inputs.
UNDECLARED_INPUTS = "data/observations.tsv,data/truth"
# Seconds per phase, for the report (printed with -s, recorded as test properties).
TIMINGS: dict[str, float] = {}
JOB_LINE = re.compile(r"lofar-datalake job: host=\S+ user=(\S+) sandbox=(\S+)")


def _software() -> tuple[Path, ...]:
    """What the workers get read-only: the checkout, the venv, the Python it was made from."""
    return (REPO, Path(sys.prefix), Path(sys.base_prefix).resolve())


def _job_output(workdir: Path, lines: int = 20) -> str:
    """The end of every HTCondor job's stdout and stderr (what a failed job said)."""
    files = sorted((workdir / ".snakemake" / "htcondor").glob("*/*.[oe][ur][tr]"))
    return "\n".join(f"--- {f.name}:\n{tail(f, lines)}" for f in files)


def _require_pool() -> None:
    needed = ("chroot", "mount", "umount", "timeout")
    if not htcondor_chroot.is_complete(htcondor_chroot.chroot_path()):
        needed += ("debootstrap",)
    site_run.require(needed, "the personal HTCondor pool (chroot, bind mounts, daemons)")


@pytest.fixture(scope="module")
def pool() -> Iterator[HTCondorPool]:
    _require_pool()
    started = time.monotonic()
    chroot, TIMINGS["chroot_build_seconds"] = htcondor_chroot.ensure()
    # Not under pytest's tmp dir (0700): the daemons and the pool's accounts traverse it.
    root = Path(tempfile.mkdtemp(prefix="lofar-htcondor-site-"))
    htc = HTCondorPool(root, chroot, software=_software())
    try:
        htc.check_free()  # before up(): a failed up() is followed by down()
    except RuntimeError as err:
        shutil.rmtree(root)
        pytest.fail(str(err))
    try:
        up = time.monotonic()
        htc.up()
        TIMINGS["pool_up_seconds"] = time.monotonic() - up
        yield htc
    finally:
        killed = htc.down()
        left = htcondor_chroot.processes_in(chroot)
        mounts = htcondor_chroot.mounts_under(chroot)
        if not mounts:
            htcondor_chroot.remove_tree(root)
        print(f"\nHTCondor pool: {time.monotonic() - started:.0f} s with teardown; {TIMINGS}")
    # down() stops the daemons with a fast shutdown; anything it had to kill is a leftover.
    assert not killed, f"killed at down: {killed}"
    assert not left, f"still running in the chroot after down: {left}"
    assert not mounts, f"still mounted after down: {mounts}"
    assert not (chroot / str(root).lstrip("/")).exists(), "mount point left in the chroot"


def site_profile(template: Path, directory: Path) -> Path:
    """The template with what this machine lacks (Apptainer, the DataLake) removed, the
    software paths of this checkout and the simulation's undeclared inputs set."""
    profile: dict[str, Any] = yaml.safe_load(template.read_text())
    # What any HTCondor site without a shared file system needs.
    assert profile.get("executor") == "htcondor", "template must select the HTCondor executor"
    assert profile.get("shared-fs-usage") == "none", "template must say: no shared file system"
    prefixes = str(profile.get("htcondor-shared-fs-prefixes", "")).split(",")
    assert any(p.startswith("/") for p in prefixes), "template must name the shared software"
    assert ".." in prefixes, "template must keep the rules' script paths from being transferred"
    assert "keep_intermediate=True" in profile.get("config", []), (
        "template must keep intermediates (the executor transfers no temp() output)"
    )
    resources = profile.get("default-resources")
    assert isinstance(resources, dict), "template must set default-resources"
    wanted = ("job_wrapper", "environment", "htcondor_transfer_input_files")
    for key in (*wanted, "htcondor_transfer_output_files"):
        assert resources.get(key), f"template must set default-resources: {key}"
    for key in list(profile):
        if key in site_run.APPTAINER_KEYS or key in STORAGE_KEYS:
            del profile[key]
        elif key.startswith("storage-datalake-"):
            del profile[key]
    profile["default-resources"] = {
        **resources,
        "job_wrapper": str(WRAPPER),
        "environment": f"LOFAR_DATALAKE_VENV={sys.prefix}",
        "htcondor_transfer_input_files": UNDECLARED_INPUTS,
    }
    profile |= {
        # This checkout's software in place of the template's (CVMFS) paths.
        "htcondor-shared-fs-prefixes": ",".join(
            [*(str(p) for p in _software()), *(p for p in prefixes if not p.startswith("/"))]
        ),
        "seconds-between-status-checks": 2,  # jobs take seconds; Snakemake's default is 10
        "htcondor-held-timeout": 0,  # a held job fails the test at once
        "retries": 0,
    }
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return directory


def test_template_has_what_an_htcondor_site_needs(tmp_path: Path) -> None:
    profile = yaml.safe_load((site_profile(TEMPLATE, tmp_path) / "config.yaml").read_text())
    assert not set(site_run.APPTAINER_KEYS) & set(profile)
    assert not [k for k in profile if k.startswith("storage-datalake-") or k in STORAGE_KEYS]
    assert profile["default-resources"]["job_wrapper"] == str(WRAPPER)
    assert os.access(WRAPPER, os.X_OK), "the job wrapper must be executable"


@pytest.mark.sites
def test_pipeline_runs_through_htcondor(pool: HTCondorPool, record_property: Any) -> None:
    workdir = pool.submit_dir("run")
    started = time.monotonic()
    simulate(PARAMS, workdir / "data")
    TIMINGS["simulate_seconds"] = time.monotonic() - started
    config = site_run.write_config(workdir)
    profile = site_profile(TEMPLATE, workdir / "profile")
    pool.give(workdir)
    cmd = [
        # SIGTERM first: Snakemake then removes its HTCondor jobs before exiting.
        "timeout", "-k", "30", str(SNAKEMAKE_TIMEOUT_S), *pool.exec_prefix(cwd=workdir),
        # Run in the run's directory, not with --directory: Snakemake would pass that path on
        # and every job would change into it (absent on a real worker, private here).
        SNAKEMAKE, "-s", str(REPO / "Snakefile"),
        "--profile", str(profile), "--configfile", str(config),
    ]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=SNAKEMAKE_TIMEOUT_S + 60)
    elapsed = time.monotonic() - started
    TIMINGS["snakemake_seconds"] = elapsed
    for name, seconds in TIMINGS.items():
        record_property(f"htcondor_{name}", round(seconds, 1))
    log = done.stdout + done.stderr
    assert done.returncode == 0, (
        f"snakemake exited {done.returncode} after {elapsed:.0f} s:\n{log[-5000:]}\n"
        f"{_job_output(workdir)}\n{pool.logs()}"
    )

    site_run.check_products_and_sources(workdir)

    # HTCondor's own records: one completed job (exit code 0) per pipeline job Snakemake
    # submitted.
    submitted = site_run.submitted_jobs(log, r"submitted to HTCondor Cluster ID (\d+)")
    pool.wait_idle()
    records = pool.finished_jobs(["TransferInput", "Cmd"])
    assert sorted(str(r["ClusterId"]) for r in records) == sorted(submitted), records
    failed = [r for r in records if r["JobStatus"] != 4 or r["ExitCode"] != 0 or r["ExitBySignal"]]
    assert failed == [], failed
    assert {r["Owner"] for r in records} == {htcondor_chroot.SUBMITTER[0]}
    assert {r["Cmd"] for r in records} == {str(WRAPPER)}
    assert {r["Iwd"] for r in records} == {str(workdir)}  # the submit side's directory
    # Data travelled by file transfer: every job received the run's config that way ...
    assert all("config.yaml" in str(r["TransferInput"]).split(",") for r in records), records

    # ... and ran in a sandbox of its own, as an account that cannot enter the run directory.
    mode = workdir.stat()
    assert stat.S_IMODE(mode.st_mode) == 0o700 and mode.st_uid == htcondor_chroot.SUBMITTER[1]
    outs = sorted((workdir / ".snakemake" / "htcondor").glob("*/*.out"))
    assert len(outs) == len(submitted), outs
    for out in outs:
        found = JOB_LINE.search(out.read_text())
        assert found, f"{out}: no wrapper line"
        user, sandbox = found.groups()
        assert user == htcondor_chroot.EXECUTE_USER[0], out
        assert Path(sandbox).parent == pool.execute_dir, (out, sandbox)
    assert not any(pool.execute_dir.iterdir()), "sandboxes left behind"
