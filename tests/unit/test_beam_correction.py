"""Fluxes corrected for the station beam source by source: the pipeline's factors (EveryBeam on
the target's own Measurement Set) against the simulation's truth, and the parsets that put the
beam into the calibration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.table import Table

from lofar_datalake.pipeline import parsets
from lofar_datalake.pipeline.beam_correction import beam_factors, correct_catalogue
from lofar_datalake.simulate import truth


def test_each_sources_factor_is_the_attenuation_the_simulation_gave_it(beam_field) -> None:
    out, ms = beam_field
    sources = truth.read_target_sources(out / "truth")
    response = truth.read_beam_response(out / "truth")
    assert response is not None
    ra, dec = np.array([s.ra_deg for s in sources]), np.array([s.dec_deg for s in sources])
    factors = beam_factors([ms], ra, dec)  # one subband: the spectrum does not matter
    assert np.allclose(factors, response.band_attenuation, rtol=5e-3), factors
    assert factors.min() < 0.6 and np.ptp(factors) > 0.05  # far out, and each its own


def test_a_catalogue_gets_its_true_fluxes_back(beam_field, tmp_path: Path) -> None:
    out, ms = beam_field
    sources = truth.read_target_sources(out / "truth")
    response = truth.read_beam_response(out / "truth")
    assert response is not None
    true = np.array([s.flux_jy for s in sources])
    apparent = true * response.band_attenuation
    catalogue = tmp_path / "apparent.csv"
    columns = {"RA": [s.ra_deg for s in sources], "DEC": [s.dec_deg for s in sources]}
    Table(columns | {"Total_flux": apparent, "Peak_flux": apparent}).write(catalogue, format="csv")
    corrected = correct_catalogue(catalogue, [ms], tmp_path / "corrected.csv")
    assert np.allclose(corrected["Total_flux"], true, rtol=5e-3)
    assert np.allclose(corrected["Total_flux_apparent"], apparent)
    written = Table.read(tmp_path / "corrected.csv", format="csv")
    assert np.allclose(written["Beam_factor"], response.band_attenuation, rtol=5e-3)


def test_an_empty_catalogue_stays_empty(beam_field, tmp_path: Path) -> None:
    _, ms = beam_field
    catalogue = tmp_path / "none.csv"
    Table(names=["RA", "DEC", "Total_flux"], dtype=[float] * 3).write(catalogue, format="csv")
    assert len(correct_catalogue(catalogue, [ms], tmp_path / "out.csv")) == 0


def test_the_target_is_corrected_for_the_beam_at_its_centre_and_self_calibrates_without_it(
) -> None:  # fmt: skip
    apply = parsets.applycal_parset(Path("in.MS"), Path("out.MS"), Path("t.h5"), beam=True)
    assert apply["steps"] == ["apply", "beam"] and apply["beam.type"] == "applybeam"
    assert parsets.applycal_parset(Path("in.MS"), Path("o.MS"), Path("t.h5"))["steps"] == ["apply"]
    settings = {"usebeammodel": True, "selfcal": {"solint": 1}}
    assert parsets.calibrate_parset(Path("c.MS"), Path("c.h5"), Path("m"), settings)[
        "cal.usebeammodel"]  # fmt: skip
    # the target's data no longer carry the beam at the centre: DDECal must not apply it again
    assert not parsets.selfcal_parset(Path("t.MS"), Path("s.h5"), Path("m"), settings)[
        "cal.usebeammodel"]  # fmt: skip
