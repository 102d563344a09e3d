"""One observation's chain split across sites, as `lofar-datalake run --plan` runs it: half the
subbands preprocessed at SITE_A (`profiles/local`), the other half at SITE_B
(`profiles/local-site-b`), each packed averaged subband stored in the DataLake under the chain's
`placement.preprocessed`; then calibration and imaging at SITE_A from those files alone. The
image and catalogue are stored, the science is right against the simulation's truth, and the
products are equivalent to those of the whole chain run at one site.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from datalake_core.rucio_adapter import Did
from lofar_datalake.compare.equivalence import compare_trees
from lofar_datalake.compare.rules import load_rules
from lofar_datalake.placement.chain import assemble_results
from lofar_datalake.simulate.observation import SimulationParams, simulate
from lofar_datalake_testbed.demo import pipeline as demo_pipeline
from lofar_datalake_testbed.seed import seed

pytestmark = [pytest.mark.workflow, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
PARAMS = SimulationParams(seed=11, sky_seed=11, calibrator_obsid=760000, target_obsid=760001,
                          n_subbands=2)
TARGET, CALIBRATOR = f"L{PARAMS.target_obsid}", f"L{PARAMS.calibrator_obsid}"
SUBBANDS = [(obs, sb) for obs in (CALIBRATOR, TARGET) for sb in ("000", "001")]
AT_SITE_A = [f"{obs}:000" for obs in (CALIBRATOR, TARGET)]
AT_SITE_B = [f"{obs}:001" for obs in (CALIBRATOR, TARGET)]


def _run(testbed, root: Path, data: Path, name: str, profile: str, products: str,
         placement: dict) -> Path:
    """One Snakemake run of the chain in root/name; its directory."""
    run_dir = root / name
    run_dir.mkdir()
    config_file = demo_pipeline.write_demo_config(run_dir, data, products, REPO)
    config = yaml.safe_load(config_file.read_text())
    config["placement"] = placement
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    done = subprocess.run(
        [SNAKEMAKE, "--profile", profile, "--directory", str(run_dir), "--configfile",
         str(config_file), *demo_pipeline.testbed_args(testbed)],
        cwd=REPO, env={**os.environ, **testbed.client_env()}, capture_output=True, text=True,
        timeout=1800)
    assert done.returncode == 0, f"{name}: " + done.stdout[-4000:] + done.stderr[-4000:]
    return run_dir


def test_a_chain_preprocessed_at_two_sites_and_processed_at_one_equals_a_single_site_run(
        testbed, rucio, tmp_path):
    data = tmp_path / "data"
    simulate(PARAMS, data)
    seed(testbed, data, rses=("SITE_B_DISK", "SITE_C_DAV"))
    chain = f"products/split-{time.time_ns()}"
    preprocessed = f"{chain}/preprocessed"

    def placement(stage: str, subbands: list[str] | None = None) -> dict:
        return {"stage": stage, "subbands": subbands or [], "preprocessed": preprocessed}

    site_a = _run(testbed, tmp_path, data, "preprocess-a", "profiles/local", f"{chain}/pre-a",
                  placement("preprocess", AT_SITE_A))
    site_b = _run(testbed, tmp_path, data, "preprocess-b", "profiles/local-site-b",
                  f"{chain}/pre-b", placement("preprocess", AT_SITE_B))
    process = _run(testbed, tmp_path, data, "process", "profiles/local", f"{chain}/process",
                   placement("process"))
    single = _run(testbed, tmp_path, data, "single", "profiles/local", f"{chain}/single",
                  placement("all"))

    # Each site stored its own subbands, packed, where the process run found them.
    packed = {f"{preprocessed}/{obs}_SB{sb}.MS.tar" for obs, sb in SUBBANDS}
    assert set(rucio.list_files("lofar", f"{preprocessed}/*")) == packed
    for replica in rucio.list_replicas([Did("lofar", name) for name in sorted(packed)]):
        site = "SITE_A_DISK" if "_SB000." in replica["name"] else "SITE_B_DISK"
        assert replica["states"].get(site) == "AVAILABLE", replica
    manifest = json.loads((process / "results" / "provenance.json").read_text())
    assert {i["did"] for i in manifest["inputs"]} == {f"lofar:{name}" for name in packed}
    for step in ("fetch", "flag", "average", "qa_flags"):
        assert not (process / "logs" / step).exists(), f"the process run ran {step}"
    assert not (site_a / "logs" / "calibrate").exists()

    stored = set(rucio.list_files("lofar", f"{chain}/process/*"))
    for product in (f"{TARGET}/image/{TARGET}-image.fits", f"{TARGET}/catalogue/{TARGET}.srl.fits",
                    f"{CALIBRATOR}/calibration/{CALIBRATOR}_SB001.h5", "provenance.json"):
        assert f"{chain}/process/{product}" in stored
    scores = json.loads((process / "results" / TARGET / "qa" / f"{TARGET}_sources.json")
                        .read_text())
    assert scores["n_bright_found"] == scores["n_bright"] > 0  # against the simulation's truth
    assert abs(scores["median_flux_ratio"] - 1) < 0.1

    results = compare_trees(single / "results",
                            assemble_results(tmp_path / "chain-results", process,
                                             [site_a, site_b]),
                            load_rules())
    differing = [(r.path, r.summary) for r in results if not r.equivalent]
    assert differing == []
    compared = {r.path: r.method for r in results}
    assert compared[f"{TARGET}/image/{TARGET}-image.fits"] == "fits-image"
    assert compared[f"{TARGET}/catalogue/{TARGET}.srl.fits"] == "catalogue"
    assert compared[f"{CALIBRATOR}/qa/{CALIBRATOR}_SB001_flags.json"] == "json-numeric"
    for run_dir in (site_a, site_b, process, single):
        shutil.rmtree(run_dir / "work", ignore_errors=True)
