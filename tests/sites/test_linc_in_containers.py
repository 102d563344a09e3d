"""LOFAR's calibrator strategy with the station beam, every rule in its stage image.

sky-a of the LINC skies (8 subbands over 120-180 MHz, the beam out to its half-power radius),
processed as `linc_settings` says with `--software-deployment-method apptainer` and the images
built from workflow/containers/*.def (tests/sites/conftest.py: `stage_images`, run through the
Podman launcher): the rules LINC adds (transfer_solutions, field_skymodel, selfcal,
correct_fluxes) run in the images that hold EveryBeam and lsmtool, and the science meets the
same targets as on the host. About 6 minutes.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

# The workflow tests' helpers (tests/workflow is on the path only when pytest collects it).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))
from workflow_runs import run_snakemake, write_config

from lofar_datalake.pipeline.qa import bright_matches
from lofar_datalake.simulate.observation import simulate
from lofar_datalake.simulate.science_skies import LINC_SKIES, with_linc_settings

pytestmark = [pytest.mark.sites, pytest.mark.timeout(1800)]
# Each rule LINC adds, and the image family its container must be.
LINC_RULES = {"transfer_solutions": "python", "field_skymodel": "python", "selfcal": "dp3",
              "correct_fluxes": "python"}  # fmt: skip


def test_the_linc_chain_with_the_beam_runs_in_the_stage_images(
    stage_images: dict[str, Path], launcher_env: dict[str, str], tmp_path: Path
) -> None:
    params = LINC_SKIES["sky-a"]
    simulate(params, tmp_path / "data")
    config = write_config(tmp_path, keep_intermediate=False)
    settings = with_linc_settings(yaml.safe_load(config.read_text()), Path("data"))
    settings["containers"] = {family: str(image) for family, image in stage_images.items()}
    config.write_text(yaml.safe_dump(settings, sort_keys=False))
    run_snakemake(
        tmp_path, "--configfile", str(config), "--cores", "2",
        "--software-deployment-method", "apptainer",
        timeout=1500, env={**os.environ, **launcher_env},
    )  # fmt: skip

    log = Path(launcher_env["APPTAINER_TEST_LAUNCHER_LOG"])
    execs = [json.loads(line) for line in log.read_text().splitlines()]
    for rule, family in LINC_RULES.items():
        ran = [e for e in execs if f".{rule}.py" in " ".join(e["command"])]
        assert ran and all(e["image"] == str(stage_images[family]) for e in ran), rule
        assert all(e["returncode"] == 0 for e in ran), rule

    cal, obs = f"L{params.calibrator_obsid}", f"L{params.target_obsid}"
    transfer = json.loads((tmp_path / f"results/{cal}/qa/{cal}_transfer.json").read_text())
    assert transfer["truth"] and transfer["meets_targets"], transfer
    bright = bright_matches(
        tmp_path / f"results/{obs}/image/{obs}-image.fits",
        tmp_path / f"results/{obs}/catalogue/{obs}.pbcor.srl.csv",
        tmp_path / "data" / "truth",
    )
    assert len(bright) == params.n_sources
    for m in bright:
        assert m.found and m.separation_arcsec <= 2.0 and abs(m.flux_ratio - 1) <= 0.05, m
