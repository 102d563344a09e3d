"""Amplitude bandpass from synthetic calibrator gains, and the scores a QA stage reports."""

from __future__ import annotations

import numpy as np
import pytest

from lofar_datalake.pipeline.bandpass import Bandpass, station_bandpass
from lofar_datalake.pipeline.calibration_inputs import SolutionInputError
from lofar_datalake.pipeline.calibration_scores import bandpass_rms_fraction, score_calibration
from lofar_datalake.pipeline.clocktec import ClockTec

SUBBAND_HZ = 195_312.5


def band() -> np.ndarray:
    """4 channels in each of 8 subbands spread over 120–180 MHz."""
    centres = np.rint(np.linspace(120e6, 180e6, 8) / SUBBAND_HZ) * SUBBAND_HZ
    return (centres[:, None] + (np.arange(4) - 1.5) * SUBBAND_HZ / 4).ravel()


def true_bandpass(freqs: np.ndarray, nstation: int = 12, seed: int = 0) -> np.ndarray:
    """Per station: its own flux-scale level, a 15 % ripple (12 MHz period) and a 10 % slope."""
    rng = np.random.default_rng(seed)
    level = rng.uniform(80, 120, nstation)
    x = (freqs[:, None] - 120e6) / 12e6
    ripple = 1 + 0.15 * np.sin(2 * np.pi * x + rng.uniform(0, 2 * np.pi, nstation))
    return level * ripple * (1 + 0.1 * (freqs[:, None] - 150e6) / 30e6)


def measured(truth: np.ndarray, seed: int = 1, ntime: int = 100) -> np.ndarray:
    """Gain amplitudes (time, freq, station): 5 % noise per solution, 10 % flagged as NaN."""
    rng = np.random.default_rng(seed)
    amps = truth[None] * (1 + rng.normal(0, 0.05, (ntime, *truth.shape)))
    amps[rng.random(amps.shape) < 0.1] = np.nan
    return amps


def test_a_bandpass_with_15_percent_ripple_is_recovered_within_2_percent() -> None:
    freqs = band()
    truth = true_bandpass(freqs)
    amps = measured(truth)
    amps[20:40, :, 6] = 0.0  # a station's unsolved time slots, written as zero
    bp = station_bandpass(amps, freqs)
    assert bp.amplitude.shape == truth.shape and np.all(np.isfinite(bp.amplitude))
    assert bandpass_rms_fraction(bp, truth) < 0.02
    assert not bp.rejected.any()


def test_the_calibrator_flux_scale_is_kept_not_normalised_away() -> None:
    freqs = band()
    truth = true_bandpass(freqs)
    bp = station_bandpass(measured(truth), freqs)
    level = np.median(bp.amplitude, axis=0) / np.median(truth, axis=0)
    assert np.allclose(level, 1.0, atol=0.01)
    assert np.ptp(np.median(bp.amplitude, axis=0)) > 10  # stations keep their own levels


def test_a_persistently_bad_channel_is_rejected_and_interpolated() -> None:
    freqs = band()
    truth = true_bandpass(freqs)
    amps = measured(truth)
    amps[:, 9, 4] *= 1.4  # RFI in one channel of one station, at every time
    amps[:, 5, 3] = np.nan  # a channel flagged throughout
    bp = station_bandpass(amps, freqs)
    assert np.argwhere(bp.rejected).tolist() == [[9, 4]]
    assert np.isnan(bp.median[5, 3])
    for chan, st in ((9, 4), (5, 3)):
        assert abs(bp.amplitude[chan, st] / truth[chan, st] - 1) < 0.02


def test_complex_gains_with_a_polarisation_axis_give_one_bandpass_per_polarisation() -> None:
    freqs = band()
    truth = np.stack([true_bandpass(freqs, seed=2), true_bandpass(freqs, seed=3)], axis=-1)
    rng = np.random.default_rng(4)
    gains = measured(truth) * np.exp(1j * rng.uniform(-np.pi, np.pi, (100, *truth.shape)))
    bp = station_bandpass(gains, freqs)
    assert bp.amplitude.shape == (32, 12, 2)
    assert bandpass_rms_fraction(bp, truth) < 0.02


def test_bandpass_inputs_that_do_not_match_are_refused() -> None:
    freqs = band()
    amps = measured(true_bandpass(freqs))
    with pytest.raises(SolutionInputError, match="the solutions have 32 channels"):
        station_bandpass(amps, freqs[:8])
    with pytest.raises(SolutionInputError, match="expected time × frequency × station"):
        station_bandpass(amps[:, :, 0], freqs)
    bp = station_bandpass(amps, freqs)
    with pytest.raises(SolutionInputError, match="true bandpass has shape"):
        bandpass_rms_fraction(bp, np.ones((32, 11)))


def fit_with(clock: np.ndarray, tec: np.ndarray) -> ClockTec:
    return ClockTec(clock, tec, np.zeros((tec.shape[0], 1, clock.size)), reference=0)


def test_scores_are_rms_differences_relative_to_the_reference_station() -> None:
    true_clock = np.array([5.0, 15.0, -5.0])
    true_tec = np.array([[0.1, 0.3, 0.0], [0.1, 0.2, -0.1]])
    # Recovered relative to station 0; one clock about a whole 2π wrap (3.3 ns) off.
    fit = fit_with(np.array([0.0, 10.0, -10.0 + 3.3]), true_tec - true_tec[:, :1] + 0.01)
    scores = score_calibration(fit, true_clock, true_tec)
    assert scores.stations_scored == 2
    assert scores.clock_rms_ns == pytest.approx(3.3 / np.sqrt(2))
    assert scores.tec_rms_tecu == pytest.approx(0.01)
    assert not scores.meets_targets
    assert scores.as_dict() == {
        "clock_rms_ns": pytest.approx(3.3 / np.sqrt(2)), "tec_rms_tecu": pytest.approx(0.01),
        "bandpass_rms_fraction": None, "stations_scored": 2, "meets_targets": False,
    }  # fmt: skip


def test_scores_refuse_a_truth_of_another_shape() -> None:
    fit = fit_with(np.zeros(3), np.zeros((2, 3)))
    with pytest.raises(
        SolutionInputError, match=r"true clock has shape \(4,\), the fit has \(3,\)"
    ):
        score_calibration(fit, np.zeros(4), np.zeros((2, 3)))
    with pytest.raises(SolutionInputError, match="true dTEC has shape"):
        score_calibration(fit, np.zeros(3), np.zeros((3, 3)))


def test_a_bandpass_3_percent_off_fails_the_targets_even_with_exact_clocks_and_dtec() -> None:
    fit = fit_with(np.zeros(3), np.zeros((2, 3)))
    truth = np.full((32, 3), 100.0)
    off = Bandpass(truth * 1.03, truth, np.zeros(truth.shape, dtype=bool))
    scores = score_calibration(fit, np.zeros(3), np.zeros((2, 3)), off, truth)
    assert scores.clock_rms_ns == 0.0 and scores.tec_rms_tecu == 0.0
    assert scores.bandpass_rms_fraction == pytest.approx(0.03)
    assert not scores.meets_targets
    near = Bandpass(truth * 1.01, truth, np.zeros(truth.shape, dtype=bool))
    assert score_calibration(fit, np.zeros(3), np.zeros((2, 3)), near, truth).meets_targets
