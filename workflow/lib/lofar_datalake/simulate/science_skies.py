"""The simulated skies the science of LOFAR's calibrator strategy is measured on (the workflow
tests, `lofar-datalake demo --linc` and bench/bench_science.py): two fields, each with its own
corruptions, seen through the station beam out to its half-power radius, and the workflow
settings they are processed with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .observation import SURVEY_SKYMODEL, SimulationParams, linc_params

# Sources out to 2.0 deg: the station beam's half-power radius at the band's centre is 2.03 deg
# (150 MHz; 2.53 at 120 MHz, 1.69 at 180 MHz), where it keeps half of a source's flux.
_WIDE: dict[str, Any] = {"station_beam": True, "field_radius_deg": 2.0, "min_separation_deg": 0.2}

LINC_SKIES: dict[str, SimulationParams] = {
    "sky-a": linc_params(seed=1, sky_seed=1, n_sources=12, **_WIDE),
    "sky-b": linc_params(
        seed=2,
        sky_seed=2,
        target_ra_deg=140.0,
        target_dec_deg=58.0,
        n_sources=10,
        clock_rms_ns=20.0,
        **_WIDE,
    ),
}


def linc_settings(data: Path) -> dict[str, dict[str, Any]]:
    """Config sections (to merge into config/config.yaml's) for a LINC sky simulated into `data`:
    LINC's strategy with the beam model, the first self-calibration round against the field's
    survey, and one image of the whole field (2048 pixels of 7.5 arcsec: 2.1 deg either side,
    ~2.7 pixels across the 20 arcsec beam) with 0.6 of the w-layers WSClean suggests. On sky-a,
    by hand: fluxes within 3 % either way at 63 s an image; WSClean's w-gridder gave the same
    at 85 s, and a third of the w-layers lost up to 5 % of the flux 1.7 deg out."""
    selfcal = {"rounds": 2, "solint": 1, "nchan": 0, "skymodel": str(data / SURVEY_SKYMODEL)}
    return {
        "calibration": {
            "skymodel": str(data / "calibrator.skymodel"), "strategy": "linc", "nchan": 1,
            "usebeammodel": True, "selfcal": selfcal,
        },
        "imaging": {"size": 2048, "scale_arcsec": 7.5, "extra_args": ["-nwlayers-factor", "0.6"]},
    }  # fmt: skip


def with_linc_settings(config: dict[str, Any], data: Path) -> dict[str, Any]:
    """`config` (config/config.yaml's contents) with `linc_settings(data)` merged in."""
    for section, values in linc_settings(data).items():
        config[section] = {**config[section], **values}
    return config
