"""DataLake mode on the testbed's volunteered sites, verified by `compare`: `lofar-datalake
compare --demo --fresh-observation --profile profiles/testbed-<site>` runs a new simulated
observation once from the DataLake and once from a local copy at that site, through its batch
system, and must find the products EQUIVALENT, with the science right against the simulation's
truth.

- HTCondor pool (no shared file system): every job reads its inputs from the DataLake on the
  worker (https, adler32 verified) and stores its products from there; HTCondor transfers no
  DataLake input; jobs hold a Rucio token, never the password.
- Slurm cluster (shared file system): the inputs are staged to SITE_SLURM_DISK by Rucio rules,
  every job runs in its stage image with the site's storage bound in.

While the runs go on, what anyone on the machine could read is sampled (process lists, the
batch systems' job queues) and searched for the account's password and the jobs' token
afterwards, together with the job records (condor_history, Slurm's saved job environments),
logs, journals, products and provenance. About 4 min for each site on 2 cores.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import site_compare as sc  # shared by the site tests (same test directory)
from secret_search import Sampler, files_containing, process_args

from datalake_core.job_credential import DEFAULT_PATH
from datalake_core.journal import read_events
from lofar_datalake_testbed import htcondor_chroot, orchestrator
from lofar_datalake_testbed.rucio_config import credentials

pytestmark = [pytest.mark.timeout(1500), pytest.mark.sites]

COMPARE_TIMEOUT_S = 1200


def _secrets(bed: orchestrator.Testbed, run: Path) -> dict[str, str]:
    """The account's password and the token its jobs were given."""
    credential = json.loads((run / DEFAULT_PATH).read_text())
    return {"password": credentials(bed.layout).lofar_password, "token": credential["token"]}


def _check_verdict(result: sc.Compared, executor: str, rse: str) -> dict[str, Any]:
    assert result.code == 0, (
        f"compare exited {result.code}:\n{result.output[-5000:]}\n"
        f"{sc.logs_of(result.out / 'datalake')}\n{sc.logs_of(result.out / 'local')}")
    assert result.verdict["equivalent"] is True
    assert result.verdict["products"] and all(p["equivalent"] for p in result.verdict["products"])
    assert "==> EQUIVALENT" in result.output
    at_site = result.verdict["site"]["datalake"]
    assert at_site["executor"] == executor and at_site["rse"] == rse
    assert at_site["jobs"], "the report names where each job ran"
    sc.check_science(result.out / "datalake", result.data())
    return at_site


def test_compare_through_the_htcondor_pool_in_datalake_mode(
        testbed_session: orchestrator.Testbed, testbed_pool: Any, rucio: Any) -> None:
    out = testbed_pool.run_area() / "compare-test"
    queue = ("condor_q", "-allusers", "-l")
    probes = {"ps": process_args, "condor_q": lambda: testbed_pool.pool.tool(*queue).stdout}
    with Sampler(probes) as sampled:
        result = sc.compare_at("testbed-htcondor", out, testbed_session.layout.root,
                               COMPARE_TIMEOUT_S)
    at_site = _check_verdict(result, "htcondor", "SITE_HTCONDOR_DAV")
    assert not at_site["images"], "the pool runs the shared software, no containers"

    # Every job ran as the pool's job account in its scratch sandbox, not in the run directory.
    for job in at_site["jobs"]:
        assert job["user"] == htcondor_chroot.EXECUTE_USER[0], job
        assert "/execute/dir_" in job["sandbox"], job
    run = out / "datalake"
    events = read_events(run)
    inputs = [e for e in events if e["event"] == "input"]
    # Read on the workers (their journals came back with the jobs), over https, verified.
    assert inputs and all("-job-" in e["run"] for e in inputs), inputs
    assert all(e["how"].startswith("https from") and e["adler32"] for e in inputs), inputs
    outputs = [e for e in events if e["event"] == "output"]
    assert outputs and all("-job-" in e["run"] and e["rse"] == "SITE_HTCONDOR_DAV"
                           for e in outputs), outputs
    # All products of the run, stored by its jobs, under the submitting run's one dataset.
    assert len({e["dataset"] for e in outputs}) == 1, outputs
    for event in outputs:
        scope, name = event["did"].split(":", 1)
        replicas = list(rucio.client.list_replicas([{"scope": scope, "name": name}]))
        assert "SITE_HTCONDOR_DAV" in replicas[0]["rses"], event

    # HTCondor moved no DataLake file: no job's input transfer names one.
    history = testbed_pool.pool.finished_jobs(["TransferInput", "Cmd"])
    assert history
    for job in history:
        transferred = str(job.get("TransferInput", ""))
        assert ".MS.tar" not in transferred and ".snakemake/storage" not in transferred, job

    # Neither the password nor the jobs' token anywhere they could be read.
    records = testbed_pool.pool.tool("condor_history", "-l").stdout
    credential_files = (run / DEFAULT_PATH,)
    for name, secret in _secrets(testbed_session, run).items():
        assert sampled.containing(secret) == [], name
        assert secret not in records, name
        assert files_containing(secret, [out, testbed_pool.pool.root / "log",
                                            testbed_pool.pool.root / "spool"],
                                   skip=credential_files) == [], name
        assert secret not in result.output, name


def test_compare_through_slurm_in_containers_in_datalake_mode(
        testbed_session: orchestrator.Testbed, testbed_cluster: Any,
        stage_images: dict[str, Path]) -> None:
    out = testbed_cluster.run_area() / "compare-test"
    password = credentials(testbed_session.layout).lofar_password
    spool = testbed_cluster.root / "state"
    probes = {"ps": process_args,
              # Slurm keeps each queued job's script and environment in its state directory.
              "slurm-state": lambda: "\n".join(
                  p.read_text(errors="replace") for p in spool.rglob("*") if p.is_file())}
    with Sampler(probes, every=0.3) as sampled:
        # The password the documented way, in the environment: the submitting Snakemake must
        # keep it from the jobs Slurm records.
        result = sc.compare_at("testbed-slurm", out, testbed_session.layout.root,
                               COMPARE_TIMEOUT_S,
                               env={"SNAKEMAKE_STORAGE_DATALAKE_PASSWORD": password})
    at_site = _check_verdict(result, "slurm", "SITE_SLURM_DISK")
    assert {i["family"] for i in at_site["images"]} == {"python", "dp3", "wsclean", "pybdsf"}
    assert all(i["digest"] for i in at_site["images"]), at_site["images"]
    assert all(j["state"] == "COMPLETED" and j["node"] == "localhost"
               for j in at_site["jobs"]), at_site["jobs"]

    run = out / "datalake"
    # The tools that ran were the images' (the host has DP3 in the project's venv only).
    flag_logs = list((run / "logs" / "flag").glob("*.log"))
    assert flag_logs and all("$ /opt/venv/bin/DP3.py " in f.read_text() for f in flag_logs)
    events = read_events(run)
    staged = [e for e in events if e["event"] == "site_transfer"]
    assert staged and all(e["policy"] == "rule" and e["destination"] == "SITE_SLURM_DISK"
                          for e in staged), staged
    assert any(e["event"] == "output" and e["rse"] == "SITE_SLURM_DISK" for e in events)
    assert sampled.seen.get("slurm-state"), "the sampler saw Slurm's saved jobs"
    for name, secret in _secrets(testbed_session, run).items():
        assert sampled.containing(secret) == [], name
        assert files_containing(secret, [out, testbed_cluster.root],
                                   skip=(run / DEFAULT_PATH,)) == [], name
        assert secret not in result.output, name
