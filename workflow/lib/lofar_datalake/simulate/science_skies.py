"""The simulated skies the science of LOFAR's calibrator strategy is measured on (the workflow
tests and bench/bench_science.py): two fields, each with its own corruptions."""

from __future__ import annotations

from .observation import SimulationParams, linc_params

LINC_SKIES: dict[str, SimulationParams] = {
    "sky-a": linc_params(seed=1, sky_seed=1),
    "sky-b": linc_params(
        seed=2,
        sky_seed=2,
        target_ra_deg=140.0,
        target_dec_deg=58.0,
        n_sources=10,
        clock_rms_ns=20.0,
    ),
}
