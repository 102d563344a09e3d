"""The target field as a survey lists it (simulator), and the field's sky model the pipeline makes
of such a survey for the target's first phase calibration."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from astropy.coordinates import SkyCoord

from lofar_datalake.pipeline.survey_model import SurveyModelError, field_model
from lofar_datalake.simulate import truth
from lofar_datalake.simulate.observation import SURVEY_SKYMODEL
from lofar_datalake.simulate.sky import Source, as_surveyed, random_field, write_skymodel


def _read_model(path: Path) -> list[tuple[str, float, float, float]]:
    import lsmtool

    model = lsmtool.load(str(path))
    return list(
        zip(
            model.getColValues("Name"),
            model.getColValues("Ra"),
            model.getColValues("Dec"),
            model.getColValues("I"),
            strict=True,
        )
    )


def test_a_survey_lists_the_sky_with_its_errors_and_leaves_the_sky_alone() -> None:
    sky = random_field(5, 131.25, 52.0, 400, 2.0, (0.25, 2.5), 0.01, 150e6)
    surveyed = as_surveyed(sky, seed=5, position_error_arcsec=1.5, flux_error=0.1)
    assert surveyed == as_surveyed(sky, seed=5, position_error_arcsec=1.5, flux_error=0.1)
    assert sky == random_field(5, 131.25, 52.0, 400, 2.0, (0.25, 2.5), 0.01, 150e6)
    pairs = list(zip(surveyed, sky, strict=True))
    dra = [(s.ra_deg - t.ra_deg) * math.cos(math.radians(t.dec_deg)) for s, t in pairs]
    ddec = [s.dec_deg - t.dec_deg for s, t in pairs]
    assert np.std(dra) * 3600 == pytest.approx(1.5, rel=0.15)
    assert np.std(ddec) * 3600 == pytest.approx(1.5, rel=0.15)
    ratio = np.array([s.flux_jy / t.flux_jy for s, t in zip(surveyed, sky, strict=True)])
    assert np.std(ratio) == pytest.approx(0.1, rel=0.15) and abs(np.mean(ratio) - 1) < 0.02
    assert [s.spectral_index for s in surveyed] == [t.spectral_index for t in sky]


def test_the_simulator_writes_the_fields_survey(beam_field) -> None:
    out, _ = beam_field
    listed = _read_model(out / SURVEY_SKYMODEL)
    sources = truth.read_target_sources(out / "truth")
    assert [row[0] for row in listed] == [s.name for s in sources]
    for (_, ra, dec, flux), s in zip(listed, sources, strict=True):
        offset = math.hypot((ra - s.ra_deg) * math.cos(math.radians(dec)), dec - s.dec_deg)
        assert 0 < offset * 3600 < 6 and 0.6 < flux / s.flux_jy < 1.4


def test_the_field_model_carries_the_flux_the_beam_leaves_in_the_data(beam_field, tmp_path) -> None:
    """...in one patch: one direction, so that DDECal's solve is direction-independent."""
    import lsmtool

    out, ms = beam_field
    survey = out / SURVEY_SKYMODEL
    model = field_model(survey, [ms], radius_deg=3.0, beam=True, out=tmp_path / "field.skymodel")
    response = truth.read_beam_response(out / "truth")
    assert response is not None and model.kept == model.listed == 3
    written = _read_model(tmp_path / "field.skymodel")
    listed = _read_model(survey)
    apparent = [w[3] / s[3] for w, s in zip(written, listed, strict=True)]
    assert np.allclose(apparent, response.band_attenuation, rtol=0.01), apparent
    assert min(apparent) < 0.6  # the beam was there to be applied
    assert len(set(lsmtool.load(str(tmp_path / "field.skymodel")).getColValues("Patch"))) == 1
    plain = field_model(survey, [ms], radius_deg=3.0, beam=False, out=tmp_path / "plain.skymodel")
    assert plain.beam_factors == ()
    assert [w[3] for w in _read_model(tmp_path / "plain.skymodel")] == [s[3] for s in listed]


def test_only_the_sources_in_the_imaged_field_are_kept(beam_field, tmp_path: Path) -> None:
    out, ms = beam_field
    sources = truth.read_target_sources(out / "truth")
    simulated = json.loads((out / "truth" / truth.PARAMETERS).read_text())
    centre = SkyCoord(simulated["target_ra_deg"], simulated["target_dec_deg"], unit="deg")
    distance = [centre.separation(SkyCoord(s.ra_deg, s.dec_deg, unit="deg")).deg for s in sources]
    nearest, second = np.argsort(distance)[:2]
    radius = (distance[nearest] + distance[second]) / 2
    elsewhere = Source("FAR", 200.0, 30.0, 5.0, -0.8, 150e6)
    survey = tmp_path / "survey.skymodel"
    write_skymodel(survey, [*sources, elsewhere])
    model = field_model(survey, [ms], radius, beam=False, out=tmp_path / "field.skymodel")
    assert (model.kept, model.listed) == (1, 4)
    assert [row[0] for row in _read_model(tmp_path / "field.skymodel")] == [sources[nearest].name]


def test_a_survey_of_another_field_or_no_survey_at_all_is_a_clear_error(
    beam_field, tmp_path: Path
) -> None:
    _, ms = beam_field
    other = tmp_path / "other.skymodel"
    write_skymodel(other, [Source("FAR", 200.0, 30.0, 5.0, -0.8, 150e6)])
    with pytest.raises(SurveyModelError, match=r"none of the 1 sources .* is it this field's"):
        field_model(other, [ms], 2.0, beam=False, out=tmp_path / "a.skymodel")
    garbage = tmp_path / "garbage.skymodel"
    garbage.write_text("this is not a sky model\n")
    with pytest.raises(SurveyModelError, match="not a readable sky model"):
        field_model(garbage, [ms], 2.0, beam=False, out=tmp_path / "b.skymodel")
    assert not (tmp_path / "a.skymodel").exists() and not (tmp_path / "b.skymodel").exists()
