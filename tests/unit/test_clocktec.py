"""Clock-TEC separation on synthetic calibrator phases: 12 stations, 8 subbands over 120–180 MHz."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pytest

from lofar_datalake.pipeline.calibration_inputs import SolutionInputError
from lofar_datalake.pipeline.calibration_scores import score_calibration
from lofar_datalake.pipeline.clocktec import model_phase, separate_clock_tec

K_TECU = 8.4479745e9  # rad Hz per TECU, written out here so the model is checked, not copied
SUBBAND_HZ = 195_312.5
NOISE_RAD = 0.08


@dataclass
class Observation:
    phases: np.ndarray  # (time, freq, station), wrapped, NaN where flagged
    freqs: np.ndarray
    clock_ns: np.ndarray
    tec_tecu: np.ndarray


def band(nsub: int = 8, low: float = 120e6, high: float = 180e6, nchan: int = 4) -> np.ndarray:
    """`nchan` channels in each of `nsub` subbands spread from `low` to `high`."""
    centres = np.rint(np.linspace(low, high, nsub) / SUBBAND_HZ) * SUBBAND_HZ
    offsets = (np.arange(nchan) - (nchan - 1) / 2) * SUBBAND_HZ / nchan
    return (centres[:, None] + offsets[None, :]).ravel()


def observe(seed: int, freqs: np.ndarray, nstation: int = 12, ntime: int = 100) -> Observation:
    """Clocks within ±30 ns, dTEC drifting smoothly within ±0.3 TECU, noise, flags, wrapped."""
    rng = np.random.default_rng(seed)
    clock = rng.uniform(-30, 30, nstation)
    t = np.linspace(0, 1, ntime)[:, None]
    drift = np.sin(2 * np.pi * (rng.uniform(0.3, 1.5, nstation) * t + rng.uniform(0, 1, nstation)))
    tec = rng.uniform(-0.15, 0.15, nstation) + rng.uniform(-0.15, 0.15, nstation) * drift
    nu = freqs[None, :, None]
    phase = 2 * np.pi * nu * clock * 1e-9 - K_TECU * tec[:, None, :] / nu
    phase = phase + rng.normal(0, NOISE_RAD, phase.shape)
    wrapped = np.angle(np.exp(1j * phase))
    wrapped[rng.random(wrapped.shape) < 0.05] = np.nan  # flagged solutions
    return Observation(wrapped, freqs, clock, tec)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_clocks_and_dtec_of_twelve_stations_meet_the_science_targets(seed: int) -> None:
    obs = observe(seed, band())
    fit = separate_clock_tec(obs.phases, obs.freqs, reference=0)
    scores = score_calibration(fit, obs.clock_ns, obs.tec_tecu)
    assert scores.stations_scored == 11
    assert scores.clock_rms_ns < 2.0 and scores.tec_rms_tecu < 0.05 and scores.meets_targets
    # No station took a wrong 2π wrap (≈3.4 ns and 0.055 TECU away): each is well inside targets.
    clock_err = fit.clock_ns - (obs.clock_ns - obs.clock_ns[0])
    assert np.max(np.abs(clock_err)) < 0.5
    assert np.nanmax(np.abs(fit.tec_tecu - (obs.tec_tecu - obs.tec_tecu[:, :1]))) < 0.01


def test_the_residual_is_the_noise_left_flagged_where_the_solutions_were() -> None:
    obs = observe(4, band())
    fit = separate_clock_tec(obs.phases, obs.freqs)
    rms = fit.residual_rms_rad()
    # Relative phases carry the noise of both stations: √2 × 0.08 rad.
    assert rms[0] == 0.0
    assert np.allclose(rms[1:], np.sqrt(2) * NOISE_RAD, rtol=0.1)
    flagged = np.isnan(obs.phases) | np.isnan(obs.phases[:, :, :1])
    assert np.array_equal(np.isnan(fit.residual_rad), flagged)
    assert np.all(np.abs(fit.residual_rad[~flagged]) <= np.pi)


def test_results_are_relative_to_the_chosen_reference_station() -> None:
    obs = observe(5, band())
    fit = separate_clock_tec(obs.phases, obs.freqs, reference=7)
    assert fit.reference == 7 and fit.clock_ns[7] == 0.0 and np.all(fit.tec_tecu[:, 7] == 0.0)
    assert score_calibration(fit, obs.clock_ns, obs.tec_tecu).meets_targets


def test_a_station_flagged_throughout_gets_no_clock_and_a_sparse_time_no_dtec() -> None:
    obs = observe(6, band())
    obs.phases[:, :, 3] = np.nan
    obs.phases[10, :20, 5] = np.nan  # 12 of 32 channels left at one time: too few
    fit = separate_clock_tec(obs.phases, obs.freqs)
    assert np.isnan(fit.clock_ns[3]) and np.all(np.isnan(fit.tec_tecu[:, 3]))
    assert np.isnan(fit.tec_tecu[10, 5]) and np.isfinite(fit.tec_tecu[11, 5])
    scores = score_calibration(fit, obs.clock_ns, obs.tec_tecu)
    assert scores.stations_scored == 10 and scores.meets_targets


def test_the_model_is_a_delay_plus_a_dispersive_term() -> None:
    freqs = np.array([120e6, 180e6])
    phase = model_phase(freqs, np.array([0.0, 10.0]), np.array([[0.0, 0.2]]))
    expected = 2 * np.pi * freqs * 10e-9 - K_TECU * 0.2 / freqs
    assert phase.shape == (1, 2, 2) and np.allclose(phase[0, :, 1], expected)
    assert np.all(phase[0, :, 0] == 0.0)


@pytest.mark.parametrize(
    ("freqs", "found"),
    [
        (band(nsub=3), "got 3 subband(s) over 119.85–180.15 MHz (factor 1.503)"),
        (
            band(nsub=8, low=140e6, high=160e6),
            "got 8 subband(s) over 139.97–160.03 MHz (factor 1.143)",
        ),
    ],
    ids=["three subbands", "20 MHz wide"],
)
def test_a_band_too_sparse_or_narrow_to_separate_clock_from_tec_is_refused(
    freqs: np.ndarray, found: str
) -> None:
    obs = observe(7, freqs, nstation=3, ntime=4)
    with pytest.raises(SolutionInputError) as err:
        separate_clock_tec(obs.phases, freqs)
    assert "needs at least 8 subbands spanning a factor 1.3" in str(err.value)
    assert found in str(err.value)


def test_mismatched_or_malformed_inputs_are_refused_with_what_is_wrong() -> None:
    obs = observe(8, band(), nstation=3, ntime=4)
    cases = [
        (lambda: separate_clock_tec(obs.phases, obs.freqs[:-1]), "the solutions have 32 channels"),
        (
            lambda: separate_clock_tec(obs.phases[0], obs.freqs),
            "expected time × frequency × station",
        ),
        (lambda: separate_clock_tec(np.exp(1j * obs.phases), obs.freqs), "pass np.angle(gains)"),
        (lambda: separate_clock_tec(obs.phases, obs.freqs, reference=3), "not one of the 3"),
        (lambda: separate_clock_tec(obs.phases[:, :, :1], obs.freqs), "at least 2 stations"),
        (lambda: separate_clock_tec(obs.phases, -obs.freqs), "finite and positive"),
    ]
    for call, message in cases:
        with pytest.raises(SolutionInputError, match=re.escape(message)):
            call()
