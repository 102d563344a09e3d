"""The simulator's LOFAR station beam: the beam tables EveryBeam and DP3 read, visibilities seen
through the beam, the beam's truth, and DP3 calibrating and correcting with the beam model."""

from __future__ import annotations

import math
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from casacore import tables

from lofar_datalake.pipeline import parsets, solutions, tools
from lofar_datalake.simulate import truth
from lofar_datalake.simulate.beam_tables import ANTENNA_SET, antenna_field, tile_dipoles_pqr
from lofar_datalake.simulate.beam_truth import half_power_radius_deg
from lofar_datalake.simulate.ms import Layout, antenna_uvw, write_ms
from lofar_datalake.simulate.observation import (
    SimulationParams,
    channel_freqs,
    ms_name,
    simulate,
    transit_start_mjd_s,
)
from lofar_datalake.simulate.sky import Source, lmn
from lofar_datalake.simulate.station_beam import StationBeam, data_dir
from lofar_datalake.simulate.stations import station_positions

C = 299792458.0
STATIONS = ["CS001HBA0", "CS002HBA0", "RS106HBA", "RS503HBA"]
# Two target sources, 1.9 and 0.8 deg out (the first about at the beam's half-power radius),
# no noise, no RFI, one hour around transit: the phase centre passes 0.9 deg from the zenith, the
# sources (at declinations 52.8 and 52.7) 0.1 and 0.2 deg, where the element beam changes fastest.
OFF_AXIS = SimulationParams(
    stations=STATIONS, n_channels=8, duration_h=1.0, n_sources=2, field_radius_deg=2.5,
    sky_seed=16, sefd_jy=0.0, rfi_occupancy=0.0, station_beam=True,
)  # fmt: skip


@pytest.fixture
def everybeam_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """EveryBeam (the everybeam wheel's and DP3's) finds its element coefficients this way."""
    monkeypatch.setenv("EVERYBEAM_DATADIR", str(data_dir()))


def unpack(out: Path, name: str, into: Path) -> Path:
    with tarfile.open(out / f"{name}.tar") as tar:
        tar.extractall(into, filter="data")
    return into / name


@pytest.fixture(scope="module")
def off_axis(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The simulation's output and its target Measurement Set, unpacked."""
    out = simulate(OFF_AXIS, tmp_path_factory.mktemp("off_axis"))
    return out, unpack(out, ms_name(OFF_AXIS.target_obsid, 0), out)


def test_beam_tables_hold_each_stations_surveyed_hba_field() -> None:
    from lofarantpos.db import LofarAntennaDatabase

    db = LofarAntennaDatabase()
    core, remote = antenna_field("CS001HBA0"), antenna_field("RS106HBA")
    assert (core.name, remote.name) == ("HBA0", "HBA")
    assert core.element_offset.shape == (24, 3) and not core.element_flag.any()
    assert np.allclose(core.position + core.element_offset, db.antenna_etrs("CS001HBA0"))
    for field in (core, remote):
        assert np.allclose(field.axes @ field.axes.T, np.eye(3), atol=1e-6)
        up = field.position / np.linalg.norm(field.position)
        assert math.degrees(math.acos(field.axes[2] @ up)) < 1.0  # R: the field's normal
        dipoles = field.tile_element_offset
        assert np.abs(dipoles @ field.axes[2]).max() < 1e-9  # in the tile's plane
        spacing = np.linalg.norm(dipoles[:, None] - dipoles[None], axis=-1)
        assert np.min(spacing[spacing > 0]) == pytest.approx(1.25)
    # the dipoles as lofarantpos places them in a tile (its first tile, in P,Q)
    tile = db.antenna_pqr("CS001HBA0")[0]
    expect = db.hba_dipole_pqr("CS001HBA0")[:16, :2] - tile[:2]
    assert np.allclose(tile_dipoles_pqr(db.hba_rotations["CS001HBA0"])[:, :2], expect, atol=1e-4)
    # HBA_DUAL_INNER: a remote station uses its inner 24 tiles, laid out as a core station's
    assert remote.element_offset.shape == (48, 3) and remote.element_flag[:, 0].sum() == 24
    radius = np.linalg.norm(remote.element_offset, axis=1)
    used = ~remote.element_flag[:, 0]
    assert radius[used].max() < radius[~used].min()
    core_radius = np.sort(np.linalg.norm(core.element_offset, axis=1))
    assert np.allclose(np.sort(radius[used]), core_radius, atol=0.1)


def test_simulated_measurement_set_carries_the_beam_tables_of_an_hba_dual_inner_observation(
    off_axis: tuple[Path, Path],
) -> None:
    _, ms = off_axis
    with tables.table(str(ms / "ANTENNA"), ack=False) as ant:
        assert list(ant.getcol("LOFAR_STATION_ID")) == [0, 1, 2, 3]
        assert np.array_equal(ant.getcol("LOFAR_PHASE_REFERENCE"), ant.getcol("POSITION"))
    with tables.table(str(ms / "LOFAR_ANTENNA_FIELD"), ack=False) as fields:
        assert list(fields.getcol("ANTENNA_ID")) == [0, 1, 2, 3]
        assert list(fields.getcol("NAME")) == ["HBA0", "HBA0", "HBA", "HBA"]
        assert fields.getcolkeyword("POSITION", "MEASINFO")["Ref"] == "ITRF"
    with tables.table(str(ms / "LOFAR_STATION"), ack=False) as stations:
        assert list(stations.getcol("NAME")) == ["CS001", "CS002", "RS106", "RS503"]
        assert list(stations.getcol("CLOCK_ID")) == [0, 0, 1, 2]
    with tables.table(str(ms / "FIELD"), ack=False) as field:
        assert np.array_equal(field.getcol("LOFAR_TILE_BEAM_DIR"), field.getcol("DELAY_DIR"))
    with tables.table(str(ms / "OBSERVATION"), ack=False) as obs:
        assert obs.getcol("LOFAR_ANTENNA_SET") == [ANTENNA_SET]
    with tables.table(str(ms), ack=False) as main:
        assert {"LOFAR_ANTENNA_FIELD", "LOFAR_STATION", "LOFAR_ELEMENT_FAILURE"} <= set(
            main.getkeywords()
        )
    with tables.table(str(ms / "LOFAR_ELEMENT_FAILURE"), ack=False) as failures:
        assert failures.nrows() == 0


def test_measurement_set_loads_in_everybeam_as_a_lofar_telescope_with_a_plausible_beam(
    off_axis: tuple[Path, Path], everybeam_data: None
) -> None:
    import everybeam

    _, ms = off_axis
    telescope = everybeam.load_telescope(str(ms))
    assert isinstance(telescope, everybeam.LOFAR) and telescope.nr_stations == len(STATIONS)
    with tables.table(str(ms), ack=False) as main:
        time = float(np.median(main.getcol("TIME")))
    ra0, dec0 = math.radians(OFF_AXIS.target_ra_deg), math.radians(OFF_AXIS.target_dec_deg)
    centre = np.array([telescope.station_response(time, p, 150e6, ra0, dec0) for p in range(4)])
    power = 0.5 * np.sum(np.abs(centre) ** 2, axis=(1, 2))
    assert np.all((0.9 < power) & (power < 1.1))  # near the zenith: the element's full gain
    assert np.allclose(centre, centre[0], atol=1e-3)  # every station sees the same there
    for offset_deg, lo, hi in ((1.0, 0.75, 0.95), (2.0, 0.4, 0.6), (4.0, 0.0, 0.1)):
        dec = dec0 + math.radians(offset_deg)
        off = telescope.station_response(time, 0, 150e6, ra0, dec)
        assert lo < 0.5 * np.sum(np.abs(off) ** 2) / power[0] < hi, offset_deg


def test_half_power_radius_is_that_of_an_hba_core_station_and_shrinks_with_frequency(
    off_axis: tuple[Path, Path],
) -> None:
    out, _ = off_axis
    response = truth.read_beam_response(out / "truth")
    assert response is not None and response.ref_freq_hz == OFF_AXIS.ref_freq_hz
    assert 1.5 < response.half_power_radius_deg < 2.5
    times = truth.read_gains(out / "truth").times
    beam = StationBeam(STATIONS[:1], times)
    pointing = (math.radians(OFF_AXIS.target_ra_deg), math.radians(OFF_AXIS.target_dec_deg))
    low = half_power_radius_deg(beam, 120e6, pointing, n_angles=4)
    high = half_power_radius_deg(beam, 180e6, pointing, n_angles=4)
    assert low / high == pytest.approx(1.5, rel=0.05)  # a beam width ~ wavelength / diameter


def offsets_deg(sources: list[Source]) -> list[float]:
    ra0, dec0 = math.radians(OFF_AXIS.target_ra_deg), math.radians(OFF_AXIS.target_dec_deg)
    lm = [lmn(ra0, dec0, math.radians(s.ra_deg), math.radians(s.dec_deg))[:2] for s in sources]
    return [math.degrees(math.hypot(*x)) for x in lm]


def test_visibilities_of_off_axis_sources_are_everybeams_response_towards_them(
    off_axis: tuple[Path, Path], everybeam_data: None
) -> None:
    """V_pq = g_p (sum_s S_s K_s E_p(s) E_q(s)^H) g_q^H, E evaluated by EveryBeam from the written
    MS at every timeslot (through the zenith passage), against the simulation's interpolated
    beam."""
    import everybeam

    out, ms = off_axis
    sources = truth.read_target_sources(out / "truth")
    assert offsets_deg(sources) == pytest.approx([1.9, 0.84], abs=0.01)
    gains = truth.read_gains(out / "truth").gains
    with tables.table(str(ms), ack=False) as main:
        data, uvw, time = main.getcol("DATA"), main.getcol("UVW"), main.getcol("TIME")
        a1, a2 = main.getcol("ANTENNA1"), main.getcol("ANTENNA2")
    freqs = channel_freqs(OFF_AXIS.first_subband, OFF_AXIS.n_channels)
    ra0, dec0 = math.radians(OFF_AXIS.target_ra_deg), math.radians(OFF_AXIS.target_dec_deg)
    telescope = everybeam.load_telescope(str(ms))
    nbl = len(a1) // len(gains)
    worst = 0.0
    for row in range(len(a1)):
        p, q, t = int(a1[row]), int(a2[row]), row // nbl
        if (p, q) not in ((0, 1), (0, 3), (2, 3)):
            continue
        for ch in (0, 4, 7):
            sky = np.zeros((2, 2), dtype=complex)
            for s in sources:
                ra, dec = math.radians(s.ra_deg), math.radians(s.dec_deg)
                ll, mm, nn = lmn(ra0, dec0, ra, dec)
                ep, eq = (telescope.station_response(time[row], i, freqs[ch], ra, dec)
                          for i in (p, q))  # fmt: skip
                phase = (uvw[row] @ [ll, mm, nn - 1]) * freqs[ch] / C
                sky += s.flux_at(freqs[ch]) * np.exp(2j * np.pi * phase) * ep @ eq.conj().T
            expect = np.diag(gains[t, p]) @ sky @ np.diag(gains[t, q]).conj()
            flux = sum(s.flux_at(freqs[ch]) for s in sources)
            worst = max(worst, np.abs(data[row, ch].reshape(2, 2) - expect).max() / flux)
    assert worst < 1e-3  # the linear interpolation between the beam's nodes
    assert np.abs(data[:, :, 1]).max() > 1e-3  # off-axis sources leak into XY


def test_truth_holds_each_sources_attenuation_and_the_phase_centre_response(
    off_axis: tuple[Path, Path], everybeam_data: None
) -> None:
    """Mean over timeslots and cross-correlation baselines of R_pq(s) / R_pq(centre), with
    R_pq = Re tr(E_p E_q^H) / 2, recomputed from the MS with EveryBeam."""
    import everybeam

    out, ms = off_axis
    response = truth.read_beam_response(out / "truth")
    assert response is not None
    sources = truth.read_target_sources(out / "truth")
    assert response.sources == [s.name for s in sources]
    freq = float(channel_freqs(OFF_AXIS.first_subband, OFF_AXIS.n_channels).mean())
    assert np.array_equal(response.freqs, [freq])
    telescope = everybeam.load_telescope(str(ms))
    times = truth.read_gains(out / "truth").times
    ra0, dec0 = math.radians(OFF_AXIS.target_ra_deg), math.radians(OFF_AXIS.target_dec_deg)
    pairs = [(p, q) for p in range(4) for q in range(p + 1, 4)]

    def baseline_response(ra: float, dec: float) -> np.ndarray:
        jones = np.array([[telescope.station_response(t, p, freq, ra, dec) for p in range(4)]
                          for t in times])  # fmt: skip
        return np.array([[0.5 * np.real(np.sum(j[p] * np.conj(j[q]))) for p, q in pairs]
                         for j in jones])  # fmt: skip

    centre = baseline_response(ra0, dec0)
    assert response.centre_response[0] == pytest.approx(np.mean(centre), rel=1e-5)
    for i, s in enumerate(sources):
        there = baseline_response(math.radians(s.ra_deg), math.radians(s.dec_deg))
        assert response.attenuation[i, 0] == pytest.approx(np.mean(there / centre), rel=1e-5)
    assert 0.4 < response.band_attenuation[0] < 0.6  # about half power, 1.9 deg out
    assert 0.8 < response.band_attenuation[1] < 0.95


def test_applybeam_takes_the_beam_off_a_source_at_the_phase_centre(
    tmp_path: Path, everybeam_data: None
) -> None:
    """DP3 reads the written beam tables and finds the beam the simulation applied: with unit
    gains, applybeam leaves S K (XX = YY, no XY) of a source at the phase centre."""
    start = transit_start_mjd_s("2024-03-20", 123.4, 2.0)
    times = start + 300.0 * (np.arange(24) + 0.5)  # two hours, so the beam changes
    freqs = channel_freqs(256, 4)
    pointing = (math.radians(123.4), math.radians(48.2175))
    layout = Layout(tuple(STATIONS), station_positions(STATIONS), times, 300.0, freqs,
                    200e6 / 1024 / 4, *pointing, "3C196")  # fmt: skip
    source = Source("3C196", 123.4, 48.2175, 83.1, -0.8, 150e6)
    uvw_ant = antenna_uvw(layout)
    gains = np.ones((len(times), len(STATIONS), 1, 2), dtype=complex)
    data = StationBeam(STATIONS, times).predict(layout, uvw_ant, [source], gains)
    a1, a2 = layout.baselines
    ms = tmp_path / "beam.MS"
    uvw = (uvw_ant[:, a2] - uvw_ant[:, a1]).reshape(-1, 3)
    write_ms(ms, layout, data.reshape(-1, len(freqs), 4), uvw, beam_tables=True)
    parset = {"msin": str(ms), "msout": ".", "msout.datacolumn": "CORRECTED_DATA",
              "steps": ["beam"], "beam.type": "applybeam"}  # fmt: skip
    tools.run_dp3(parset, tmp_path / "applybeam.parset", tmp_path / "applybeam.log")
    with tables.table(str(ms), ack=False) as main:
        corrected, before = main.getcol("CORRECTED_DATA"), main.getcol("DATA")
    flux = source.flux_at(freqs)
    assert not np.allclose(before[..., 0], flux, rtol=0.01)  # the beam was there
    # to within the simulation's interpolation between the beam's nodes
    assert np.allclose(corrected[..., 0], flux, rtol=2e-3)
    assert np.allclose(corrected[..., 3], flux, rtol=2e-3)
    assert np.abs(corrected[..., 1:3]).max() < 2e-3 * flux.max()


CALIBRATION = SimulationParams(
    stations=["CS001HBA0", "CS002HBA0", "CS013HBA0", "RS106HBA", "RS305HBA", "RS503HBA"],
    n_channels=8, duration_h=8.0, interval_s=300.0, n_sources=1, rfi_occupancy=0.0,
)  # fmt: skip


def calibrate(out: Path, tmp: Path, beam_model: bool) -> dict[str, float]:
    """DDECal (the pipeline's calibrate parset, autocorrelations flagged) on the calibrator; its
    gains scored against the truth."""
    name = ms_name(CALIBRATION.calibrator_obsid, 0)
    ms = unpack(out, name, tmp)
    h5 = tmp / "solutions.h5"
    parset = parsets.calibrate_parset(ms, h5, out / "calibrator.skymodel",
                                      {"usebeammodel": beam_model})  # fmt: skip
    parset |= {"steps": ["flagauto", "cal"], "flagauto.type": "preflagger",
               "flagauto.corrtype": "auto", "cal.beammode": "full"}  # fmt: skip
    tools.run_dp3(parset, tmp / "calibrate.parset", tmp / "calibrate.log")
    g = truth.read_gains(out / "truth")
    return solutions.compare(solutions.read_h5parm(h5), g.times, g.stations, g.gains)


def test_ddecal_with_the_beam_model_recovers_the_true_gains_and_without_it_does_not(
    tmp_path: Path, everybeam_data: None
) -> None:
    """An 8 h track: the calibrator's beam gain falls with elevation, so a solve that ignores
    the beam puts it into the gains."""
    without_beam = calibrate(simulate(CALIBRATION, tmp_path / "off"), tmp_path / "a", False)
    beam_sim = simulate(replace(CALIBRATION, station_beam=True), tmp_path / "on")
    modelled = calibrate(beam_sim, tmp_path / "b", True)
    ignored = calibrate(beam_sim, tmp_path / "c", False)
    for scores in (without_beam, modelled):
        assert abs(scores["amplitude_ratio_median"] - 1) < 0.005, scores
        assert scores["phase_rms_deg"] < 1.0 and scores["solved_fraction"] == 1.0, scores
    spread = {k: s["amplitude_ratio_p95"] - s["amplitude_ratio_p05"]
              for k, s in (("without", without_beam), ("modelled", modelled))}  # fmt: skip
    assert spread["modelled"] < 2 * spread["without"] + 0.002, (without_beam, modelled)
    assert ignored["amplitude_ratio_median"] < 0.97 and ignored["amplitude_ratio_p05"] < 0.9


def test_with_the_beam_off_nothing_of_the_beam_is_written(tmp_path: Path) -> None:
    base = replace(OFF_AXIS, duration_h=0.1, n_channels=2, sefd_jy=3000.0, rfi_occupancy=0.05)
    off = simulate(replace(base, station_beam=False), tmp_path / "off")
    on = simulate(base, tmp_path / "on")
    assert truth.read_beam_response(off / "truth") is None
    assert truth.read_beam_response(on / "truth") is not None
    name = ms_name(base.calibrator_obsid, 0)
    for name_in_truth in ("gains.npz", "target_sources.csv", truth.rfi_name(name)):
        assert (off / "truth" / name_in_truth).read_bytes() == (on / "truth" / name_in_truth
                                                                ).read_bytes()  # fmt: skip
    ms = unpack(off, name, tmp_path)
    with tables.table(str(ms), ack=False) as main:
        assert not any(k.startswith("LOFAR_") for k in main.getkeywords())
    with tables.table(str(ms / "ANTENNA"), ack=False) as ant:
        assert not any(c.startswith("LOFAR_") for c in ant.colnames())


def test_simulate_command_switches_the_station_beam_on(tmp_path: Path) -> None:
    from lofar_datalake.cli import build_parser

    argv = ["simulate", str(tmp_path / "sim"), "--channels", "1", "--hours", "0.05",
            "--stations", "CS001HBA0,RS106HBA", "--n-sources", "1", "--station-beam"]  # fmt: skip
    args = build_parser().parse_args(argv)
    assert args.func(args) == 0
    assert truth.read_parameters(tmp_path / "sim" / "truth")["station_beam"] is True
    assert truth.read_beam_response(tmp_path / "sim" / "truth") is not None
    name = ms_name(SimulationParams().target_obsid, 0)
    with tarfile.open(tmp_path / "sim" / f"{name}.tar") as tar:
        assert f"{name}/LOFAR_ANTENNA_FIELD/table.dat" in tar.getnames()
