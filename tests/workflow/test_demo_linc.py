"""`lofar-datalake demo --linc` as a newcomer runs it from a checkout (a copy whose `.testbed` is
the session's DataLake): it simulates 8 subbands over 120–180 MHz through the station beam,
puts them into the DataLake, runs LINC's calibrator strategy at site A and prints the science
against the truth (fluxes corrected for the beam), which must meet LINC-grade targets."""

from __future__ import annotations

import ast
import re

import pytest
from test_readme_commands import _failure, _newcomer_env, _project, _run

from lofar_datalake_testbed.demo.pipeline import LINC_OBSIDS

pytestmark = [pytest.mark.workflow, pytest.mark.integration]


def _printed_scores(stdout: str, name: str) -> dict:
    [line] = [x for x in stdout.splitlines() if re.match(rf"\s+{re.escape(name)}: \{{", x)]
    return ast.literal_eval(line.split(": ", 1)[1])


def test_the_linc_demo_prints_clock_tec_flux_and_position_scores_that_meet_the_targets(
    testbed_session, tmp_path
) -> None:
    bed = testbed_session
    bed.up()
    project = _project(tmp_path / "project", bed, "products/unused-by-this-demo")
    done = _run(".venv/bin/lofar-datalake demo --linc", project, _newcomer_env(bed))
    assert done.returncode == 0, _failure(done)
    calibrator, target = (f"L{obsid}" for obsid in LINC_OBSIDS)
    transfer = _printed_scores(done.stdout, f"{calibrator}_transfer.json")
    assert transfer["meets_targets"] and transfer["stations_scored"] == 11, transfer
    assert transfer["clock_rms_ns"] <= 2.0 and transfer["tec_rms_tecu"] <= 0.05, transfer
    sources = _printed_scores(done.stdout, f"{target}_sources.json")
    assert sources["n_bright_found"] == sources["n_bright"] > 0, sources
    assert sources["max_flux_error"] <= 0.05 and sources["max_separation_arcsec"] <= 2.0, sources
    # the stage table: LINC's stages, the survey's model of the field and the beam correction
    for stage in ("transfer_solutions", "field_skymodel", "selfcal", "correct_fluxes"):
        assert re.search(rf"^\s+{stage}\s+\d+ job", done.stdout, re.MULTILINE), stage
