"""Clock-TEC separation: split a calibrator's gain phases into station clocks and differential TEC.

Once the bandpass, polarisation alignment and Faraday rotation are out, the phase of a station's
gain relative to a reference station is, per time t and frequency ν (LoSoTo's `clocktec` model,
as LINC's calibrator pipeline uses it for HBA):

    φ(t, ν) = 2π ν τ − K · dTEC(t) / ν,        K = 8.44797245e9 rad Hz / TECU

with τ the station's clock offset and dTEC its differential total electron content. The two terms
differ only in how they scale with frequency (ν against 1/ν), so they separate only over a wide
band; and phases are known only modulo 2π, so a least-squares fit alone lands in a wrong wrap.

Method: LoSoTo's brute force followed by unwrapping against the model, with LINC's assumption of
one clock per station over the observation, fitted jointly with one dTEC per time (not a clock
per time and then its median: with the clock shared, every time helps to pick its wrap):

1. Coarse search on phasors summed per subband (at most `COARSE_MAX_SUBBANDS` of them, at most
   `COARSE_MAX_TIMES` times): a grid in clock and dTEC scores each clock by the sum over times of
   the best coherence over dTEC. Its largest maxima are the candidates; neighbouring maxima are
   the wrap ambiguities (≈3.4 ns with ≈−0.055 TECU at 120–180 MHz, 0.04 rad rms apart), which
   one time alone can barely tell apart.
2. Per candidate: dTEC per time from a 1-D grid at that clock, then the phases unwrapped against
   the model and solved by linear least squares for one clock and one dTEC per time, repeated
   until the unwrapping no longer changes.
3. The candidate with the smallest phase residual over all times and channels wins: a wrong wrap
   leaves a curvature across the band that, summed over the observation, is unmistakable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .calibration_inputs import SolutionInputError, cube, frequencies, reference_station

TEC_PHASE_RAD_HZ_PER_TECU = 8.44797245e9  # DP3 and LoSoTo: 1 TECU at ν turns −K/ν rad (ν in Hz)
S_PER_NS = 1e-9
SUBBAND_WIDTH_HZ = 195_312.5  # a LOFAR subband at the 200 MHz sampling clock
# Separation needs leverage in frequency (ν against 1/ν) and subbands spread densely enough that
# a clock of 1/(subband spacing) is no alias. With 0.1 rad noise, 12 stations and 100 times:
# 6 or 8 subbands over 120–180 MHz never took a wrong wrap (264 station fits each), 4 did in 1
# of 12 trials and 3 in 10 of 12; 8 over a factor 1.3 (120–156 MHz) erred once in ~400 fits,
# over a factor 1.2 in 8 of 12 trials.
MIN_SUBBANDS = 8
MIN_FREQUENCY_RATIO = 1.3  # highest over lowest frequency
CLOCK_SEARCH_NS = 100.0  # half-width of the clock search: tens of ns between Dutch stations
TEC_SEARCH_TECU = 1.0  # half-width of the dTEC grid; the least squares may go beyond it
GRID_PHASE_STEP_RAD = np.pi / 4  # largest phase change one grid step makes in the band
COARSE_MAX_TIMES = 64  # times the coarse clock search uses (evenly spread)
COARSE_MAX_SUBBANDS = 32  # likewise subbands: even 32 over 60 MHz alias only beyond 500 ns
CLOCK_CANDIDATES = 16  # clock maxima refined in full; in 330 fits the true one ranked ≤ 9th
MIN_VALID_FRACTION = 0.5  # a time with fewer unflagged channels gets no dTEC (as LoSoTo)
MAX_UNWRAP_ITERATIONS = 20


@dataclass(frozen=True)
class ClockTec:
    """Clocks and dTEC relative to the reference station, and the phase they leave unexplained."""

    clock_ns: np.ndarray  # (nstation,); NaN for a station without solutions
    tec_tecu: np.ndarray  # (ntime, nstation); NaN where a time had too few channels
    residual_rad: np.ndarray  # (ntime, nfreq, nstation) in (−π, π]; NaN where flagged or no dTEC
    reference: int

    def residual_rms_rad(self) -> np.ndarray:
        """Per station, the rms phase left after the clock and dTEC (a fit-quality measure)."""
        with np.errstate(invalid="ignore"):
            return np.sqrt(np.nanmean(self.residual_rad**2, axis=(0, 1)))


def wrap(phase_rad: np.ndarray) -> np.ndarray:
    """Phases mapped into (−π, π]."""
    return np.pi - np.mod(np.pi - phase_rad, 2 * np.pi)


def model_phase(freqs_hz: np.ndarray, clock_ns: np.ndarray, tec_tecu: np.ndarray) -> np.ndarray:
    """Unwrapped model phase (time, freq, station) of clocks (station,) and dTEC (time, station)."""
    nu = np.asarray(freqs_hz, dtype=float)[None, :, None]
    delay = 2 * np.pi * nu * np.asarray(clock_ns)[None, None, :] * S_PER_NS
    return delay - TEC_PHASE_RAD_HZ_PER_TECU * np.asarray(tec_tecu)[:, None, :] / nu


def subbands(freqs_hz: np.ndarray) -> np.ndarray:
    """The LOFAR subband number of each channel (its centre's multiple of the subband width)."""
    return np.rint(np.asarray(freqs_hz) / SUBBAND_WIDTH_HZ).astype(int)


def check_coverage(freqs_hz: np.ndarray) -> None:
    """Refuse a band too narrow or too sparse to tell a clock from dTEC, saying what is needed."""
    nsub = np.unique(subbands(freqs_hz)).size
    ratio = float(np.max(freqs_hz) / np.min(freqs_hz))
    if nsub < MIN_SUBBANDS or ratio < MIN_FREQUENCY_RATIO:
        raise SolutionInputError(
            f"clock-TEC separation needs at least {MIN_SUBBANDS} subbands spanning a factor "
            f"{MIN_FREQUENCY_RATIO} in frequency (e.g. 8 subbands over 120–180 MHz); got "
            f"{nsub} subband(s) over {np.min(freqs_hz) / 1e6:.2f}–{np.max(freqs_hz) / 1e6:.2f} MHz "
            f"(factor {ratio:.3f})"
        )


def separate_clock_tec(
    phases_rad: np.ndarray,
    freqs_hz: np.ndarray,
    reference: int = 0,
    *,
    clock_search_ns: float = CLOCK_SEARCH_NS,
    tec_search_tecu: float = TEC_SEARCH_TECU,
) -> ClockTec:
    """One clock per station and one dTEC per time and station, from phases (time, freq, station).

    Phases are in radians, wrapped or not, NaN where a solution is flagged; results are relative
    to station `reference`.
    """
    phases = cube(phases_rad, "phases")
    if np.iscomplexobj(phases):
        raise SolutionInputError("phases must be real radians: pass np.angle(gains)")
    ntime, nfreq, nstation = phases.shape
    freqs = frequencies(freqs_hz, nfreq)
    ref = reference_station(reference, nstation)
    check_coverage(freqs)
    rel = wrap(phases - phases[:, :, ref : ref + 1])
    clocks = np.zeros(nstation)
    tecs = np.zeros((ntime, nstation))
    residual = np.where(np.isfinite(rel), 0.0, np.nan)
    grid = _Grid.for_band(freqs, clock_search_ns, tec_search_tecu)
    binned, bin_freqs = _subband_phasors(rel, freqs)
    profile = _clock_profile(binned[_spread(ntime, COARSE_MAX_TIMES)], bin_freqs, grid)
    for s in range(nstation):
        if s == ref:
            continue
        fit = _best_candidate(rel[:, :, s], freqs, binned[:, :, s], bin_freqs, profile[:, s], grid)
        clocks[s], tecs[:, s], residual[:, :, s] = fit
    return ClockTec(clocks, tecs, residual, ref)


@dataclass(frozen=True)
class _Grid:
    clocks_ns: np.ndarray
    tecs_tecu: np.ndarray

    @classmethod
    def for_band(cls, freqs: np.ndarray, clock_half_ns: float, tec_half_tecu: float) -> _Grid:
        """Steps fine enough that no point is more than π/8 of phase from the truth anywhere."""
        clock_step = GRID_PHASE_STEP_RAD / (2 * np.pi * freqs.max() * S_PER_NS)
        tec_step = GRID_PHASE_STEP_RAD * freqs.min() / TEC_PHASE_RAD_HZ_PER_TECU
        return cls(_symmetric(clock_half_ns, clock_step), _symmetric(tec_half_tecu, tec_step))


def _symmetric(half_width: float, step: float) -> np.ndarray:
    n = int(np.ceil(half_width / step))
    return np.arange(-n, n + 1) * step


def _coefficients(freqs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Phase per ns of clock and per TECU of dTEC at each frequency (the model's two columns)."""
    return 2 * np.pi * freqs * S_PER_NS, -TEC_PHASE_RAD_HZ_PER_TECU / freqs


def _spread(n: int, most: int) -> np.ndarray:
    """At most `most` indices out of `n`, evenly spread, first and last included."""
    return np.unique(np.linspace(0, n - 1, min(n, most)).round().astype(int))


def _subband_phasors(rel: np.ndarray, freqs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit phasors summed per subband (time, subband, station) and each subband's mean frequency.

    Within one subband neither a clock of 100 ns nor 1 TECU turns the phase by more than ~0.1 rad,
    so the sum loses nothing for the searches and makes them several times cheaper; a wide band
    keeps only `COARSE_MAX_SUBBANDS` of its subbands for them.
    """
    ids, members = np.unique(subbands(freqs), return_inverse=True)
    onehot = (members[:, None] == np.arange(ids.size)[None, :]).astype(float)
    onehot = onehot[:, _spread(ids.size, COARSE_MAX_SUBBANDS)]
    phasors = np.where(np.isfinite(rel), np.exp(1j * np.nan_to_num(rel)), 0.0)
    binned = np.einsum("tfs,fb->tbs", phasors, onehot)
    return binned, (freqs @ onehot) / onehot.sum(axis=0)


def _tec_coherence(
    phasors: np.ndarray, bin_freqs: np.ndarray, clock: float, grid: _Grid
) -> np.ndarray:
    """Re Σ_ν z·exp(−i·model) for each dTEC on the grid at one clock: (..., ntec)."""
    a, b = _coefficients(bin_freqs)
    steering = np.exp(-1j * np.outer(b, grid.tecs_tecu))
    return (phasors * np.exp(-1j * a * clock)) @ steering


def _clock_profile(binned: np.ndarray, bin_freqs: np.ndarray, grid: _Grid) -> np.ndarray:
    """For each clock on the grid and station, the sum over times of the best dTEC coherence."""
    per_station = binned.transpose(0, 2, 1)  # (time, station, subband)
    rows = [
        _tec_coherence(per_station, bin_freqs, c, grid).real.max(axis=-1).sum(axis=0)
        for c in grid.clocks_ns
    ]
    return np.array(rows)  # (nclock, nstation)


def _candidates(profile: np.ndarray) -> np.ndarray:
    """Clock-grid indices of the largest local maxima of one station's profile."""
    padded = np.concatenate(([-np.inf], profile, [-np.inf]))
    peaks = np.flatnonzero((profile >= padded[:-2]) & (profile > padded[2:]) & (profile > 0))
    return peaks[np.argsort(profile[peaks])[::-1][:CLOCK_CANDIDATES]]


def _best_candidate(
    rel: np.ndarray,
    freqs: np.ndarray,
    binned: np.ndarray,
    bin_freqs: np.ndarray,
    profile: np.ndarray,
    grid: _Grid,
) -> tuple[float, np.ndarray, np.ndarray]:
    """The refined (clock, dTEC per time, residual) of the candidate that leaves least phase."""
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    best_cost = np.inf
    for i in _candidates(profile):
        clock = float(grid.clocks_ns[i])
        coherence = _tec_coherence(binned, bin_freqs, clock, grid).real
        tec0 = np.where(
            np.abs(binned).sum(axis=1) > 0, grid.tecs_tecu[coherence.argmax(axis=1)], np.nan
        )
        clock, tec, residual = _refine(rel, freqs, clock, tec0)
        cost = float(np.nansum(residual**2))
        if cost < best_cost:
            best, best_cost = (clock, tec, residual), cost
    if best is None:  # a station flagged throughout
        return np.nan, np.full(rel.shape[0], np.nan), np.full(rel.shape, np.nan)
    return best


def _refine(
    rel: np.ndarray, freqs: np.ndarray, clock: float, tec: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """Unwrap against the model and re-solve until stable; returns clock, dTEC and residual."""
    a, b = _coefficients(freqs)
    valid = np.isfinite(rel)
    rows = (valid.mean(axis=1) >= MIN_VALID_FRACTION) & np.isfinite(tec)
    if not rows.any():  # no time with enough channels: nothing to fit
        return np.nan, np.full(rel.shape[0], np.nan), np.full(rel.shape, np.nan)
    weight = (valid & rows[:, None]).astype(float)
    tec = np.where(rows, tec, 0.0)
    data = np.nan_to_num(rel)
    for _ in range(MAX_UNWRAP_ITERATIONS):
        model = a * clock + np.outer(tec, b)
        new_clock, new_tec = _solve(model + wrap(data - model), weight, a, b)
        done = abs(new_clock - clock) < 1e-9 and np.allclose(new_tec, tec, rtol=0, atol=1e-12)
        clock, tec = new_clock, new_tec
        if done:
            break
    residual = np.where(weight > 0, wrap(data - a * clock - np.outer(tec, b)), np.nan)
    return clock, np.where(rows, tec, np.nan), residual


def _solve(
    unwrapped: np.ndarray, weight: np.ndarray, a: np.ndarray, b: np.ndarray
) -> tuple[float, np.ndarray]:
    """Weighted least squares for one clock and one dTEC per time (dTEC profiled out per time)."""
    sbb = weight @ b**2
    sby = (weight * unwrapped) @ b
    sab = weight @ (a * b)
    safe = np.where(sbb > 0, sbb, 1.0)
    a_rest = a - np.outer(sab / safe, b)  # the clock's column with each time's dTEC projected out
    y_rest = unwrapped - np.outer(sby / safe, b)
    clock = float((weight * a_rest * y_rest).sum() / (weight * a_rest**2).sum())
    return clock, np.where(sbb > 0, (sby - clock * sab) / safe, 0.0)
