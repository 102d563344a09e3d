"""What LOFAR's calibrator pipeline hands to the target: bandpass, clocks and the ionosphere.

The calibrator's per-channel gain solutions of all its subbands are reduced, as LINC does, to
a smoothed bandpass per station and polarisation (`bandpass`), one clock per station and a
differential TEC per time and station (`clocktec`). The calibrator's beam is observed at the
same time as the target, so its dTEC is the target's ionosphere to first order; the target's
own phase self-calibration then removes the difference its direction makes.

The result is written as a DP3-readable h5parm (soltabs `amplitude000` and `phase000` with one
value per channel of every subband), so that the target's subbands take it through `applycal`
exactly as they would the calibrator's raw gains.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import bandpass, clocktec
from .calibration_inputs import SolutionInputError
from .solutions import Solutions, read_h5parm

SOLSET = "sol000"


@dataclass(frozen=True)
class CalibratorCube:
    """All subbands' solutions of one calibrator, in increasing frequency."""

    times: np.ndarray  # (ntime,) MJD s
    freqs: np.ndarray  # (nfreq,) Hz
    stations: list[str]
    gains: np.ndarray  # (ntime, nfreq, nstation, 2) complex; NaN where not solved


@dataclass(frozen=True)
class Transfer:
    """The reduced calibrator solutions."""

    cube: CalibratorCube
    bandpass: bandpass.Bandpass  # amplitude (nfreq, nstation, 2)
    fit: clocktec.ClockTec  # clock_ns (nstation,), tec_tecu (ntime, nstation)

    def phase(self) -> np.ndarray:
        """(ntime, nfreq, nstation) phase of clock and dTEC; NaN where either is unknown."""
        tec = _fill_in_time(self.fit.tec_tecu)
        return clocktec.model_phase(self.cube.freqs, self.fit.clock_ns, tec)

    def summary(self) -> dict[str, Any]:
        """Clocks and dTEC as a person reads them (JSON)."""
        tec = self.fit.tec_tecu
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a station never solved
            rms = np.sqrt(np.nanmean(tec**2, axis=0))
        return {
            "reference_station": self.cube.stations[self.fit.reference],
            "stations": self.cube.stations,
            "clock_ns": _listed(self.fit.clock_ns),
            "tec_rms_tecu": _listed(rms),
            "phase_residual_rms_rad": _listed(self.fit.residual_rms_rad()),
            "times_without_tec": int(np.isnan(tec).any(axis=1).sum()),
            "bandpass_rejected_channels": int(self.bandpass.rejected.sum()),
            "frequencies_mhz": [round(float(f) / 1e6, 4) for f in self.cube.freqs],
            "times_mjd_s": [round(float(t), 3) for t in self.cube.times],
            "tec_tecu": [_listed(row) for row in tec],  # time × station
        }


def _listed(values: np.ndarray) -> list[float | None]:
    return [None if not np.isfinite(v) else round(float(v), 6) for v in values]


def read_calibrator(h5parms: list[Path]) -> CalibratorCube:
    """Every subband's DDECal solutions of one calibrator, joined along frequency.

    The subbands must share the solution times and stations (they come from one observation).
    """
    if not h5parms:
        raise SolutionInputError("no calibrator solutions given")
    sols = sorted((read_h5parm(p) for p in h5parms), key=lambda s: float(s.freqs[0]))
    first = sols[0]
    for path, sol in zip(h5parms, sols, strict=True):
        _check_same_axes(first, sol, path)
    freqs = np.concatenate([s.freqs for s in sols])
    if np.any(np.diff(freqs) <= 0):
        raise SolutionInputError("calibrator subbands overlap in frequency")
    gains = np.concatenate([s.gains for s in sols], axis=1)
    return CalibratorCube(first.times, freqs, first.stations, gains)


def _check_same_axes(first: Solutions, sol: Solutions, path: Path) -> None:
    if sol.stations != first.stations:
        raise SolutionInputError(f"{path}: other stations than the calibrator's other subbands")
    if sol.times.shape != first.times.shape or not np.allclose(sol.times, first.times):
        raise SolutionInputError(f"{path}: other solution times than the other subbands")


def reduce(cube: CalibratorCube, reference: int = 0) -> Transfer:
    """Bandpass from the amplitudes; clocks and dTEC from the phases relative to `reference`.

    X and Y see the same clock and ionosphere: their phases relative to the reference station
    are averaged as phasors before the fit.
    """
    rel = cube.gains * np.conj(cube.gains[:, :, reference : reference + 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = rel / np.abs(rel)
    phasor = np.nansum(unit, axis=-1)
    phasor[np.all(np.isnan(unit), axis=-1)] = np.nan
    fit = clocktec.separate_clock_tec(np.angle(phasor), cube.freqs, reference)
    return Transfer(cube, bandpass.station_bandpass(np.abs(cube.gains), cube.freqs), fit)


def _fill_in_time(tec: np.ndarray) -> np.ndarray:
    """dTEC at times the fit skipped (too few channels), linearly from the neighbouring times."""
    out = np.array(tec, dtype=float)
    steps = np.arange(out.shape[0])
    for s in range(out.shape[1]):
        ok = np.isfinite(out[:, s])
        if ok.any() and not ok.all():
            out[~ok, s] = np.interp(steps[~ok], steps[ok], out[ok, s])
    return out


def write_h5parm(transfer: Transfer, template: Path, out: Path) -> None:
    """The bandpass as `amplitude000` (one time) and clock+dTEC as `phase000` (every time).

    The antenna and source tables come from one of the calibrator's own h5parms, so DP3 finds
    the stations it expects. Unknown values are NaN, which `applycal` flags.
    """
    import h5py  # only the jobs that write solutions need it

    cube = transfer.cube
    amplitude = transfer.bandpass.amplitude[None, :, :, None, :]  # time, freq, ant, dir, pol
    phase = np.repeat(transfer.phase()[:, :, :, None, None], 2, axis=-1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    with h5py.File(template, "r") as src, h5py.File(out, "w") as h5:
        ss = h5.create_group(SOLSET)
        ss.attrs["h5parm_version"] = np.bytes_(b"1.0")
        for table in ("antenna", "source"):
            src.copy(src[f"{SOLSET}/{table}"], ss, name=table)
        # String axes copied as DP3 wrote them: it reads null-terminated names only.
        named = {a: src[f"{SOLSET}/amplitude000/{a}"] for a in ("ant", "dir", "pol")}
        _soltab(ss, "amplitude000", "amplitude", amplitude, named, cube.times[:1], cube.freqs)
        _soltab(ss, "phase000", "phase", phase, named, cube.times, cube.freqs)


def _soltab(
    group: Any, name: str, title: str, values: np.ndarray, named: dict[str, Any],
    times: np.ndarray, freqs: np.ndarray,
) -> None:  # fmt: skip
    order = "time,freq,ant,dir,pol"
    tab = group.create_group(name)
    tab.attrs["TITLE"] = np.bytes_(title.encode())
    tab.attrs["h5parm_version"] = np.bytes_(b"1.0")
    tab.create_dataset("time", data=times)
    tab.create_dataset("freq", data=freqs)
    for axis, dataset in named.items():
        group.file.copy(dataset, tab, name=axis)
    val = tab.create_dataset("val", data=values.astype(np.float64))
    val.attrs["AXES"] = np.bytes_(order.encode())
    weight = tab.create_dataset("weight", data=np.isfinite(values).astype(np.float32))
    weight.attrs["AXES"] = np.bytes_(order.encode())


def transfer_solutions(h5parms: list[Path], out_h5parm: Path, out_summary: Path) -> Transfer:
    """The whole reduction: read, reduce, write the h5parm and the JSON summary."""
    transfer = reduce(read_calibrator(h5parms))
    write_h5parm(transfer, h5parms[0], out_h5parm)
    out_summary.write_text(json.dumps(transfer.summary(), indent=2) + "\n")
    return transfer
