"""A plan run as a user runs it: an observation of three subbands per beam lies unevenly over
three sites' storage (SITE_A three files, SITE_B two, SITE_C one); `lofar-datalake plan` places
each subband's preprocessing where its data is and `lofar-datalake run --plan` runs each site's
preprocessing at that site, then calibration and imaging at the processing site. The chain's
record lists every run, the science is right against the simulation's truth, `lofar-datalake
compare --chain` finds the products equivalent to those of the whole chain run at one site on a
local copy of its raw inputs, and running the same chain again does nothing more.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from datalake_core.rucio_adapter import Did
from lofar_datalake.simulate.observation import SimulationParams, simulate
from lofar_datalake_testbed.demo import pipeline as demo_pipeline
from lofar_datalake_testbed.seed import seed

pytestmark = [pytest.mark.workflow, pytest.mark.integration, pytest.mark.timeout(2400)]

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PARAMS = SimulationParams(seed=13, sky_seed=13, calibrator_obsid=770000, target_obsid=770001,
                          n_subbands=3)
TARGET, CALIBRATOR = f"L{PARAMS.target_obsid}", f"L{PARAMS.calibrator_obsid}"
# Archives in name order (calibrator SB000-002, target SB000-002) and the RSE each goes to.
RSES = ("SITE_A_DISK",) * 3 + ("SITE_B_DISK",) * 2 + ("SITE_C_DAV",)
SITE_OF_RSE = {"SITE_A_DISK": "SITE_A", "SITE_B_DISK": "SITE_B", "SITE_C_DAV": "SITE_C"}
PROFILE_OF_SITE = {"SITE_A": "profiles/local", "SITE_B": "profiles/local-site-b",
                   "SITE_C": "profiles/local-site-c"}


def _when(value) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    return dt.datetime.strptime(value, "%a, %d %b %Y %H:%M:%S UTC")


def _sites_file(path: Path) -> Path:
    """The three sites; the data may not leave the RSE it is on (keep_at_site), so the plan
    preprocesses each subband where it lies, whatever the solver weighs."""
    rses = {site: rse for rse, site in SITE_OF_RSE.items()}
    path.write_text(yaml.safe_dump({
        "sites": {site: {"profile": PROFILE_OF_SITE[site], "rse": rses[site], "cores": 2,
                         "reads": sorted(set(rses.values()) - {rses[site]})}
                  for site in PROFILE_OF_SITE},
        "keep_at_site": sorted(SITE_OF_RSE),
        "stage_seconds": {"preprocess": 20.0, "process": 60.0},
        "time_limit_s": 20,
    }))
    return path


def _testbed_profile(testbed, path: Path) -> Path:
    """A profile holding only where the session's testbed is, for `plan` to reach its Rucio."""
    path.mkdir()
    args = demo_pipeline.testbed_args(testbed)
    (path / "config.yaml").write_text(yaml.safe_dump(
        {args[i].removeprefix("--"): args[i + 1] for i in range(0, len(args), 2)}))
    return path


def _cli(testbed, *args: str, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(BIN / "lofar-datalake"), *args], cwd=REPO, capture_output=True, text=True,
        env={**os.environ, **testbed.client_env()}, timeout=timeout)
    assert done.returncode == 0, f"{args[0]}: " + done.stdout[-4000:] + done.stderr[-4000:]
    return done


def test_a_plan_over_three_sites_runs_each_preprocessing_where_the_plan_put_it_and_compare_finds_it_equal_to_a_single_site_run(  # noqa: E501
        testbed, rucio, tmp_path):
    data = tmp_path / "data"
    simulate(PARAMS, data)
    placed = seed(testbed, data, rses=RSES)
    where = {f"{did.name[:7]}:{did.name[10:13]}": SITE_OF_RSE[rse] for did, rse in placed}
    config = demo_pipeline.write_demo_config(tmp_path, data, "products/unused", REPO)
    chain, out = f"products/placed-{time.time_ns()}", tmp_path / "chain"

    _cli(testbed, "plan", "--sites", str(_sites_file(tmp_path / "sites.yaml")),
         "--config", str(config), "--profile", str(_testbed_profile(testbed, tmp_path / "p")),
         "--out", str(tmp_path / "plan.json"))
    plan = json.loads((tmp_path / "plan.json").read_text())
    planned = {sb: s["name"] for s in plan["sites"] for sb in s["preprocess"]}
    assert planned == where  # each subband preprocessed where it lies
    run_args = ("run", "--plan", str(tmp_path / "plan.json"), "--configfile", str(config),
                "--chain", chain, "--out", str(out), "--", *demo_pipeline.testbed_args(testbed))
    shown = _cli(testbed, *run_args).stdout
    assert "predicted" in shown and "makespan" in shown

    record = json.loads((out / "chain.json").read_text())
    process_site = plan["processing_site"]
    assert [(r["site"], r["stage"]) for r in record["runs"]] == [
        ("SITE_A", "preprocess"), ("SITE_B", "preprocess"), ("SITE_C", "preprocess"),
        (process_site, "process")]
    assert record["complete"] and all(r["exit_code"] == 0 for r in record["runs"])
    preprocessed = f"{chain}/preprocessed"
    for run in record["runs"]:
        manifest = json.loads(Path(run["provenance"]["path"]).read_text())
        assert manifest["run"]["storage"]["site_rse"] == run["rse"], run["site"]
        if run["stage"] == "preprocess":
            flags = sorted(p.name for p in Path(run["directory"]).glob("results/*/qa/*_flags.*"))
            mine = [sb for sb, site in planned.items() if site == run["site"]]
            assert sorted(run["subbands"]) == sorted(mine)
            assert {f[:13] for f in flags} == {f"{sb[:7]}_SB{sb[8:]}" for sb in mine}
            names = [f"{preprocessed}/{sb[:7]}_SB{sb[8:]}.MS.tar" for sb in mine]
            for replica in rucio.list_replicas([Did("lofar", n) for n in names]):
                assert replica["states"].get(run["rse"]) == "AVAILABLE", replica
    assert set(rucio.list_files("lofar", f"{preprocessed}/*")) == {
        d.partition(":")[2] for d in record["preprocessed"]}
    # Released once the chain succeeded: this account's rules on them were deleted (Rucio's
    # soft deletion: each expires within the hour).
    soon = dt.datetime.utcnow() + dt.timedelta(seconds=3600 + 60)
    for name in record["preprocessed"]:
        for rule in rucio.list_did_rules(Did(*name.split(":", 1))):
            if rule["account"] == rucio.account:
                assert rule["expires_at"] is not None and _when(rule["expires_at"]) <= soon, rule
    assert f"lofar:{chain}/process/{TARGET}/image/{TARGET}-image.fits" in record["products"]
    # One manifest for the whole chain, in the DataLake next to its products.
    assert f"{chain}/provenance.json" in set(rucio.list_files("lofar", f"{chain}/provenance.json"))
    stored_manifest = json.loads((out / "provenance.json").read_text())
    assert [r["provenance"] for r in stored_manifest["runs"]] == [
        r["provenance"]["did"] for r in record["runs"]]
    actual = record["actual"]
    assert actual["makespan_s"] > 0 and actual["raw_bytes_moved"] == 0  # all read in place
    made_elsewhere = [sb for sb, site in planned.items() if site != process_site]
    assert (actual["product_bytes_moved"] > 0) == bool(made_elsewhere)

    results = out / "results"
    scores = json.loads((results / TARGET / "qa" / f"{TARGET}_sources.json").read_text())
    assert scores["n_bright_found"] == scores["n_bright"] > 0  # against the simulation's truth
    assert abs(scores["median_flux_ratio"] - 1) < 0.1

    compared = tmp_path / "compare"
    shown = _cli(testbed, "compare", "--chain", str(out), "--out", str(compared), "--",
                 *demo_pipeline.testbed_args(testbed)).stdout  # exit 0: equivalent
    assert "==> EQUIVALENT" in shown, shown[-4000:]
    verdict = json.loads((compared / "verdict.json").read_text())
    assert verdict["equivalent"] is True
    assert [(r["site"], r["stage"]) for r in verdict["chain"]["runs"]] == [
        (r["site"], r["stage"]) for r in record["runs"]]
    assert verdict["runs"]["datalake"]["wall_s"] == actual["makespan_s"]
    assert verdict["runs"]["datalake"]["staging"]["bytes"] == actual["bytes_moved"]
    assert verdict["runs"]["local"]["copy"]["files"] == len(record["inputs"]) == len(RSES)
    assert verdict["runs"]["local"]["requests"]["rucio"] == 0  # the local side reads its copy
    local_config = yaml.safe_load((compared / "local" / "config.yaml").read_text())
    assert local_config["placement"]["stage"] == "all"
    methods = {p["path"]: p["method"] for p in verdict["products"]}
    assert methods[f"{TARGET}/image/{TARGET}-image.fits"] == "fits-image"
    assert methods[f"{CALIBRATOR}/qa/{CALIBRATOR}_SB002_flags.json"] == "json-numeric"
    report = (compared / "report.html").read_text()
    assert "DataLake side: a chain across 3 sites" in report
    assert "SITE_A, SITE_B, SITE_C" in report

    _cli(testbed, *run_args)  # the same chain again: every run finds its outputs
    again = json.loads((out / "chain.json").read_text())
    for run in again["runs"]:
        assert "Nothing to be done" in Path(run["log"]).read_text(), run["log"]
    assert len(again["invocations"]) == 2
    assert again["actual"]["bytes_moved"] == actual["bytes_moved"]

    # The chain teaches the next plan: its runs' benchmark records give the stage costs and
    # their wall times each stage's fixed overhead (start-up, staging, storing).
    _cli(testbed, "plan", "--sites", str(tmp_path / "sites.yaml"), "--config", str(config),
         "--profile", str(tmp_path / "p"), "--runs", str(out),
         "--out", str(tmp_path / "replan.json"))
    costs = json.loads((tmp_path / "replan.json").read_text())["costs"]
    assert costs["source"].startswith("benchmark records of 4 run(s)")
    assert costs["overhead_source"] == ("preprocess: median of 3 run(s) of 1 chain(s); "
                                        "process: median of 1 run(s) of 1 chain(s)")
    assert costs["run_overhead_s"]["preprocess"] > 0 and costs["run_overhead_s"]["process"] > 0
