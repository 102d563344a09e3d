"""Gain solutions from a DP3 h5parm, and their agreement with known gains."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Solutions:
    times: np.ndarray  # (ntime,) MJD s
    freqs: np.ndarray
    stations: list[str]
    gains: np.ndarray  # (ntime, nfreq, nant, 2) complex, XX and YY; NaN where not solved


def soltab_values(group: object) -> tuple[np.ndarray, list[str]]:
    """A soltab's values (NaN where its weight is 0) and the names of their axes."""
    val = np.asarray(group["val"])  # type: ignore[index]
    axes = group["val"].attrs["AXES"]  # type: ignore[index]
    axes = axes.decode() if isinstance(axes, bytes) else str(axes)
    weight = np.asarray(group["weight"])  # type: ignore[index]
    return np.where(weight > 0, val, np.nan), axes.split(",")


def station_names(group: object) -> list[str]:
    """A soltab's `ant` axis as text (h5py gives bytes)."""
    return [a.decode() if isinstance(a, bytes) else str(a) for a in group["ant"]]  # type: ignore[index]


def read_h5parm(path: Path, solset: str = "sol000") -> Solutions:
    """Amplitude and phase soltabs of a diagonal (or scalar) DDECal solve, as complex gains."""
    import h5py  # only the jobs that read solutions need it

    with h5py.File(path, "r") as h5:
        ss = h5[solset]
        amp, axes = soltab_values(ss["amplitude000"])
        phase, _ = soltab_values(ss["phase000"])
        times = np.asarray(ss["amplitude000"]["time"])
        freqs = np.asarray(ss["amplitude000"]["freq"])
        stations = station_names(ss["amplitude000"])
    gains = amp * np.exp(1j * phase)
    order = [axes.index(a) for a in ("time", "freq", "ant") if a in axes]
    extra = [i for i in range(gains.ndim) if i not in order]
    gains = np.transpose(gains, order + extra)
    # drop the direction axis; a scalar solve has no polarisation axis, give it two equal ones
    if "dir" in axes:
        gains = gains.take(0, axis=3)
    if "pol" not in axes:
        gains = np.repeat(gains[..., None], 2, axis=-1)
    elif gains.shape[-1] == 4:
        gains = gains[..., [0, 3]]
    return Solutions(times, freqs, stations, gains)


def compare(sol: Solutions, true_times: np.ndarray, true_stations: list[str],
            true_gains: np.ndarray) -> dict[str, float]:  # fmt: skip
    """Amplitude ratio and phase error of the solutions against the true gains.

    Phases are compared relative to the first station (a calibrator fixes phases only up to
    a common offset); amplitudes are absolute, set by the calibrator's flux scale.
    """
    idx = [true_stations.index(s) for s in sol.stations]
    nearest = np.abs(true_times[None, :] - sol.times[:, None]).argmin(axis=1)
    truth = true_gains[nearest][:, idx]  # (ntime, nant, 2)
    solved = sol.gains.mean(axis=1)  # frequency-independent truth
    ratio = np.abs(solved) / np.abs(truth)
    with np.errstate(invalid="ignore", divide="ignore"):  # unsolved (flagged) timeslots
        rel_solved = solved * np.conj(solved[:, :1]) / np.abs(solved[:, :1])
    rel_truth = truth * np.conj(truth[:, :1]) / np.abs(truth[:, :1])
    dphi = np.angle(rel_solved * np.conj(rel_truth))[:, 1:]
    ok = np.isfinite(ratio)
    return {
        "amplitude_ratio_median": float(np.nanmedian(ratio)),
        "amplitude_ratio_p05": float(np.nanpercentile(ratio, 5)),
        "amplitude_ratio_p95": float(np.nanpercentile(ratio, 95)),
        "phase_rms_deg": float(np.degrees(np.sqrt(np.nanmean(dphi**2)))),
        "solved_fraction": float(ok.mean()),
    }
