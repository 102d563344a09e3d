"""Scores of recovered clocks, dTEC and bandpass against a simulation's truth, for QA and the demo.

A calibrator fixes clocks and dTEC only relative to a reference station, so the truth is taken
relative to the same station before comparing. The targets are the calibrator stage's science
targets: dTEC within 0.05 TECU rms, clocks within 2 ns rms, the bandpass within 2 % rms.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .bandpass import Bandpass
from .calibration_inputs import SolutionInputError
from .clocktec import ClockTec

CLOCK_TARGET_NS = 2.0
TEC_TARGET_TECU = 0.05
BANDPASS_TARGET_FRACTION = 0.02


@dataclass(frozen=True)
class CalibrationScores:
    """Rms differences from the truth (reference station excluded) and whether they meet targets."""

    clock_rms_ns: float
    tec_rms_tecu: float
    bandpass_rms_fraction: float | None  # None when no bandpass was scored
    stations_scored: int  # stations with a clock, besides the reference

    @property
    def meets_targets(self) -> bool:
        bandpass_ok = (
            self.bandpass_rms_fraction is None
            or self.bandpass_rms_fraction <= BANDPASS_TARGET_FRACTION
        )
        return (
            self.clock_rms_ns <= CLOCK_TARGET_NS
            and self.tec_rms_tecu <= TEC_TARGET_TECU
            and bandpass_ok
        )

    def as_dict(self) -> dict[str, float | int | bool | None]:
        """The scores as written to a QA JSON file."""
        return asdict(self) | {"meets_targets": self.meets_targets}


def score_calibration(
    fit: ClockTec,
    true_clock_ns: np.ndarray,
    true_tec_tecu: np.ndarray,
    bandpass: Bandpass | None = None,
    true_bandpass: np.ndarray | None = None,
) -> CalibrationScores:
    """Rms of recovered − true clock (station,) and dTEC (time, station); of bandpass/true − 1.

    The truth is in absolute terms; it is taken relative to the fit's reference station here.
    """
    clock = _relative(np.asarray(true_clock_ns, float), fit.clock_ns.shape, fit.reference, "clock")
    tec = _relative(np.asarray(true_tec_tecu, float), fit.tec_tecu.shape, fit.reference, "dTEC")
    others = np.arange(fit.clock_ns.size) != fit.reference
    solved = others & np.isfinite(fit.clock_ns)
    return CalibrationScores(
        clock_rms_ns=_rms(fit.clock_ns[solved] - clock[solved]),
        tec_rms_tecu=_rms(fit.tec_tecu[:, solved] - tec[:, solved]),
        bandpass_rms_fraction=(
            None
            if bandpass is None or true_bandpass is None
            else bandpass_rms_fraction(bandpass, true_bandpass)
        ),
        stations_scored=int(solved.sum()),
    )


def _relative(truth: np.ndarray, shape: tuple[int, ...], reference: int, what: str) -> np.ndarray:
    if truth.shape != shape:
        raise SolutionInputError(f"true {what} has shape {truth.shape}, the fit has {shape}")
    return truth - truth[..., reference : reference + 1]


def _rms(diff: np.ndarray) -> float:
    finite = diff[np.isfinite(diff)]
    return float(np.sqrt(np.mean(finite**2))) if finite.size else float("nan")


def bandpass_rms_fraction(bandpass: Bandpass, truth: np.ndarray) -> float:
    """Rms of bandpass/true − 1 over the channels with a bandpass (frequency, station, …)."""
    true = np.asarray(truth, dtype=float)
    if true.shape != bandpass.amplitude.shape:
        raise SolutionInputError(
            f"true bandpass has shape {true.shape}, the bandpass has {bandpass.amplitude.shape}"
        )
    return _rms(bandpass.amplitude / true - 1)
