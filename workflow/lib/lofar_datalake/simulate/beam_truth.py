"""The station beam's truth (`truth.BeamResponse`): how much of its flux each target source keeps
through the beam, and the radius at which the beam falls to half power.

Both are Stokes I responses of EveryBeam's beam (`station_beam`): a station's power
0.5 tr(E E^H), or a baseline's 0.5 Re tr(E_p E_q^H), taken relative to the phase centre.
"""

from __future__ import annotations

import math

import numpy as np

from . import truth
from .sky import Source, offset_position
from .station_beam import StationBeam, itrf_directions


def power(jones: np.ndarray) -> np.ndarray:
    """Stokes I power response 0.5 tr(E E^H) of stacked Jones matrices."""
    return 0.5 * np.sum(np.abs(jones) ** 2, axis=(-2, -1))


def half_power_radius_deg(beam: StationBeam, freq: float, pointing: tuple[float, float],
                          n_angles: int = 8, max_deg: float = 6.0) -> float:  # fmt: skip
    """Radius (deg) at which a station's Stokes I power falls to half its phase-centre value, at
    the middle of the track and `freq`: the mean over `n_angles` position angles and all
    stations."""
    mid = beam.times[len(beam.times) // 2 : len(beam.times) // 2 + 1]
    centre = itrf_directions(mid, *pointing)[0]
    step = 0.05
    radii = np.arange(0.0, max_deg + step / 2, step)
    found = []
    for angle in np.arange(n_angles) * 2 * np.pi / n_angles:
        rel = []
        for r in np.radians(radii):
            ra, dec = offset_position(*pointing, r * math.sin(angle), r * math.cos(angle))
            towards = itrf_directions(mid, ra, dec)[0]
            rel.append(power(beam.response(mid[0], np.array([freq]), towards, centre))[:, 0])
        rel_power = np.array(rel) / rel[0]  # (nradius, nant)
        for p in range(rel_power.shape[1]):
            below = int(np.argmax(rel_power[:, p] < 0.5))
            if below == 0:
                raise ValueError(f"the beam stays above half power out to {max_deg} deg")
            x0, x1 = rel_power[below - 1, p], rel_power[below, p]
            found.append(radii[below - 1] + (x0 - 0.5) / (x0 - x1) * step)
    return float(np.mean(found))


def baseline_response(jones: np.ndarray, a1: np.ndarray, a2: np.ndarray) -> np.ndarray:
    """R_pq = Re tr(E_p E_q^H) / 2 of (..., nant, 2, 2) Jones matrices, for the pairs a1, a2."""
    products = jones[..., a1, :, :] * np.conj(jones[..., a2, :, :])
    return 0.5 * np.real(np.sum(products, axis=(-2, -1)))


def beam_response(beam: StationBeam, targets: list[Source], pointing: tuple[float, float],
                  freqs: np.ndarray, ref_freq_hz: float) -> truth.BeamResponse:  # fmt: skip
    """The station beam's effect on each of `targets` at `freqs` (the subband centres), as
    `truth.BeamResponse` defines it."""
    a1, a2 = np.triu_indices(len(beam.stations), 1)

    def response(ra: float, dec: float) -> np.ndarray:  # (ntime, nfreq, npair)
        return baseline_response(np.moveaxis(beam.grid(freqs, ra, dec, pointing), 1, 2), a1, a2)

    centre = response(*pointing)
    attenuation = np.empty((len(targets), len(freqs)))
    for i, s in enumerate(targets):
        ratio = response(math.radians(s.ra_deg), math.radians(s.dec_deg)) / centre
        attenuation[i] = ratio.mean(axis=(0, 2))
    return truth.BeamResponse(
        [s.name for s in targets], np.asarray(freqs, dtype=float), attenuation,
        centre.mean(axis=(0, 2)), half_power_radius_deg(beam, ref_freq_hz, pointing), ref_freq_hz,
    )  # fmt: skip
