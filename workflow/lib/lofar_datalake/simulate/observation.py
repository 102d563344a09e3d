"""Simulate a LOFAR HBA observation: a calibrator beam and a target beam, with known truth."""

from __future__ import annotations

import json
import math
import shutil
import tarfile
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import corrupt, truth
from .beam_truth import beam_response
from .frequency_gains import StationEffects
from .ms import Layout, antenna_uvw, write_ms
from .sky import Source, as_surveyed, lmn, random_field, write_skymodel, write_sources_csv
from .station_beam import StationBeam
from .stations import DEFAULT_STATIONS, station_positions

C = 299792458.0
LOFAR_LON_DEG = 6.8698  # core longitude, for the time of transit
SUBBAND_WIDTH = 200e6 / 1024  # HBA, 200 MHz clock
HBA_LOW_START = 100e6  # second Nyquist zone: subband N is centred on 100 MHz + N * SUBBAND_WIDTH
HBA_LOW_SUBBANDS = 512
SURVEY_SKYMODEL = "survey.skymodel"


@dataclass
class SimulationParams:
    """Everything that defines a simulated observation; identical params give identical files."""

    seed: int = 1  # corruptions: gains, noise, RFI, bandpass, clocks, TEC
    sky_seed: int = 1  # target field
    calibrator_obsid: int = 700000
    target_obsid: int = 700001
    stations: list[str] = field(default_factory=lambda: list(DEFAULT_STATIONS))
    n_subbands: int = 1
    first_subband: int = 256  # HBA subband number of SB000 (256 = 150 MHz)
    subband_step: int = 1  # SB001 is first_subband + subband_step, and so on (`subbands_across`)
    n_channels: int = 64
    duration_h: float = 8.0
    interval_s: float = 60.0
    date: str = "2024-03-20"  # the track is centred on the target's transit that day
    calibrator_name: str = "3C196"
    calibrator_ra_deg: float = 123.4000  # 08:13:36.0
    calibrator_dec_deg: float = 48.2175  # +48:13:03
    calibrator_flux_jy: float = 83.1  # at 150 MHz, single power law
    calibrator_spectral_index: float = -0.8
    target_ra_deg: float = 131.25
    target_dec_deg: float = 52.0
    n_sources: int = 8
    field_radius_deg: float = 0.3
    flux_range_jy: tuple[float, float] = (0.25, 2.5)
    min_separation_deg: float = 0.05
    sefd_jy: float = 3000.0  # HBA core station near 150 MHz
    rfi_occupancy: float = 0.025  # LOFAR HBA loses ~2-3 % of its data to RFI
    ref_freq_hz: float = 150e6
    # Frequency-dependent station gains (`frequency_gains`), all off by default:
    bandpass_ripple: float = 0.0  # peak fractional ripple of each station's bandpass, e.g. 0.15
    clock_rms_ns: float = 0.0  # station clock offsets, e.g. 10
    tec_rms: float = 0.0  # differential TEC in TECU, drifting in time, e.g. 0.05
    target_tec_rms: float = 0.0  # TECU the target's direction adds to it, e.g. 0.01
    bandpass_phase_rad: float | None = None  # peak bandpass phase ripple; None: bandpass_ripple
    # False: the drifting gains change amplitude only, so a station's instrumental phase is its
    # clock alone, as the clock/TEC model of LINC's calibrator pipeline assumes.
    gain_phases: bool = True
    # LOFAR's station beam (EveryBeam) on every source, and the beam tables in the MS
    # (`station_beam`, `beam_tables`).
    station_beam: bool = False
    # The target field as a survey lists it (survey.skymodel, `sky.as_surveyed`), for the
    # target's first phase calibration (config calibration.selfcal.skymodel).
    survey_position_error_arcsec: float = 1.0
    survey_flux_error: float = 0.1


def transit_start_mjd_s(date: str, ra_deg: float, duration_h: float) -> float:
    """Start time (MJD seconds) of a track of `duration_h` centred on the transit of `ra_deg`."""
    y, m, d = (int(x) for x in date.split("-"))
    # Julian date at 0h UTC (Fliegel & Van Flandern)
    jdn = (1461 * (y + 4800 + (m - 14) // 12)) // 4 + (367 * (m - 2 - 12 * ((m - 14) // 12))) // 12
    jdn -= (3 * ((y + 4900 + (m - 14) // 12) // 100)) // 4 - d + 32075
    jd0 = jdn - 0.5
    gmst0 = 18.697374558 + 24.06570982441908 * (jd0 - 2451545.0)
    lst0 = (gmst0 + LOFAR_LON_DEG / 15.0) % 24.0
    ut_transit = ((ra_deg / 15.0 - lst0) % 24.0) / 1.00273790935
    return (jd0 - 2400000.5) * 86400.0 + (ut_transit - duration_h / 2) * 3600.0


def channel_freqs(subband: int, n_channels: int) -> np.ndarray:
    """Channel centres (Hz) of HBA subband number `subband` split into `n_channels`."""
    start = HBA_LOW_START + (subband - 0.5) * SUBBAND_WIDTH
    return start + SUBBAND_WIDTH / n_channels * (np.arange(n_channels) + 0.5)


def subbands_across(lo_hz: float, hi_hz: float, n: int) -> tuple[int, int]:
    """(first_subband, subband_step) of `n` whole subbands spread evenly over lo_hz-hi_hz."""
    if not HBA_LOW_START <= lo_hz < hi_hz <= HBA_LOW_START + HBA_LOW_SUBBANDS * SUBBAND_WIDTH:
        raise ValueError(f"{lo_hz / 1e6:g}-{hi_hz / 1e6:g} MHz: not within HBA-low (100-200 MHz)")
    first = math.ceil((lo_hz - HBA_LOW_START) / SUBBAND_WIDTH + 0.5)
    last = math.floor((hi_hz - HBA_LOW_START) / SUBBAND_WIDTH - 0.5)
    if n < 1 or last - first + 1 < n:
        raise ValueError(f"{n} subbands do not fit in {lo_hz / 1e6:g}-{hi_hz / 1e6:g} MHz")
    if n == 1:
        return (first + last) // 2, 1
    step = (last - first) // (n - 1)
    return first + (last - first - step * (n - 1)) // 2, step  # centred in the band


def linc_params(**fields: object) -> SimulationParams:
    """An observation for LOFAR's calibrator strategy (config calibration.strategy linc).

    8 subbands spread over 120-180 MHz (16 channels each); per station a bandpass (15 % ripple
    in amplitude, 0.02 rad in phase), a clock offset (10 ns rms) and the calibrator's
    differential TEC (0.05 TECU rms, drifting over hours), on top of drifting gain amplitudes;
    the target's direction adds 0.01 TECU rms of its own. `fields` override any of these.
    """
    first, step = subbands_across(120e6, 180e6, 8)
    preset: dict[str, object] = {
        "n_subbands": 8, "first_subband": first, "subband_step": step, "n_channels": 16,
        "bandpass_ripple": 0.15, "bandpass_phase_rad": 0.02, "clock_rms_ns": 10.0,
        "tec_rms": 0.05, "target_tec_rms": 0.01, "gain_phases": False,
    }  # fmt: skip
    return SimulationParams(**(preset | fields))  # type: ignore[arg-type]


def subband_numbers(params: SimulationParams) -> list[int]:
    return [params.first_subband + k * params.subband_step for k in range(params.n_subbands)]


def ms_name(obsid: int, sb: int) -> str:
    return f"L{obsid}_SB{sb:03d}_uv.MS"


def predict(
    layout: Layout, uvw_ant: np.ndarray, sources: list[Source], gains: np.ndarray
) -> np.ndarray:
    """Corrupted model visibilities, (ntime, nbl, nchan, 4): V_pq = g_p (sum_s I_s K_s) g_q^*.

    `gains` is (ntime, nant, nchan or 1, 2): per channel, or the same at every channel.

    With UVW = uvw(ant2) - uvw(ant1), the sign convention is exp(+2 pi i (ul + vm + w(n-1))/lambda),
    the one DP3 and WSClean use.
    """
    a1, a2 = layout.baselines
    uvw = uvw_ant[:, a2] - uvw_ant[:, a1]  # (ntime, nbl, 3)
    ntime, nbl = uvw.shape[:2]
    scale = layout.freqs / C  # (nchan,)
    vis = np.zeros((ntime, nbl, len(layout.freqs)), dtype=np.complex128)
    for s in sources:
        ll, mm, nn = lmn(layout.ra, layout.dec, math.radians(s.ra_deg), math.radians(s.dec_deg))
        path = uvw[..., 0] * ll + uvw[..., 1] * mm + uvw[..., 2] * (nn - 1.0)
        vis += s.flux_at(layout.freqs) * np.exp(2j * np.pi * path[..., None] * scale)
    out = np.zeros((ntime, nbl, len(layout.freqs), 4), dtype=np.complex64)
    for k, pol in ((0, 0), (3, 1)):  # XX, YY; unpolarised sky: XY = YX = 0
        g = gains[..., pol]  # (ntime, nant, nchan or 1)
        out[..., k] = vis * (g[:, a1] * np.conj(g[:, a2]))
    return out


def station_gains(
    gains: np.ndarray, effects: StationEffects, freqs: np.ndarray, target: bool = False
) -> np.ndarray:
    """(ntime, nant, nchan or 1, 2): the drifting gains times the frequency-dependent effects
    (in the target's direction if `target`)."""
    factor = effects.factor(freqs, target)
    return gains[:, :, None, :] if factor is None else gains[:, :, None, :] * factor


def _write_effects_truth(
    truth_dir: Path, effects: StationEffects, stations: list[str], times: np.ndarray,
    freqs: np.ndarray,
) -> None:  # fmt: skip
    """The effects switched on, in the units a calibration reports: ns, TECU, complex gain."""
    if effects.bandpass is not None:
        truth.write_bandpass(truth_dir, truth.Bandpass(freqs, stations, effects.bandpass.at(freqs)))
    if effects.clock_ns is not None:
        truth.write_clock(truth_dir, truth.Clock(stations, stations[0], effects.clock_ns))
    if effects.tec is not None:
        truth.write_tec(truth_dir, truth.Tec(times, stations, stations[0], effects.tec))
    if effects.target_tec is not None:
        extra = truth.Tec(times, stations, stations[0], effects.target_tec)
        truth.write_tec(truth_dir, extra, truth.TARGET_TEC)


def _write_beam(
    params: SimulationParams,
    rng: np.random.Generator,
    layout: Layout,
    sources: list[Source],
    gains: np.ndarray,
    name: str,
    out_dir: Path,
    truth_dir: Path,
    sigma: float,
    beam: StationBeam | None = None,
) -> None:
    uvw_ant = antenna_uvw(layout)
    if beam is None:
        data = predict(layout, uvw_ant, sources, gains)
    else:
        data = beam.predict(layout, uvw_ant, sources, gains)
    a1, a2 = layout.baselines
    auto = a1 == a2
    # Autocorrelations carry the system noise power, as in real data.
    power = params.sefd_jy * np.abs(gains[:, a1]) ** 2
    for k, pol in ((0, 0), (3, 1)):
        corr = data[..., k]
        corr[:, auto, :] += power[..., pol][:, auto]
    corrupt.add_noise(rng, data, sigma)
    mask, amp = corrupt.rfi_events(rng, len(layout.times), len(layout.freqs), params.rfi_occupancy)
    corrupt.add_rfi(rng, data, a1, a2, amp, sigma)
    uvw = (uvw_ant[:, a2] - uvw_ant[:, a1]).reshape(-1, 3)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        ms = Path(tmp) / name
        write_ms(ms, layout, data.reshape(-1, len(layout.freqs), 4), uvw, beam is not None)
        with tarfile.open(out_dir / f"{name}.tar", "w") as tar:
            tar.add(ms, arcname=name)
    truth.write_rfi(truth_dir, name, truth.RfiMask(layout.times, layout.freqs, mask))


def simulated_with(out_dir: Path, params: SimulationParams) -> bool:
    """Whether `out_dir` holds the simulation of `params` (its truth records them)."""
    recorded = out_dir / "truth" / truth.PARAMETERS
    if not recorded.exists():
        return False
    saved = json.loads(recorded.read_text())
    wanted = json.loads(json.dumps(asdict(params)))  # tuples as JSON lists, as saved
    # A field newer than the simulation counts as its default, which is what it did before
    # (its archives cannot be made again byte for byte: they carry the files' times).
    default = json.loads(json.dumps(asdict(SimulationParams())))
    return all(saved.get(key, default[key]) == value for key, value in wanted.items())


def simulate(params: SimulationParams, out_dir: Path) -> Path:
    """Write the observation's `.tar` subbands, calibrator sky model, the field's survey sky
    model, sheet and truth to out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    truth_dir = out_dir / "truth"
    if truth_dir.exists():
        shutil.rmtree(truth_dir)
    truth_dir.mkdir()
    rng = np.random.default_rng(params.seed)
    positions = station_positions(params.stations)
    ntime = round(params.duration_h * 3600 / params.interval_s)
    start = transit_start_mjd_s(params.date, params.target_ra_deg, params.duration_h)
    times = start + params.interval_s * (np.arange(ntime) + 0.5)
    gains = corrupt.drifting_gains(rng, times, len(params.stations), params.gain_phases)
    truth.write_gains(truth_dir, truth.Gains(times, list(params.stations), gains))
    effects = StationEffects.draw(
        params.seed, times, len(params.stations), params.bandpass_ripple, params.clock_rms_ns,
        params.tec_rms, params.target_tec_rms, params.bandpass_phase_rad,
    )  # fmt: skip

    beam = StationBeam(params.stations, times) if params.station_beam else None

    calibrator = [
        Source(
            params.calibrator_name,
            params.calibrator_ra_deg,
            params.calibrator_dec_deg,
            params.calibrator_flux_jy,
            params.calibrator_spectral_index,
            params.ref_freq_hz,
        )
    ]
    targets = random_field(
        params.sky_seed,
        params.target_ra_deg,
        params.target_dec_deg,
        params.n_sources,
        params.field_radius_deg,
        params.flux_range_jy,
        params.min_separation_deg,
        params.ref_freq_hz,
    )
    write_skymodel(out_dir / "calibrator.skymodel", calibrator)
    write_sources_csv(truth_dir / truth.CALIBRATOR_SOURCES, calibrator)
    write_sources_csv(truth_dir / truth.TARGET_SOURCES, targets)
    surveyed = as_surveyed(
        targets, params.sky_seed, params.survey_position_error_arcsec, params.survey_flux_error
    )
    write_skymodel(out_dir / SURVEY_SKYMODEL, surveyed)

    chan_width = SUBBAND_WIDTH / params.n_channels
    sigma = float(corrupt.noise_sigma(params.sefd_jy, chan_width, params.interval_s))
    rows = ["observation\trole\tsubband\tcalibrator\tpath\tdid"]
    numbers = subband_numbers(params)
    for sb, number in enumerate(numbers):
        freqs = channel_freqs(number, params.n_channels)
        beams = (
            ("calibrator", params.calibrator_obsid, calibrator, params.calibrator_ra_deg,
             params.calibrator_dec_deg),
            ("target", params.target_obsid, targets, params.target_ra_deg, params.target_dec_deg),
        )  # fmt: skip
        for role, obsid, sky, ra, dec in beams:
            layout = Layout(
                tuple(params.stations), positions, times, params.interval_s, freqs, chan_width,
                math.radians(ra), math.radians(dec), sky[0].name if role == "calibrator" else role,
            )  # fmt: skip
            name = ms_name(obsid, sb)
            sb_gains = station_gains(gains, effects, freqs, target=role == "target")
            _write_beam(params, rng, layout, sky, sb_gains, name, out_dir, truth_dir, sigma, beam)
            cal = f"L{params.calibrator_obsid}" if role == "target" else ""
            rows.append(f"L{obsid}\t{role}\t{sb:03d}\t{cal}\t{name}.tar\tlofar:{name}.tar")
    (out_dir / "observations.tsv").write_text("\n".join(rows) + "\n")
    all_freqs = np.concatenate([channel_freqs(n, params.n_channels) for n in numbers])
    _write_effects_truth(truth_dir, effects, list(params.stations), times, all_freqs)
    if beam is not None:
        pointing = (math.radians(params.target_ra_deg), math.radians(params.target_dec_deg))
        centres = np.array([channel_freqs(n, params.n_channels).mean() for n in numbers])
        response = beam_response(beam, targets, pointing, centres, params.ref_freq_hz)
        truth.write_beam_response(truth_dir, response)
    meta = asdict(params) | {"noise_sigma_jy": sigma, "channel_width_hz": chan_width,
                             "subband_numbers": numbers}  # fmt: skip
    (truth_dir / truth.PARAMETERS).write_text(json.dumps(meta, indent=2) + "\n")
    return out_dir
