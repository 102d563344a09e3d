"""How well a target's first self-calibration round followed its own ionosphere, against the
simulation's truth (the workflow tests and bench/bench_science.py).

The calibrator's dTEC reaches the target through the transferred solutions; what its own
direction adds (truth `TARGET_TEC`) only the target's phase solve can find. Each station's
constant part is left aside: a survey's position errors add one of their own (a small phase
gradient across the array, which is what anchors the field's astrometry to the survey's).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..simulate import truth
from ..simulate.frequency_gains import TEC_PHASE
from .solutions import soltab_values, station_names


@dataclass(frozen=True)
class PhaseSolve:
    times: np.ndarray  # (ntime,) MJD s
    freqs: np.ndarray  # (nfreq,) Hz
    stations: list[str]
    phase: np.ndarray  # (ntime, nfreq, nant) rad; NaN where not solved


@dataclass(frozen=True)
class Tracking:
    error_rms_rad: float  # solved minus true drift, each station's constant part removed
    drift_rms_rad: float  # the true drift the solve had to follow
    solved_fraction: float


def read_phases(h5parm: Path) -> PhaseSolve:
    """The phases of a DDECal scalarphase solve (one direction)."""
    import h5py

    with h5py.File(h5parm, "r") as h5:
        soltab = h5["sol000"]["phase000"]
        values, axes = soltab_values(soltab)
        order = [axes.index(a) for a in ("time", "freq", "ant")]
        values = np.moveaxis(values, order, [0, 1, 2])
        values = values.reshape(*values.shape[:3], -1)[..., 0]
        return PhaseSolve(np.asarray(soltab["time"]), np.asarray(soltab["freq"]),
                          station_names(soltab), values)  # fmt: skip


def _wrap(phase: np.ndarray) -> np.ndarray:
    return np.angle(np.exp(1j * phase))


def ionosphere_tracking(h5parm: Path, truth_dir: Path) -> Tracking | None:
    """How the phases of `h5parm` (a first self-calibration round) follow the target's own
    drifting TEC; None if the simulation gave the target none."""
    target = truth.read_tec(truth_dir, truth.TARGET_TEC)
    if target is None:
        return None
    solve = read_phases(h5parm)
    tec = truth.tec_on(truth_dir, solve.stations, solve.times, truth.TARGET_TEC)
    assert tec is not None
    expected = TEC_PHASE * tec[:, None, :] / solve.freqs[None, :, None]  # (time, freq, ant)
    reference = solve.stations.index(target.reference)
    solved = solve.phase - solve.phase[:, :, [reference]]
    error = _wrap(solved - expected)
    constant = np.angle(np.nanmean(np.exp(1j * error), axis=0))  # (freq, ant)
    error = _wrap(error - constant[None])
    drift = expected - expected.mean(axis=0)
    return Tracking(
        float(np.sqrt(np.nanmean(error**2))),
        float(np.sqrt(np.mean(drift**2))),
        float(np.isfinite(error).mean()),
    )
