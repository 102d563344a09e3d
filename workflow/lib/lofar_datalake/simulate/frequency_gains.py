"""Frequency-dependent station gains: bandpass, clock offsets and differential TEC.

These are the effects LINC's calibrator pipeline separates in the calibrator's solutions. Each is
a factor of a station's complex gain g_p(t, nu), which enters V_pq = g_p V g_q^* like the drifting
gains of `corrupt`, with the phase conventions of DP3 and LoSoTo: a clock offset tau gives
2 pi nu tau, a differential TEC gives TEC_PHASE * dTEC / nu. Clock and bandpass are instrumental,
so calibrator and target share them. TEC differs with direction on the sky: the target's beam sees
the calibrator's dTEC plus, optionally, a smaller drifting difference of its own (`target_tec`),
which only the target's self-calibration can find.

The first station is the reference: its clock offset, TEC and bandpass phase are zero and the
others' are relative to it, as LoSoTo refers phase solutions to one station.

Each effect draws from a random stream of its own, derived from the seed, and draws nothing when
it is off: switching one on changes neither the others nor the drifting gains, noise and RFI.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TEC_PHASE = -8.44797245e9  # rad Hz / TECU
_STREAMS = {"bandpass": 1, "clock": 2, "tec": 3, "target_tec": 4}
_BANDPASS_TERMS = 3
_BANDPASS_PERIODS_HZ = (20e6, 80e6)  # ripples tens of MHz long: smooth within any subband
_TEC_PERIODS_H = (1.0, 3.0)  # slow enough to follow at one solution a minute


def _stream(seed: int, effect: str) -> np.random.Generator:
    return np.random.default_rng([seed, _STREAMS[effect]])


@dataclass(frozen=True)
class BandpassModel:
    """Each station's and polarisation's complex bandpass: sums of slow sinusoids in frequency.

    The amplitude stays within 1 +- ripple and the phase within +- phase_rad, so the shape is the
    same wherever (and in however many subbands) it is evaluated.
    """

    ripple: float
    phase_rad: float
    weights: np.ndarray  # (2, nterm, nant, 2): amplitude then phase terms; X and Y
    periods_hz: np.ndarray  # same shape
    offsets: np.ndarray  # same shape, rad

    def at(self, freqs: np.ndarray) -> np.ndarray:
        """(nfreq, nant, 2) complex bandpass at `freqs` (Hz)."""
        arg = 2 * np.pi * freqs[:, None, None, None, None] / self.periods_hz + self.offsets
        shape = (self.weights * np.sin(arg)).sum(axis=2) / self.weights.sum(axis=1)
        amp = 1.0 + self.ripple * shape[:, 0]
        phase = self.phase_rad * shape[:, 1]
        phase[:, 0] = 0.0  # the reference station
        return amp * np.exp(1j * phase)


def draw_bandpass(
    seed: int, nant: int, ripple: float, phase_rad: float | None = None
) -> BandpassModel:
    """Bandpasses of amplitude ripple `ripple` and phase ripple `phase_rad` (None: `ripple` rad)."""
    if not 0.0 < ripple < 1.0:
        raise ValueError(f"bandpass_ripple {ripple}: must lie between 0 and 1")
    if phase_rad is not None and not 0.0 <= phase_rad < np.pi:
        raise ValueError(f"bandpass_phase_rad {phase_rad}: must lie between 0 and pi")
    rng = _stream(seed, "bandpass")
    shape = (2, _BANDPASS_TERMS, nant, 2)
    return BandpassModel(
        ripple,
        ripple if phase_rad is None else phase_rad,
        rng.uniform(0.5, 1.0, shape),
        rng.uniform(*_BANDPASS_PERIODS_HZ, shape),
        rng.uniform(0.0, 2 * np.pi, shape),
    )


def draw_clock_ns(seed: int, nant: int, rms_ns: float) -> np.ndarray:
    """(nant,) constant clock offsets in ns, Gaussian with `rms_ns`; zero at the reference."""
    clock = _stream(seed, "clock").normal(0.0, rms_ns, nant)
    clock[0] = 0.0
    return clock


def draw_tec(
    seed: int, times: np.ndarray, nant: int, rms: float, stream: str = "tec"
) -> np.ndarray:
    """(ntime, nant) differential TEC in TECU: an offset plus two slow waves per station.

    Offset and waves each carry half the variance, so the rms over stations and time is about
    `rms`; zero at the reference.
    """
    rng = _stream(seed, stream)
    t = (times - times[0])[None, :, None] / 3600.0  # h
    offset = rng.normal(0.0, rms / np.sqrt(2.0), nant)
    period = rng.uniform(*_TEC_PERIODS_H, (2, 1, nant))
    start = rng.uniform(0.0, 2 * np.pi, (2, 1, nant))
    waves = rms / np.sqrt(2.0) * np.sin(2 * np.pi * t / period + start)
    tec = offset + waves.sum(axis=0)
    tec[:, 0] = 0.0
    return tec


def clock_phase(clock_ns: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """(nant, nfreq) phase in rad of clock offsets (ns) at `freqs` (Hz): 2 pi nu tau."""
    return 2 * np.pi * (clock_ns[:, None] * 1e-9) * freqs[None, :]


def tec_phase(tec: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """(..., nfreq) phase in rad of differential TEC (TECU, any shape) at `freqs` (Hz)."""
    return TEC_PHASE * tec[..., None] / freqs


@dataclass(frozen=True)
class StationEffects:
    """The frequency-dependent effects switched on for one observation (None: off)."""

    bandpass: BandpassModel | None
    clock_ns: np.ndarray | None  # (nant,)
    tec: np.ndarray | None  # (ntime, nant) TECU, on the observation's time grid
    target_tec: np.ndarray | None = None  # (ntime, nant) TECU the target's direction adds

    @classmethod
    def draw(
        cls, seed: int, times: np.ndarray, nant: int, ripple: float, clock_rms_ns: float,
        tec_rms: float, target_tec_rms: float = 0.0, bandpass_phase_rad: float | None = None,
    ) -> StationEffects:  # fmt: skip
        for name, value in (("clock_rms_ns", clock_rms_ns), ("tec_rms", tec_rms),
                            ("target_tec_rms", target_tec_rms)):  # fmt: skip
            if value < 0:
                raise ValueError(f"{name} {value}: must not be negative")
        return cls(
            draw_bandpass(seed, nant, ripple, bandpass_phase_rad) if ripple else None,
            draw_clock_ns(seed, nant, clock_rms_ns) if clock_rms_ns else None,
            draw_tec(seed, times, nant, tec_rms) if tec_rms else None,
            draw_tec(seed, times, nant, target_tec_rms, "target_tec") if target_tec_rms else None,
        )

    def factor(self, freqs: np.ndarray, target: bool = False) -> np.ndarray | None:
        """(ntime or 1, nant, nfreq, 2) factor of the station gains at `freqs`, in the target's
        direction if `target`; None if all off."""
        tec = self.tec
        if target and self.target_tec is not None:
            tec = self.target_tec if tec is None else tec + self.target_tec
        if self.bandpass is None and self.clock_ns is None and tec is None:
            return None
        out = np.ones((1, 1, len(freqs), 1), dtype=np.complex128)
        if self.bandpass is not None:
            out = out * self.bandpass.at(freqs).transpose(1, 0, 2)[None]
        if self.clock_ns is not None:
            out = out * np.exp(1j * clock_phase(self.clock_ns, freqs))[None, :, :, None]
        if tec is not None:
            out = out * np.exp(1j * tec_phase(tec, freqs))[..., None]
        return out
