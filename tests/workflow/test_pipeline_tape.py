"""The demo pipeline on an observation whose only replicas are on tape, as `lofar-datalake demo
--from-tape` runs it: the workflow at SITE_A (policy rule, greedy scheduler) has Rucio recall
the subbands from LTA_TAPE straight to SITE_A (FTS brings each online, copies it, releases its
pin), the products land in the DataLake with the science right against the simulation's truth,
and no file is left pinned on the tape.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from datalake_core.journal import read_events
from datalake_core.rucio_adapter import Did
from lofar_datalake.simulate.observation import SimulationParams, simulate
from lofar_datalake_testbed.demo import pipeline as demo_pipeline
from lofar_datalake_testbed.layout import TAPE_RSE
from lofar_datalake_testbed.seed import seed
from lofar_datalake_testbed.servers import tape

pytestmark = [pytest.mark.workflow, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
PARAMS = SimulationParams(seed=7, sky_seed=7, calibrator_obsid=750000, target_obsid=750001)
TARGET = f"L{PARAMS.target_obsid}"


def test_the_pipeline_runs_on_an_observation_recalled_from_tape(testbed, rucio, tmp_path):
    data = tmp_path / "data"
    simulate(PARAMS, data)
    placed = seed(testbed, data, rses=[TAPE_RSE])
    inputs = [did for did, _ in placed]
    assert {r for _, r in placed} == {TAPE_RSE}
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    products = f"products/tape-{time.time_ns()}"
    config = demo_pipeline.write_demo_config(run_dir, data, products, REPO)

    done = subprocess.run(
        [SNAKEMAKE, "--profile", "profiles/local", "--directory", str(run_dir), "--configfile",
         str(config), "--scheduler", "greedy", *demo_pipeline.testbed_args(testbed)],
        cwd=REPO, env={**os.environ, **testbed.client_env()}, capture_output=True, text=True,
        timeout=1200)

    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "ilp scheduler" not in done.stderr  # run with the greedy one: no advice
    stored = set(rucio.list_files("lofar", f"{products}/*"))
    assert f"{products}/{TARGET}/image/{TARGET}-image.fits" in stored
    scores = json.loads((run_dir / "results" / TARGET / "qa" / f"{TARGET}_sources.json")
                        .read_text())
    assert scores["n_bright_found"] == scores["n_bright"] > 0  # against the simulation's truth
    assert abs(scores["median_flux_ratio"] - 1) < 0.1
    # Recalled through Rucio straight to the site; FTS released each pin once it had copied.
    recalls = [e for e in read_events(run_dir) if e["event"] == "recall"]
    online = sorted(f for e in recalls if e["action"] == "online" for f in e["files"])
    assert online == sorted(str(d) for d in inputs)
    assert all(e["tape_rse"] == TAPE_RSE and e["staging_rse"] == "SITE_A_DISK" for e in recalls)
    dids = [Did(d.scope, d.name) for d in inputs]
    for replica in rucio.list_replicas(dids):
        assert replica["states"].get("SITE_A_DISK") == "AVAILABLE"
    assert _pinned(testbed, rucio, dids) == [], "pins outlived the run"


def _pinned(testbed, rucio, dids: list[Did]) -> list[str]:
    """The inputs an unexpired pin still holds online on the tape."""
    from rucio.rse import rsemanager

    pfns = rsemanager.lfns2pfns(rucio.rse_info(TAPE_RSE),
                                [{"scope": d.scope, "name": d.name} for d in dids],
                                operation="read", scheme="https")
    root = testbed.layout.rse_dir(TAPE_RSE)
    return [did for did, url in pfns.items()
            if tape.state(root, str(url).split("/", 3)[3]) == tape.ONLINE]
