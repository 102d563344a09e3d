"""The target field's sky model from a survey, ready for the target's first phase calibration.

Phase-only self-calibration against the target's own first image keeps whatever shift the
target's ionosphere gave that image: to a phase solve a shift of the whole field is a phase
gradient across the stations like any other. LINC therefore calibrates the target's phases
against a survey (TGSS) first, which ties the field to the survey's astrometry; later rounds
against the target's own images keep it there.

The survey lists intrinsic fluxes; the target's data were corrected for the station beam
towards the phase centre only (when calibrated with the beam model), so each source is
predicted with the fraction of its flux the data keep (`beam_correction.beam_factors`). Only the
sources within the imaged field are kept (a survey file may cover more), in one patch: one
direction, so that DDECal makes a direction-independent solve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .beam_correction import beam_factors, phase_centre

# Sources the beam attenuates below this fraction barely constrain the solve.
MIN_BEAM_FACTOR = 0.02


class SurveyModelError(ValueError):
    """The survey's sky model cannot calibrate this field."""


@dataclass(frozen=True)
class FieldModel:
    """What went into a field's sky model: sources kept of those in the survey, and the beam
    factors applied to them (empty without the beam)."""

    kept: int
    listed: int
    beam_factors: tuple[float, ...]


def field_model(
    survey: Path, measurement_sets: list[Path], radius_deg: float, beam: bool, out: Path
) -> FieldModel:
    """Write to `out` the sources of `survey` (makesourcedb format) within `radius_deg` of the
    phase centre of `measurement_sets` (a target's subbands), with apparent fluxes if `beam`."""
    # Imported here only: lsmtool registers an astropy Table format whose identifier opens every
    # path a Table is written to, so a later Table.write() without format= fails.
    import lsmtool

    try:
        model = lsmtool.load(str(survey))
    except Exception as exc:  # lsmtool raises bare Exceptions and IOErrors for bad files
        raise SurveyModelError(f"{survey}: not a readable sky model ({exc})") from exc
    listed = len(model)
    ra, dec = phase_centre(measurement_sets[0])
    ra0, dec0 = math.degrees(ra) % 360.0, math.degrees(dec)
    distance = np.asarray(model.getDistance(ra0, dec0), dtype=float)
    if not np.any(distance <= radius_deg):
        raise SurveyModelError(
            f"none of the {listed} sources of {survey} lies within {radius_deg:.2f} deg of the "
            f"target's phase centre (RA {ra0:.4f}, Dec {dec0:.4f} deg): is it this field's?"
        )
    model.select(distance <= radius_deg)
    factors: tuple[float, ...] = ()
    if beam:
        kept_factors = beam_factors(
            measurement_sets,
            np.asarray(model.getColValues("Ra"), dtype=float),
            np.asarray(model.getColValues("Dec"), dtype=float),
        )
        model.setColValues("I", np.asarray(model.getColValues("I")) * kept_factors)
        visible = kept_factors >= MIN_BEAM_FACTOR
        if not np.all(visible):
            model.select(visible)
        factors = tuple(float(f) for f in kept_factors[visible])
    model.group("single", root="field")
    out.parent.mkdir(parents=True, exist_ok=True)
    model.write(str(out), clobber=True, addHistory=False)
    return FieldModel(len(model), listed, factors)
