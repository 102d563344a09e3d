"""Amplitude bandpass per station, from a flux calibrator's gain amplitudes.

As LINC's calibrator pipeline does, per station (and polarisation): the median of the gain
amplitudes over time (a calibrator's gains are steady through the scan, and the median ignores
flagged or disturbed time slots), channels that stray from a smooth curve rejected, and the curve
smoothed and interpolated across frequency. The curve is a local quadratic in log amplitude over a
sliding window in frequency: a Savitzky–Golay filter that tolerates gaps between subbands and
flagged channels, and keeps a ripple a few MHz wide while averaging the channel noise.

Flux scale: the gains come from a solve against the calibrator's model in Jy, so their amplitude
already is each station's flux-scale correction. The bandpass is therefore NOT normalised to a unit
mean (LoSoTo's `norm` would lose the scale); after smoothing it is rescaled so that its median
over the band equals the median of the per-channel medians: smoothing may reshape, never rescale.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .calibration_inputs import cube, frequencies

SMOOTHING_HALF_WIDTH_HZ = 1.0e6  # wider than a subband (195 kHz), narrower than a ripple
SMOOTHING_DEGREE = 2  # local quadratic in log amplitude
CLIP_SIGMA = 5.0  # outlier threshold in robust standard deviations (LoSoTo's nSigma)
MIN_SIGMA_LOG = 0.01  # never reject a channel within 1 % of the curve
MAD_TO_SIGMA = 1.4826  # median absolute deviation to standard deviation (Gaussian)
MAX_REJECTED_FRACTION = 0.25  # a station with more bad channels needs flagging, not smoothing


@dataclass(frozen=True)
class Bandpass:
    """Smoothed bandpass (frequency, station, …) with the time medians it was made from."""

    amplitude: np.ndarray  # NaN only where no channel within the window had a solution
    median: np.ndarray  # per-channel median over time; NaN where flagged throughout
    rejected: np.ndarray  # channels rejected as outliers (then interpolated)


def station_bandpass(
    amplitudes: np.ndarray, freqs_hz: np.ndarray, *, half_width_hz: float = SMOOTHING_HALF_WIDTH_HZ
) -> Bandpass:
    """Bandpass from amplitudes (time, freq, station, …); complex gains give their moduli.

    Non-finite or non-positive amplitudes count as flagged.
    """
    amps = np.abs(cube(amplitudes, "amplitudes", trailing_axes=True)).astype(float)
    freqs = frequencies(freqs_hz, amps.shape[1])
    median = _time_median(amps)
    columns = median.reshape(median.shape[0], -1)
    smoothed = np.full(columns.shape, np.nan)
    rejected = np.zeros(columns.shape, dtype=bool)
    for j in range(columns.shape[1]):
        smoothed[:, j], rejected[:, j] = _smooth(columns[:, j], freqs, half_width_hz)
    return Bandpass(smoothed.reshape(median.shape), median, rejected.reshape(median.shape))


def _time_median(amps: np.ndarray) -> np.ndarray:
    flagged = ~np.isfinite(amps) | (amps <= 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a channel flagged at all times
        return np.nanmedian(np.where(flagged, np.nan, amps), axis=0)


def _smooth(
    median: np.ndarray, freqs: np.ndarray, half_width: float
) -> tuple[np.ndarray, np.ndarray]:
    """One station's smoothed bandpass at its median level, and the channels rejected."""
    log_amp = np.log(median)
    ok = np.isfinite(log_amp)
    if not ok.any():
        return np.full(median.shape, np.nan), np.zeros(median.shape, dtype=bool)
    rejected = _outliers(log_amp, ok, freqs, half_width)
    kept = ok & ~rejected
    curve = np.exp(_local_fit(log_amp, kept, freqs, half_width, leave_out=False))
    scale = np.nanmedian(median[kept]) / np.nanmedian(curve[kept])
    return curve * scale, rejected


def _outliers(
    log_amp: np.ndarray, ok: np.ndarray, freqs: np.ndarray, half_width: float
) -> np.ndarray:
    """Channels far from the curve fitted without them, rejected worst first.

    Leaving a channel out of its own fit keeps an outlier from hiding in it; rejecting one at a
    time, then re-admitting those that agree with the final curve, keeps an outlier from taking
    a neighbour (whose fit it dragged) down with it.
    """
    rejected = np.zeros(ok.shape, dtype=bool)
    sigma = None
    for _ in range(int(ok.sum() * MAX_REJECTED_FRACTION)):
        kept = ok & ~rejected
        loo = log_amp - _local_fit(log_amp, kept, freqs, half_width, leave_out=True)
        usable = kept & np.isfinite(loo)
        if sigma is None:
            if usable.sum() < 3:
                break
            spread = np.abs(loo[usable] - np.median(loo[usable]))
            sigma = max(MAD_TO_SIGMA * float(np.median(spread)), MIN_SIGMA_LOG)
        worst = int(np.argmax(np.where(usable, np.abs(loo), -np.inf)))
        if abs(loo[worst]) <= CLIP_SIGMA * sigma:
            break
        rejected[worst] = True
    if sigma is None or not rejected.any():
        return rejected
    final = log_amp - _local_fit(log_amp, ok & ~rejected, freqs, half_width, leave_out=True)
    return rejected & ~(np.abs(final) <= CLIP_SIGMA * sigma)


def _local_fit(
    y: np.ndarray, ok: np.ndarray, freqs: np.ndarray, half_width: float, *, leave_out: bool
) -> np.ndarray:
    """At each channel, a low-order polynomial through the usable channels within the window."""
    out = np.full(y.shape, np.nan)
    for i, centre in enumerate(freqs):
        near = ok & (np.abs(freqs - centre) <= half_width)
        if leave_out:
            near[i] = False
        x = (freqs[near] - centre) / half_width
        # left out, a channel is predicted by an over-determined fit, never an exact one
        degree = min(SMOOTHING_DEGREE, np.unique(x).size - (2 if leave_out else 1))
        if degree < 0:
            continue
        coeffs, *_ = np.linalg.lstsq(np.vander(x, degree + 1), y[near], rcond=None)
        out[i] = coeffs[-1]  # the polynomial's value at the channel itself
    return out
