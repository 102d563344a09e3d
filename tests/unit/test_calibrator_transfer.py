"""The calibrator reduction that feeds the target: solutions of many subbands in, an h5parm of
bandpass, clocks and dTEC out (synthetic DDECal-like h5parms; DP3 reads the real ones in the
workflow tests)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from lofar_datalake.pipeline import calibrator_transfer, clocktec, parsets, solutions
from lofar_datalake.pipeline.calibration_inputs import SolutionInputError

SUBBAND_HZ = 195_312.5
STATIONS = [f"CS{n:03d}HBA0" for n in (1, 2, 3, 4, 5, 6)]
NTIME = 40


def subband_freqs(k: int) -> np.ndarray:
    centre = np.rint((120e6 + k * 60e6 / 7) / SUBBAND_HZ) * SUBBAND_HZ
    return centre + (np.arange(4) - 1.5) * SUBBAND_HZ / 4


def truth(seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    clock = rng.normal(0, 10, len(STATIONS))
    tec = rng.normal(0, 0.05, len(STATIONS))[None] + 0.02 * np.sin(np.arange(NTIME) / 7)[:, None]
    clock[0], tec[:, 0] = 0.0, 0.0
    level = rng.uniform(0.8, 1.2, (len(STATIONS), 2))
    return clock, tec, level


def write_ddecal_h5parm(path: Path, freqs: np.ndarray, gains: np.ndarray, times: np.ndarray):
    """A DDECal-shaped h5parm: soltabs amplitude000/phase000, axes time,freq,ant,dir,pol."""
    with h5py.File(path, "w") as h5:
        ss = h5.create_group("sol000")
        ant = np.array([(s.encode(), (0.0, 0.0, 0.0)) for s in STATIONS],
                       dtype=[("name", "S16"), ("position", "<f4", (3,))])  # fmt: skip
        ss.create_dataset("antenna", data=ant)
        src = np.array([(b"[3C196]", (2.15, 0.84))], dtype=[("name", "S128"), ("dir", "<f8", (2,))])
        ss.create_dataset("source", data=src)
        for name, values in (("amplitude000", np.abs(gains)), ("phase000", np.angle(gains))):
            tab = ss.create_group(name)
            tab.attrs["TITLE"] = np.bytes_(name[:-3].encode())
            axes = {"time": times, "freq": freqs, "ant": np.array(STATIONS, dtype="S9"),
                    "dir": np.array([b"[3C196]"]), "pol": np.array([b"XX", b"YY"])}  # fmt: skip
            for axis, data in axes.items():
                tab.create_dataset(axis, data=data)
            val = tab.create_dataset("val", data=values[:, :, :, None, :])
            val.attrs["AXES"] = np.bytes_(b"time,freq,ant,dir,pol")
            weight = tab.create_dataset("weight", data=np.ones(val.shape, np.float32))
            weight.attrs["AXES"] = np.bytes_(b"time,freq,ant,dir,pol")


def calibrator(tmp_path: Path, nsub: int = 8) -> tuple[list[Path], tuple]:
    clock, tec, level = truth()
    times = 5.2e9 + 60.0 * np.arange(NTIME)
    rng = np.random.default_rng(7)
    paths = []
    for k in reversed(range(nsub)):  # any order: the reduction sorts by frequency
        freqs = subband_freqs(k)
        phase = clocktec.model_phase(freqs, clock, tec)[..., None]
        common = rng.uniform(-np.pi, np.pi, (NTIME, 1, 1, 2))  # DDECal's free phase per time
        noise = rng.normal(0, 0.02, (NTIME, freqs.size, len(STATIONS), 2))
        gains = level[None, None] * np.exp(1j * (phase + common + noise))
        path = tmp_path / f"SB{k:03d}.h5"
        write_ddecal_h5parm(path, freqs, gains, times)
        paths.append(path)
    return paths, (clock, tec, level)


def test_clocks_dtec_and_bandpass_come_out_of_subbands_in_any_order(tmp_path: Path) -> None:
    paths, (clock, tec, level) = calibrator(tmp_path)
    transfer = calibrator_transfer.reduce(calibrator_transfer.read_calibrator(paths))
    assert np.all(np.diff(transfer.cube.freqs) > 0)
    assert np.allclose(transfer.fit.clock_ns, clock, atol=0.2)
    assert np.allclose(transfer.fit.tec_tecu, tec, atol=0.005)
    assert np.allclose(transfer.bandpass.amplitude, level[None], rtol=0.01)


def test_the_h5parm_written_carries_the_bandpass_and_the_model_phase(tmp_path: Path) -> None:
    paths, (clock, tec, level) = calibrator(tmp_path)
    out = tmp_path / "transfer.h5"
    summary = tmp_path / "clocktec.json"
    transfer = calibrator_transfer.transfer_solutions(paths, out, summary)
    read = solutions.read_h5parm(out)
    assert read.stations == STATIONS and read.freqs.size == 32
    # one time for the bandpass, every time for the phases: read_h5parm pairs them up
    with h5py.File(out) as h5:
        assert h5["sol000/amplitude000/val"].shape == (1, 32, len(STATIONS), 1, 2)
        assert h5["sol000/phase000/val"].shape == (NTIME, 32, len(STATIONS), 1, 2)
        phase = h5["sol000/phase000/val"][:, :, :, 0, 0]
        amplitude = h5["sol000/amplitude000/val"][0, :, :, 0, :]
    expected = clocktec.model_phase(transfer.cube.freqs, clock, tec)
    assert np.allclose(clocktec.wrap(phase - expected), 0, atol=0.05)
    assert np.allclose(amplitude, level[None], rtol=0.01)
    assert '"reference_station": "CS001HBA0"' in summary.read_text()


def test_too_few_subbands_are_refused_saying_what_is_needed(tmp_path: Path) -> None:
    paths, _ = calibrator(tmp_path, nsub=3)
    with pytest.raises(SolutionInputError, match="at least 8 subbands"):
        calibrator_transfer.reduce(calibrator_transfer.read_calibrator(paths))


def test_subbands_of_other_stations_are_refused(tmp_path: Path) -> None:
    paths, _ = calibrator(tmp_path)
    with h5py.File(paths[0], "r+") as h5:
        for tab in ("amplitude000", "phase000"):
            del h5[f"sol000/{tab}/ant"]
            h5[f"sol000/{tab}/ant"] = np.array([s.replace("CS", "RS") for s in STATIONS], "S9")
    with pytest.raises(SolutionInputError, match="other stations"):
        calibrator_transfer.read_calibrator(paths)


def test_dtec_the_fit_skipped_is_interpolated_in_time() -> None:
    tec = np.array([[0.0, 0.1], [0.0, np.nan], [0.0, 0.3]])
    assert np.allclose(calibrator_transfer._fill_in_time(tec)[1], [0.0, 0.2])


def test_self_calibration_solves_one_phase_per_station_against_the_targets_model() -> None:
    settings = {"mode": "diagonal", "solint": 1, "selfcal": {"solint": 3, "nchan": 0}}
    solve = parsets.selfcal_parset(Path("in.MS"), Path("sc.h5"), Path("sky.txt"), settings)
    assert solve["cal.mode"] == "scalarphase" and solve["cal.solint"] == 3
    assert solve["cal.sourcedb"] == "sky.txt" and solve["msout"] == ""
    apply = parsets.applycal_parset(Path("in.MS"), Path("out.MS"), Path("sc.h5"), phase_only=True)
    assert apply["apply.steps"] == ["phase"] and apply["apply.phase.correction"] == "phase000"
