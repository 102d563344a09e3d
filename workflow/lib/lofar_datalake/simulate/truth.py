"""Truth files written next to a simulated observation, and their readers.

A station's gain at time t and frequency nu is the product of the drifting gains (`gains.npz`,
the same at every frequency) and, where the simulation switched them on, the bandpass, the clock
phase 2 pi nu tau and the TEC phase -8.44797245e9 dTEC / nu. In the target's direction the TEC is
`tec.npz` plus `target_tec.npz`. With the station beam on, `station_beam.npz` holds what the
beam does to each target source (the gains stay the instrumental ones: the beam is the sky's).
The files of effects that were off are not written and their readers return None.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .sky import Source, read_sources_csv

TARGET_SOURCES = "target_sources.csv"
CALIBRATOR_SOURCES = "calibrator_sources.csv"
GAINS = "gains.npz"
BANDPASS = "bandpass.npz"
CLOCK = "clock.npz"
TEC = "tec.npz"
TARGET_TEC = "target_tec.npz"  # what the target's direction adds to TEC
PARAMETERS = "simulation.json"
STATION_BEAM = "station_beam.npz"  # with the station beam on: its effect on the target


def rfi_name(ms_name: str) -> str:
    return f"rfi_{ms_name.removesuffix('.MS').removesuffix('_uv')}.npz"


@dataclass(frozen=True)
class Gains:
    """The drifting station gains, the same at every frequency."""

    times: np.ndarray  # (ntime,) MJD s
    stations: list[str]
    gains: np.ndarray  # (ntime, nant, 2) complex, X and Y


@dataclass(frozen=True)
class Bandpass:
    """Station bandpasses at every simulated channel, all subbands (a factor of the gains)."""

    freqs: np.ndarray  # (nfreq,) Hz
    stations: list[str]
    bandpass: np.ndarray  # (nfreq, nant, 2) complex, X and Y; phase zero at the reference


@dataclass(frozen=True)
class Clock:
    """Constant station clock offsets: phase 2 pi nu tau."""

    stations: list[str]
    reference: str  # the station whose offset is zero, the others' are relative to it
    clock_ns: np.ndarray  # (nant,)


@dataclass(frozen=True)
class Tec:
    """Differential TEC per station and time: phase -8.44797245e9 dTEC / nu (nu in Hz)."""

    times: np.ndarray  # (ntime,) MJD s, those of the gains
    stations: list[str]
    reference: str
    tec: np.ndarray  # (ntime, nant) TECU


@dataclass(frozen=True)
class RfiMask:
    times: np.ndarray
    freqs: np.ndarray
    mask: np.ndarray  # (ntime, nchan) bool, on every cross-correlation


def write_gains(truth_dir: Path, gains: Gains) -> None:
    np.savez_compressed(
        truth_dir / GAINS, times=gains.times, stations=np.array(gains.stations), gains=gains.gains
    )


def read_gains(truth_dir: Path) -> Gains:
    with np.load(truth_dir / GAINS) as z:
        return Gains(z["times"], [str(s) for s in z["stations"]], z["gains"])


def write_bandpass(truth_dir: Path, bandpass: Bandpass) -> None:
    stations = np.array(bandpass.stations)
    np.savez_compressed(
        truth_dir / BANDPASS, freqs=bandpass.freqs, stations=stations, bandpass=bandpass.bandpass
    )


def read_bandpass(truth_dir: Path) -> Bandpass | None:
    """The bandpasses, or None if the simulation had none (flat)."""
    if not (truth_dir / BANDPASS).exists():
        return None
    with np.load(truth_dir / BANDPASS) as z:
        return Bandpass(z["freqs"], [str(s) for s in z["stations"]], z["bandpass"])


def write_clock(truth_dir: Path, clock: Clock) -> None:
    np.savez_compressed(truth_dir / CLOCK, stations=np.array(clock.stations),
                        reference=np.array(clock.reference), clock_ns=clock.clock_ns)  # fmt: skip


def read_clock(truth_dir: Path) -> Clock | None:
    """The clock offsets, or None if the simulation had none."""
    if not (truth_dir / CLOCK).exists():
        return None
    with np.load(truth_dir / CLOCK) as z:
        return Clock([str(s) for s in z["stations"]], str(z["reference"]), z["clock_ns"])


def write_tec(truth_dir: Path, tec: Tec, name: str = TEC) -> None:
    np.savez_compressed(truth_dir / name, times=tec.times, stations=np.array(tec.stations),
                        reference=np.array(tec.reference), tec=tec.tec)  # fmt: skip


def read_tec(truth_dir: Path, name: str = TEC) -> Tec | None:
    """The differential TEC (`TARGET_TEC`: the target's extra), or None if the simulation had
    none."""
    if not (truth_dir / name).exists():
        return None
    with np.load(truth_dir / name) as z:
        return Tec(z["times"], [str(s) for s in z["stations"]], str(z["reference"]), z["tec"])


def clock_on(truth_dir: Path, stations: list[str]) -> np.ndarray | None:
    """The true clocks (ns) of `stations`, in their order; None if the simulation had none."""
    clock = read_clock(truth_dir)
    return None if clock is None else clock.clock_ns[[clock.stations.index(s) for s in stations]]


def tec_on(
    truth_dir: Path, stations: list[str], times: np.ndarray, name: str = TEC
) -> np.ndarray | None:
    """The true dTEC (time, station) of `stations` at the truth's times nearest `times` (MJD s)
    (`TARGET_TEC`: the target's extra); None if the simulation had none."""
    tec = read_tec(truth_dir, name)
    if tec is None:
        return None
    nearest = np.abs(tec.times[None, :] - np.asarray(times)[:, None]).argmin(axis=1)
    return tec.tec[nearest][:, [tec.stations.index(s) for s in stations]]


def write_rfi(truth_dir: Path, ms_name: str, rfi: RfiMask) -> None:
    np.savez_compressed(
        truth_dir / rfi_name(ms_name), times=rfi.times, freqs=rfi.freqs, mask=rfi.mask
    )


def read_rfi(truth_dir: Path, ms_name: str) -> RfiMask:
    with np.load(truth_dir / rfi_name(ms_name)) as z:
        return RfiMask(z["times"], z["freqs"], z["mask"])


def read_target_sources(truth_dir: Path) -> list[Source]:
    return read_sources_csv(truth_dir / TARGET_SOURCES)


def read_parameters(truth_dir: Path) -> dict[str, Any]:
    return json.loads((truth_dir / PARAMETERS).read_text())


@dataclass(frozen=True)
class BeamResponse:
    """What the station beam (`station_beam` on) does to each target source.

    With E_p(d) station p's Jones response towards d and R_pq(d) = Re tr(E_p(d) E_q(d)^H) / 2 a
    baseline's Stokes I response, `attenuation[s, k]` is the mean of R_pq(s) / R_pq(c) (c the
    phase centre) over the cross-correlation baselines and the beam's time grid, at the subband
    centre `freqs[k]`: what a source keeps of its flux once the data are corrected for the beam
    at the phase centre. `centre_response[k]` is the mean of R_pq(c): what a source at the phase
    centre keeps without any beam correction (EveryBeam's beam is not normalised there).
    """

    sources: list[str]
    freqs: np.ndarray  # (nfreq,) Hz, subband centres
    attenuation: np.ndarray  # (nsource, nfreq)
    centre_response: np.ndarray  # (nfreq,)
    half_power_radius_deg: float  # of a station's Stokes I power, at ref_freq_hz
    ref_freq_hz: float

    @property
    def band_attenuation(self) -> np.ndarray:
        """(nsource,) `attenuation` averaged over the subbands."""
        return np.asarray(self.attenuation.mean(axis=1))


def write_beam_response(truth_dir: Path, beam: BeamResponse) -> None:
    np.savez_compressed(
        truth_dir / STATION_BEAM, sources=np.array(beam.sources), freqs=beam.freqs,
        attenuation=beam.attenuation, centre_response=beam.centre_response,
        half_power_radius_deg=beam.half_power_radius_deg, ref_freq_hz=beam.ref_freq_hz,
    )  # fmt: skip


def read_beam_response(truth_dir: Path) -> BeamResponse | None:
    """The station beam's effect on the target's sources, or None if the beam was off."""
    if not (truth_dir / STATION_BEAM).exists():
        return None
    with np.load(truth_dir / STATION_BEAM) as z:
        return BeamResponse([str(s) for s in z["sources"]], z["freqs"], z["attenuation"],
                            z["centre_response"], float(z["half_power_radius_deg"]),
                            float(z["ref_freq_hz"]))  # fmt: skip
