"""The workflow in local mode on simulated observations, checked against their truth.

Size: one subband of 12 HBA stations, 64 channels, an 8 h track of 60 s integrations per beam
(~125 MB each). 8 h because with 12 stations shorter tracks leave an elongated beam that costs
several per cent of flux; 60 s because the pipeline averages no further in time (beyond that,
time smearing costs flux off-centre); one subband because the checks need no more. One run
takes about 80 s on 2 cores.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from workflow_runs import REPO, SNAKEMAKE, run_snakemake, write_config

from lofar_datalake.pipeline import crossmatch, flagstats, solutions
from lofar_datalake.pipeline.catalogue import read_catalogue
from lofar_datalake.pipeline.qa import image_frequency
from lofar_datalake.simulate import truth
from lofar_datalake.simulate.observation import SimulationParams, simulate

SKIES = {
    # different fields, fluxes, gains, noise and RFI
    "sky-a": SimulationParams(seed=1, sky_seed=1),
    "sky-b": SimulationParams(
        seed=2, sky_seed=2, target_ra_deg=140.0, target_dec_deg=58.0, n_sources=10
    ),
}


@pytest.fixture(scope="module", params=sorted(SKIES))
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    params = SKIES[request.param]
    workdir = tmp_path_factory.mktemp(request.param)
    simulate(params, workdir / "data")
    config = write_config(workdir)
    run_snakemake(workdir, "--cores", "2", "--configfile", str(config))
    yield workdir, params
    shutil.rmtree(workdir / "work", ignore_errors=True)


def _subbands(workdir: Path) -> list[tuple[str, str]]:
    rows = (workdir / "data" / "observations.tsv").read_text().splitlines()[1:]
    return [(r.split("\t")[0], r.split("\t")[2]) for r in rows]


@pytest.mark.workflow
def test_flagging_finds_the_rfi(run) -> None:
    workdir, _ = run
    for obs, sb in _subbands(workdir):
        cube = flagstats.read_flags(str(workdir / "work" / "flagged" / f"{obs}_SB{sb}.MS"))
        rfi = truth.read_rfi(workdir / "data" / "truth", f"{obs}_SB{sb}_uv.MS")
        scores = flagstats.scores(cube.flags, rfi.mask)
        assert scores["recall"] >= 0.95, (obs, scores)
        assert scores["false_flag_fraction"] <= 0.03, (obs, scores)
        # the QA stage reports the same numbers
        qa = json.loads((workdir / f"results/{obs}/qa/{obs}_SB{sb}_flags.json").read_text())
        assert qa["recall"] == pytest.approx(scores["recall"])


@pytest.mark.workflow
def test_gain_solutions_match_the_true_gains(run) -> None:
    workdir, params = run
    g = truth.read_gains(workdir / "data" / "truth")
    cal = f"L{params.calibrator_obsid}"
    sol = solutions.read_h5parm(workdir / f"results/{cal}/calibration/{cal}_SB000.h5")
    scores = solutions.compare(sol, g.times, g.stations, g.gains)
    assert abs(scores["amplitude_ratio_median"] - 1) <= 0.03, scores
    assert scores["phase_rms_deg"] < 5, scores
    assert scores["solved_fraction"] > 0.9, scores


@pytest.mark.workflow
def test_sources_found_with_true_flux_and_position(run) -> None:
    workdir, params = run
    obs = f"L{params.target_obsid}"
    image = workdir / f"results/{obs}/image/{obs}-image.fits"
    cat = read_catalogue(workdir / f"results/{obs}/catalogue/{obs}.srl.csv")
    from astropy.io import fits

    with fits.open(workdir / f"results/{obs}/image/{obs}-residual.fits") as hdul:
        rms = crossmatch.image_rms(hdul[0].data)
    true = truth.read_target_sources(workdir / "data" / "truth")
    matches = crossmatch.crossmatch(
        true, np.asarray(cat["RA"]), np.asarray(cat["DEC"]), np.asarray(cat["Total_flux"]),
        image_frequency(image), radius_arcsec=10.0,
    )  # fmt: skip
    for m in matches:
        if m.true_flux_jy > 10 * rms:
            assert m.found, m
    for m in matches:
        if m.found:
            assert abs(m.flux_ratio - 1) <= 0.05, m
            assert m.separation_arcsec <= 2.0, m
    # nothing spurious: every catalogued source is a true one
    assert len(cat) == sum(m.found for m in matches)


@pytest.mark.workflow
def test_report_builds(run) -> None:
    workdir, _ = run
    report = workdir / "report.html"
    run_snakemake(workdir, "--configfile", str(workdir / "config.yaml"), "--report", str(report))
    assert report.stat().st_size > 10_000


@pytest.mark.workflow
def test_lint_is_clean() -> None:
    done = subprocess.run(
        [SNAKEMAKE, "--lint"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Congratulations, your workflow is in a good condition!" in done.stdout + done.stderr
