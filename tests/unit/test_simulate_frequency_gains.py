"""The simulator's frequency-dependent station gains (bandpass, clock, TEC) and its subband grid."""

from __future__ import annotations

import math
import tarfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lofar_datalake.simulate import truth
from lofar_datalake.simulate.frequency_gains import StationEffects
from lofar_datalake.simulate.observation import (
    SimulationParams,
    channel_freqs,
    ms_name,
    simulate,
    subband_numbers,
    subbands_across,
)

STATIONS = ["CS001HBA0", "CS002HBA0", "RS106HBA", "RS503HBA"]
FIRST, STEP = subbands_across(120e6, 180e6, 2)
# Noise-free and RFI-free: the visibilities are the measurement equation, nothing else.
CLEAN = SimulationParams(
    stations=STATIONS, n_channels=4, duration_h=0.1, n_sources=1, sefd_jy=0.0,
    rfi_occupancy=0.0, n_subbands=2, first_subband=FIRST, subband_step=STEP,
)  # fmt: skip
EFFECTS: dict[str, dict[str, Any]] = {
    "bandpass": {"bandpass_ripple": 0.15},
    "clock": {"clock_rms_ns": 10.0},
    "tec": {"tec_rms": 0.05},
    "all": {"bandpass_ripple": 0.15, "clock_rms_ns": 10.0, "tec_rms": 0.05},
}


def read_ms(out: Path, name: str, tmp: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ntime, nbl, nchan, 4) DATA, ANTENNA1 and ANTENNA2 of one timeslot, CHAN_FREQ."""
    from casacore import tables

    with tarfile.open(out / f"{name}.tar") as tar:
        tar.extractall(tmp, filter="data")
    with tables.table(str(tmp / name), ack=False) as t:
        data, time = t.getcol("DATA"), t.getcol("TIME")
        a1, a2 = t.getcol("ANTENNA1"), t.getcol("ANTENNA2")
    with tables.table(str(tmp / name / "SPECTRAL_WINDOW"), ack=False) as t:
        freqs = t.getcol("CHAN_FREQ")[0]
    nbl = int(np.sum(time == time[0]))
    shape = (len(time) // nbl, nbl, len(freqs), 4)
    return data.reshape(shape), np.stack([a1[:nbl], a2[:nbl]]), freqs


def calibrator_flux(freqs: np.ndarray) -> np.ndarray:
    return CLEAN.calibrator_flux_jy * (freqs / CLEAN.ref_freq_hz) ** CLEAN.calibrator_spectral_index


def true_station_gains(truth_dir: Path, freqs: np.ndarray) -> np.ndarray:
    """(ntime, nant, nchan, 2) from the truth files, by the DP3/LoSoTo formulas written out."""
    g = truth.read_gains(truth_dir).gains[:, :, None, :].astype(np.complex128)
    bandpass, clock, tec = (truth.read_bandpass(truth_dir), truth.read_clock(truth_dir),
                            truth.read_tec(truth_dir))  # fmt: skip
    if bandpass is not None:
        rows = [int(np.argmin(np.abs(bandpass.freqs - f))) for f in freqs]
        assert np.array_equal(bandpass.freqs[rows], freqs)
        g = g * bandpass.bandpass[rows].transpose(1, 0, 2)[None]
    if clock is not None:
        g = g * np.exp(1j * 2 * np.pi * freqs * clock.clock_ns[:, None] * 1e-9)[None, :, :, None]
    if tec is not None:
        g = g * np.exp(1j * -8.44797245e9 * tec.tec[:, :, None] / freqs)[..., None]
    return g


@pytest.fixture(scope="module")
def sims(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {"off": simulate(CLEAN, tmp_path_factory.mktemp("off"))}
    for effect, settings in EFFECTS.items():
        out[effect] = simulate(replace(CLEAN, **settings), tmp_path_factory.mktemp(effect))
    return out


def test_eight_subbands_spread_over_120_to_180_mhz() -> None:
    first, step = subbands_across(120e6, 180e6, 8)
    params = SimulationParams(n_subbands=8, first_subband=first, subband_step=step, n_channels=16)
    numbers = subband_numbers(params)
    freqs = np.concatenate([channel_freqs(n, 16) for n in numbers])
    width = 200e6 / 1024
    assert len(numbers) == 8 and len(set(np.diff(numbers))) == 1
    assert 120e6 <= freqs.min() - width / 32 and freqs.max() + width / 32 <= 180e6
    assert freqs.min() < 121e6 and freqs.max() > 179e6  # the whole band, not a corner of it
    for n in numbers:  # subband centres: (512 + N) * 100 MHz / 512 in HBA-low, 200 MHz clock
        assert channel_freqs(n, 16).mean() == pytest.approx((512 + n) * 100e6 / 512, abs=1e-3)
    assert channel_freqs(256, 64).mean() == pytest.approx(150e6, abs=1e-3)
    with pytest.raises(ValueError, match="do not fit"):
        subbands_across(120e6, 121e6, 8)
    with pytest.raises(ValueError, match="HBA-low"):
        subbands_across(30e6, 80e6, 8)


def test_effects_switched_off_draw_nothing_and_change_no_gain() -> None:
    times = np.arange(5) * 60.0
    effects = StationEffects.draw(1, times, 4, 0.0, 0.0, 0.0)
    assert effects == StationEffects(None, None, None)
    assert effects.factor(np.array([150e6])) is None


def test_default_visibilities_are_those_written_before_these_effects_existed(
    tmp_path: Path,
) -> None:
    """A small default observation, noise and RFI included, against values it had before."""
    params = SimulationParams(stations=STATIONS, n_channels=8, duration_h=0.5, n_subbands=2,
                              n_sources=2)  # fmt: skip
    out = simulate(params, tmp_path / "sim")
    data, _, _ = read_ms(out, ms_name(params.target_obsid, 1), tmp_path)
    rows = data.reshape(-1, 8, 4)
    before = {
        (1, 0, 0): -1.5110656023025513 + 0.4305981397628784j,
        (57, 3, 3): 2783.640869140625 - 0.7119614481925964j,
        (123, 7, 1): 0.25429990887641907 + 0.9896020889282227j,
        (299, 5, 0): 3715.135498046875 - 1.138749599456787j,
    }
    for index, value in before.items():
        assert complex(rows[index]) == pytest.approx(value, rel=1e-6, abs=1e-5)
    assert np.abs(rows.astype(np.complex128)).sum() == pytest.approx(6307648.626491385, rel=1e-6)


@pytest.mark.parametrize("effect", list(EFFECTS))
def test_calibrator_visibilities_are_the_model_times_each_station_pairs_gains(
    sims: dict[str, Path], effect: str, tmp_path: Path
) -> None:
    """V_pq / S(nu) = G_p conj(G_q); G = gain x bandpass x e^(2 pi i nu tau) x e^(i K TEC / nu)."""
    out = sims[effect]
    on = set(EFFECTS[effect])
    assert (truth.read_bandpass(out / "truth") is not None) == ("bandpass_ripple" in on)
    assert (truth.read_clock(out / "truth") is not None) == ("clock_rms_ns" in on)
    assert (truth.read_tec(out / "truth") is not None) == ("tec_rms" in on)
    for sb in range(CLEAN.n_subbands):
        name = ms_name(CLEAN.calibrator_obsid, sb)
        data, (a1, a2), freqs = read_ms(out, name, tmp_path / f"{sb}")
        g = true_station_gains(out / "truth", freqs)
        flux = calibrator_flux(freqs)
        for k, pol in ((0, 0), (3, 1)):
            expect = flux * g[..., pol][:, a1] * np.conj(g[..., pol][:, a2])
            assert np.allclose(data[..., k], expect, rtol=1e-5, atol=1e-6)
        assert np.abs(data[..., 1:3]).max() == 0.0


@pytest.mark.parametrize("effect", list(EFFECTS))
def test_target_visibilities_carry_the_same_station_effects(
    sims: dict[str, Path], effect: str, tmp_path: Path
) -> None:
    """Target with the effects / target without them = E_p conj(E_q), as for the calibrator."""
    out, off = sims[effect], sims["off"]
    for sb in range(CLEAN.n_subbands):
        name = ms_name(CLEAN.target_obsid, sb)
        on_data, (a1, a2), freqs = read_ms(out, name, tmp_path / f"on{sb}")
        off_data, _, _ = read_ms(off, name, tmp_path / f"off{sb}")
        drifting = truth.read_gains(off / "truth").gains[:, :, None, :]
        e = true_station_gains(out / "truth", freqs) / drifting
        for k, pol in ((0, 0), (3, 1)):
            ratio = on_data[..., k].astype(np.complex128) / off_data[..., k]
            assert np.allclose(ratio, e[..., pol][:, a1] * np.conj(e[..., pol][:, a2]), rtol=1e-5)


def test_truth_files_hold_what_was_drawn_in_their_units(sims: dict[str, Path]) -> None:
    out = sims["all"] / "truth"
    gains = truth.read_gains(out)
    bandpass, clock, tec = truth.read_bandpass(out), truth.read_clock(out), truth.read_tec(out)
    assert bandpass is not None and clock is not None and tec is not None
    freqs = np.concatenate([channel_freqs(n, 4) for n in subband_numbers(CLEAN)])
    drawn = StationEffects.draw(CLEAN.seed, gains.times, len(STATIONS), 0.15, 10.0, 0.05)
    assert drawn.bandpass is not None and drawn.clock_ns is not None and drawn.tec is not None
    assert np.array_equal(bandpass.freqs, freqs) and bandpass.stations == STATIONS
    assert np.allclose(bandpass.bandpass, drawn.bandpass.at(freqs), rtol=1e-12)
    assert clock.reference == tec.reference == "CS001HBA0" and clock.stations == STATIONS
    assert np.array_equal(clock.clock_ns, drawn.clock_ns) and clock.clock_ns[0] == 0.0
    assert np.array_equal(tec.times, gains.times) and np.array_equal(tec.tec, drawn.tec)
    assert np.all(tec.tec[:, 0] == 0.0) and np.all(np.angle(bandpass.bandpass[:, 0]) == 0.0)
    assert truth.read_parameters(out)["subband_numbers"] == subband_numbers(CLEAN)


def test_drawn_effects_are_smooth_and_of_the_size_asked() -> None:
    times = np.arange(480) * 60.0  # 8 h
    freqs = np.linspace(120e6, 180e6, 601)
    effects = StationEffects.draw(7, times, 38, 0.15, 10.0, 0.05)
    assert effects.bandpass is not None and effects.clock_ns is not None
    assert effects.tec is not None
    bp = effects.bandpass.at(freqs)
    assert np.all(np.abs(np.abs(bp) - 1) <= 0.15) and np.abs(np.abs(bp) - 1).max() > 0.07
    assert np.abs(np.angle(bp)).max() <= 0.15
    assert np.abs(np.diff(np.abs(bp), axis=0)).max() < 0.15 * 2 * np.pi * 0.1e6 / 20e6
    assert 5.0 < np.std(effects.clock_ns[1:]) < 15.0
    assert 0.025 < np.std(effects.tec[:, 1:]) < 0.1
    assert np.abs(np.diff(effects.tec, axis=0)).max() < 0.05 * math.sqrt(2) * 2 * math.pi / 60
    with pytest.raises(ValueError, match="bandpass_ripple"):
        StationEffects.draw(7, times, 4, 1.5, 0.0, 0.0)
    with pytest.raises(ValueError, match="tec_rms"):
        StationEffects.draw(7, times, 4, 0.0, 0.0, -1.0)


def test_switching_effects_on_keeps_the_gains_noise_and_rfi(tmp_path: Path) -> None:
    """Noise and RFI on: the difference of the two runs is the difference of the models alone."""
    noisy = replace(CLEAN, sefd_jy=3000.0, rfi_occupancy=0.05)
    off = simulate(noisy, tmp_path / "off")
    on = simulate(replace(noisy, **EFFECTS["all"]), tmp_path / "on")
    for name in ("gains.npz", truth.rfi_name(ms_name(CLEAN.calibrator_obsid, 1))):
        assert (off / "truth" / name).read_bytes() == (on / "truth" / name).read_bytes()
    name = ms_name(CLEAN.calibrator_obsid, 1)
    d_off, (a1, a2), freqs = read_ms(off, name, tmp_path / "a")
    d_on, _, _ = read_ms(on, name, tmp_path / "b")
    g_on = true_station_gains(on / "truth", freqs)
    g_off = true_station_gains(off / "truth", freqs)
    flux = calibrator_flux(freqs)
    cross = a1 != a2
    x_on, x_off = g_on[..., 0], g_off[..., 0]
    model = x_on[:, a1] * np.conj(x_on[:, a2]) - x_off[:, a1] * np.conj(x_off[:, a2])
    diff = d_on[..., 0].astype(np.complex128) - d_off[..., 0]
    assert np.allclose(diff[:, cross], (flux * model)[:, cross], rtol=0, atol=1e-3)
    assert np.array_equal(d_on[..., 1][:, cross], d_off[..., 1][:, cross])  # XY: noise and RFI


def test_simulate_command_switches_the_effects_on_over_a_band(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lofar_datalake.cli import build_parser

    parser = build_parser()
    argv = ["simulate", str(tmp_path / "sim"), "--subbands", "8", "--band", "120-180",
            "--channels", "1", "--hours", "0.05", "--stations", "CS001HBA0,RS106HBA",
            "--bandpass", "0.15", "--clock-rms-ns", "10", "--tec-rms", "0.05"]  # fmt: skip
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    meta = truth.read_parameters(tmp_path / "sim" / "truth")
    assert meta["subband_numbers"] == [105, 148, 191, 234, 277, 320, 363, 406]
    assert (meta["bandpass_ripple"], meta["clock_rms_ns"], meta["tec_rms"]) == (0.15, 10.0, 0.05)
    for read in (truth.read_bandpass, truth.read_clock, truth.read_tec):
        assert read(tmp_path / "sim" / "truth") is not None
    args = parser.parse_args(["simulate", str(tmp_path / "bad"), "--band", "30-80"])
    assert args.func(args) == 2
    assert "--band 30-80" in capsys.readouterr().out and not (tmp_path / "bad").exists()
