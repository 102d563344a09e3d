"""The simulator: stations, sky, corruptions, truth files and the Measurement Set it writes."""

from __future__ import annotations

import json
import math
import tarfile
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest

from lofar_datalake.simulate import corrupt, sky, truth
from lofar_datalake.simulate.observation import (
    SimulationParams,
    ms_name,
    simulate,
    simulated_with,
    transit_start_mjd_s,
)
from lofar_datalake.simulate.stations import DEFAULT_STATIONS, HBA_STATIONS, station_positions


def test_station_positions_are_lofar() -> None:
    pos = station_positions(DEFAULT_STATIONS)
    radius = np.linalg.norm(pos, axis=1)
    assert np.all(np.abs(radius - 6.365e6) < 1e4)  # on the Earth's surface near 52.9 N
    lengths = np.linalg.norm(pos[:, None] - pos[None], axis=-1)[np.triu_indices(len(pos), 1)]
    assert lengths.min() < 500 and lengths.max() > 20_000  # core to remote stations
    assert len(HBA_STATIONS) >= 30
    with pytest.raises(ValueError, match="XX999"):
        station_positions(["CS002HBA0", "XX999"])


def test_lmn_round_trip() -> None:
    ra0, dec0 = math.radians(131.25), math.radians(52.0)
    ra, dec = sky.offset_position(ra0, dec0, 0.004, -0.003)
    ll, mm, nn = sky.lmn(ra0, dec0, ra, dec)
    assert (ll, mm) == pytest.approx((0.004, -0.003), abs=1e-12)
    assert nn == pytest.approx(math.sqrt(1 - ll**2 - mm**2))


def test_random_field_is_seeded_separated_and_inside() -> None:
    kwargs = dict(
        ra_deg=131.25, dec_deg=52.0, n_sources=10, radius_deg=0.3, flux_range_jy=(0.25, 2.5),
        min_separation_deg=0.05, ref_freq_hz=150e6,
    )  # fmt: skip
    a = sky.random_field(seed=5, **kwargs)
    assert a == sky.random_field(seed=5, **kwargs)
    assert a != sky.random_field(seed=6, **kwargs)
    for s in a:
        assert 0.25 <= s.flux_jy <= 2.5
        ll, mm, _ = sky.lmn(math.radians(131.25), math.radians(52.0),
                            math.radians(s.ra_deg), math.radians(s.dec_deg))  # fmt: skip
        assert math.degrees(math.hypot(ll, mm)) <= 0.3 + 1e-9
    for i, s in enumerate(a):
        for t in a[i + 1 :]:
            ll, mm, _ = sky.lmn(math.radians(s.ra_deg), math.radians(s.dec_deg),
                                math.radians(t.ra_deg), math.radians(t.dec_deg))  # fmt: skip
            assert math.degrees(math.hypot(ll, mm)) > 0.05 * 0.99


def test_skymodel_text_and_sources_csv(tmp_path: Path) -> None:
    src = [sky.Source("3C196", 123.4, 48.2175, 83.1, -0.8, 150e6)]
    sky.write_skymodel(tmp_path / "cal.skymodel", src)
    lines = (tmp_path / "cal.skymodel").read_text().splitlines()
    assert lines[0].startswith("FORMAT = Name, Type, Ra, Dec, I, ReferenceFrequency")
    assert lines[1] == (
        "3C196, POINT, 08:13:36.000000, +48.13.03.000000, 83.100000, 150000000.0, [-0.8000]"
    )
    sky.write_sources_csv(tmp_path / "s.csv", src)
    assert sky.read_sources_csv(tmp_path / "s.csv") == src
    assert src[0].flux_at(300e6) == pytest.approx(83.1 * 2**-0.8)


def test_rfi_events_cover_the_requested_fraction() -> None:
    rng = np.random.default_rng(3)
    mask, amp = corrupt.rfi_events(rng, 200, 64, 0.03)
    assert 0.03 <= mask.mean() < 0.1
    assert np.all(amp[mask] >= 5) and np.all(amp[~mask] == 0)


def test_gains_drift_slowly() -> None:
    times = np.arange(480) * 60.0
    g = corrupt.drifting_gains(np.random.default_rng(1), times, 12)
    assert g.shape == (480, 12, 2)
    step = np.abs(np.diff(g, axis=0)) / np.abs(g[:-1])
    assert step.max() < 0.12  # per minute: under 7 degrees of phase
    assert 0.7 < np.abs(g).min() and np.abs(g).max() < 1.4


def test_noise_sigma_radiometer_equation() -> None:
    assert corrupt.noise_sigma(3000.0, 3051.76, 60.0) == pytest.approx(
        3000.0 / math.sqrt(2 * 3051.76 * 60)
    )


def test_track_is_centred_on_transit() -> None:
    from casacore.measures import measures
    from casacore.quanta import quantity

    start = transit_start_mjd_s("2024-03-20", 131.25, 8.0)
    dm = measures()
    dm.do_frame(dm.observatory("LOFAR"))
    mid = dm.epoch("UTC", quantity(start + 4 * 3600, "s"))
    last = dm.measure(mid, "LAST")["m0"]["value"]  # days
    lst_deg = (last % 1.0) * 360.0
    assert abs((lst_deg - 131.25 + 180) % 360 - 180) < 0.5  # within 2 minutes of transit


@pytest.fixture(scope="module")
def small_obs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SimulationParams]:
    params = SimulationParams(
        stations=["CS001HBA0", "CS002HBA0", "RS106HBA", "RS503HBA"], n_channels=8,
        duration_h=0.5, interval_s=60.0, n_sources=2, sefd_jy=1e-6, rfi_occupancy=0.05,
    )  # fmt: skip
    out = tmp_path_factory.mktemp("sim")
    return simulate(params, out), params


def test_simulate_writes_archives_sheet_and_truth(small_obs) -> None:
    out, params = small_obs
    sheet = (out / "observations.tsv").read_text().splitlines()
    assert sheet[0].split("\t") == ["observation", "role", "subband", "calibrator", "path", "did"]
    tar = "L700000_SB000_uv.MS.tar"
    assert sheet[1].split("\t") == ["L700000", "calibrator", "000", "", tar, f"lofar:{tar}"]
    assert sheet[2].split("\t")[3] == "L700000"
    for obsid in (params.calibrator_obsid, params.target_obsid):
        with tarfile.open(out / f"{ms_name(obsid, 0)}.tar") as tar:
            names = tar.getnames()
        assert f"{ms_name(obsid, 0)}/table.dat" in names
        assert f"{ms_name(obsid, 0)}/ANTENNA/table.dat" in names
        rfi = truth.read_rfi(out / "truth", ms_name(obsid, 0))
        assert rfi.mask.shape == (30, 8)
    g = truth.read_gains(out / "truth")
    assert g.gains.shape == (30, 4, 2) and g.stations == params.stations
    assert len(truth.read_target_sources(out / "truth")) == 2
    assert truth.read_parameters(out / "truth")["n_channels"] == 8


def test_simulated_visibilities_follow_the_measurement_equation(small_obs, tmp_path) -> None:
    """Noise-free clean cells of the calibrator beam equal g_p * S(f) * conj(g_q)."""
    from casacore import tables

    out, params = small_obs
    name = ms_name(params.calibrator_obsid, 0)
    with tarfile.open(out / f"{name}.tar") as tar:
        tar.extractall(tmp_path, filter="data")
    with tables.table(str(tmp_path / name), ack=False) as t:
        data = t.getcol("DATA")
        a1, a2 = t.getcol("ANTENNA1"), t.getcol("ANTENNA2")
    with tables.table(str(tmp_path / name / "SPECTRAL_WINDOW"), ack=False) as t:
        freqs = t.getcol("CHAN_FREQ")[0]
    g = truth.read_gains(out / "truth").gains
    mask = truth.read_rfi(out / "truth", name).mask
    nbl = len(a1) // len(g)
    data = data.reshape(len(g), nbl, len(freqs), 4)
    a1, a2 = a1[:nbl], a2[:nbl]
    flux = (
        params.calibrator_flux_jy * (freqs / params.ref_freq_hz) ** params.calibrator_spectral_index
    )
    cross = a1 != a2
    expect = g[:, a1, 0][..., None] * flux * np.conj(g[:, a2, 0])[..., None]
    clean = ~mask[:, None, :]
    got = data[..., 0]
    assert np.allclose(got[:, cross][np.broadcast_to(clean, got[:, cross].shape)],
                       expect[:, cross][np.broadcast_to(clean, got[:, cross].shape)],
                       rtol=1e-4)  # fmt: skip
    assert np.abs(data[..., 1][:, cross]).max() < 1e-3 or mask.any()


def test_same_params_same_files(tmp_path: Path) -> None:
    params = SimulationParams(stations=["CS001HBA0", "RS106HBA", "RS503HBA"], n_channels=4,
                              duration_h=0.1, n_sources=1)  # fmt: skip
    a = simulate(params, tmp_path / "a")
    b = simulate(params, tmp_path / "b")
    for name in ("gains.npz", "target_sources.csv"):
        assert (a / "truth" / name).read_bytes() == (b / "truth" / name).read_bytes()


def test_a_simulation_is_recognised_by_its_recorded_parameters(tmp_path: Path) -> None:
    """`demo` simulates again only when the data hold another simulation; one recorded before
    a field existed holds that field's default."""
    params = SimulationParams(seed=3)
    assert not simulated_with(tmp_path, params)
    (tmp_path / "truth").mkdir()
    recorded = json.loads(json.dumps(asdict(params))) | {"noise_sigma_jy": 1.0}
    (tmp_path / "truth" / truth.PARAMETERS).write_text(json.dumps(recorded))
    assert simulated_with(tmp_path, params)
    assert not simulated_with(tmp_path, replace(params, seed=4))
    older = {k: v for k, v in recorded.items() if not k.startswith("survey_")}
    (tmp_path / "truth" / truth.PARAMETERS).write_text(json.dumps(older))
    assert simulated_with(tmp_path, params)
    assert not simulated_with(tmp_path, replace(params, survey_flux_error=0.2))
