"""LOFAR's station beam on the simulated sky: each source s reaches station p through the station's
2x2 Jones response E_p(s, t, nu), so V_pq = g_p (sum_s S_s K_s E_p(s) E_q(s)^H) g_q^H.

E is EveryBeam's full LOFAR beam (Hamaker element response times the tile and station array
factors, both pointed at the phase centre), unnormalised and with the parallactic rotation, as DP3
evaluates it for `applybeam` and `usebeammodel=true`. EveryBeam reads the stations from a
Measurement Set, so the beam is loaded from a one-timeslot Measurement Set carrying the same beam
tables (`beam_tables`) as the simulated ones.

The beam changes slowly, so it is evaluated at some timeslots (nodes) and FREQS_PER_SUBBAND
frequencies across each subband, and interpolated linearly to every timeslot and channel. Nodes
are at most TIME_STEP_S apart, and closer where the source or the phase centre passes near a
station's zenith: there EveryBeam's element response changes fast (its Hamaker model is a
polynomial in the zenith angle, which has a kink at the zenith), so a node follows wherever the
sky has turned by more than ZENITH_FRACTION of that zenith distance since the last one.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .beam_tables import antenna_field
from .ms import Layout, write_ms
from .sky import Source, lmn
from .stations import station_positions

C = 299792458.0
TIME_STEP_S = 600.0
ZENITH_FRACTION = 0.5
FREQS_PER_SUBBAND = 3
TIME_CHUNK = 32  # timeslots predicted at once: bounds the memory of the baseline products


def data_dir() -> Path:
    """Where the everybeam wheel installs the element response coefficients. EveryBeam (the
    wheel's and the one inside the dp3 wheel) finds them only through EVERYBEAM_DATADIR (or an
    activated virtual environment's VIRTUAL_ENV)."""
    return Path(sys.prefix) / "share" / "everybeam"


def _interpolate(values: np.ndarray, nodes: np.ndarray, points: np.ndarray, axis: int
                 ) -> np.ndarray:  # fmt: skip
    """Linear interpolation of `values` from `nodes` to `points` along `axis`."""
    if len(nodes) == 1:
        return np.repeat(values, len(points), axis=axis)
    i = np.clip(np.searchsorted(nodes, points) - 1, 0, len(nodes) - 2)
    shape = [1] * values.ndim
    shape[axis] = -1
    w = ((points - nodes[i]) / (nodes[i + 1] - nodes[i])).reshape(shape)
    return np.take(values, i, axis=axis) * (1 - w) + np.take(values, i + 1, axis=axis) * w


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle (rad) between unit vectors, along the last axis."""
    return np.arccos(np.clip(np.sum(a * b, axis=-1), -1.0, 1.0))


def coherency(ep: np.ndarray, eq: np.ndarray) -> np.ndarray:
    """E_p E_q^H of stacked 2 x n matrices: for Jones matrices, what an unpolarised unit
    source gives."""
    return np.einsum("...ij,...kj->...ik", ep, np.conj(eq))


class StationBeam:
    """EveryBeam's LOFAR beam of the simulated stations over the observation's timeslots."""

    def __init__(self, stations: Sequence[str], times: np.ndarray) -> None:
        self.stations = list(stations)
        self.times = np.asarray(times, dtype=float)
        self.telescope = _load_telescope(self.stations, float(times[0]))
        self._normals = np.array([antenna_field(s).axes[2] for s in self.stations])
        self._itrf: dict[tuple[float, float], np.ndarray] = {}

    def direction(self, ra: float, dec: float) -> np.ndarray:
        """(ntime, 3) ITRF unit vectors of (ra, dec) (J2000, rad) at every timeslot."""
        if (ra, dec) not in self._itrf:
            self._itrf[(ra, dec)] = itrf_directions(self.times, ra, dec)
        return self._itrf[(ra, dec)]

    def nodes(self, *directions: np.ndarray) -> np.ndarray:
        """Indices of the timeslots at which to evaluate the beam towards `directions` (each
        (ntime, 3) ITRF)."""
        zenith = np.min([_angle(d[:, None], self._normals).min(axis=1) for d in directions], 0)
        turned = np.concatenate([[0.0], np.cumsum(_angle(directions[0][1:], directions[0][:-1]))])
        out = [0]
        for k in range(1, len(self.times)):
            last = out[-1]
            near = turned[k] - turned[last] > ZENITH_FRACTION * zenith[last : k + 1].min()
            if near or self.times[k] - self.times[last] > TIME_STEP_S:
                out.append(max(k - 1, last + 1))
        if out[-1] != len(self.times) - 1:
            out.append(len(self.times) - 1)
        return np.array(out)

    def response(self, time: float, freqs: np.ndarray, source: np.ndarray, centre: np.ndarray
                 ) -> np.ndarray:  # fmt: skip
        """(nant, nfreq, 2, 2) Jones matrices at `time` towards the ITRF unit vector `source`,
        station and tile beams pointed at `centre`."""
        stations = np.arange(len(self.stations), dtype=np.uint64)
        freqs = np.asarray(freqs, dtype=float)
        return self.telescope.station_response(np.array([time]), stations, freqs, source, centre,
                                               centre)[0]  # fmt: skip

    def grid(self, freqs: np.ndarray, ra: float, dec: float, pointing: tuple[float, float],
             index: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
        """(ntime, nant, nfreq, 2, 2) Jones matrices towards (ra, dec) (J2000, rad), beams at
        `pointing`, at the timeslots `index` (default: all) and `freqs` (Hz)."""
        source, centre = self.direction(ra, dec), self.direction(*pointing)
        rows = np.arange(len(self.times)) if index is None else index
        return np.stack([self.response(self.times[k], freqs, source[k], centre[k])
                         for k in rows])  # fmt: skip

    def jones(self, layout: Layout, source: Source) -> np.ndarray:
        """(ntime, nant, nchan, 2, 2) response towards `source` at every timeslot and channel of
        `layout` (whose times are the beam's)."""
        ra, dec = math.radians(source.ra_deg), math.radians(source.dec_deg)
        index = self.nodes(self.direction(ra, dec), self.direction(layout.ra, layout.dec))
        freqs = layout.freqs
        if len(freqs) > 1:
            freqs = np.linspace(freqs[0], freqs[-1], FREQS_PER_SUBBAND)
        coarse = self.grid(freqs, ra, dec, (layout.ra, layout.dec), index)
        fine = _interpolate(coarse, self.times[index], layout.times, axis=0)
        # single precision: as precise as the written DATA, and half the cost downstream
        return _interpolate(fine, freqs, layout.freqs, axis=2).astype(np.complex64)

    def predict(self, layout: Layout, uvw_ant: np.ndarray, sources: list[Source],
                gains: np.ndarray) -> np.ndarray:  # fmt: skip
        """Corrupted model visibilities (ntime, nbl, nchan, 4), as `observation.predict` but with
        each source seen through the station beam: g_p (sum_s S_s K_s E_p E_q^H) g_q^H.

        K_s = k_p conj(k_q) with k_p = exp(-2 pi i uvw_p . (l, m, n - 1) nu / c), so each station
        carries J_p = g_p sqrt(S_s) k_p E_p for every source (a 2 x 2N matrix) and the
        visibilities are J_p J_q^H, the sum over sources done by the one product.
        """
        a1, a2 = layout.baselines
        shape = (len(layout.times), len(layout.station_names), len(layout.freqs), 2)
        terms = np.empty((*shape, 2 * len(sources)), dtype=np.complex64)
        for i, s in enumerate(sources):
            ll, mm, nn = lmn(layout.ra, layout.dec, math.radians(s.ra_deg),
                             math.radians(s.dec_deg))  # fmt: skip
            path = uvw_ant @ np.array([ll, mm, nn - 1.0])  # (ntime, nant)
            phasor = np.exp(-2j * np.pi * path[..., None] * layout.freqs / C)
            phasor *= np.sqrt(s.flux_at(layout.freqs))
            terms[..., 2 * i : 2 * i + 2] = phasor[..., None, None] * self.jones(layout, s)
        terms *= gains[..., None]  # the receptor (row) of each Jones matrix
        out = np.empty((len(layout.times), len(a1), len(layout.freqs), 4), dtype=np.complex64)
        for start in range(0, len(layout.times), TIME_CHUNK):
            chunk = terms[start : start + TIME_CHUNK]
            coh = coherency(chunk[:, a1], chunk[:, a2])
            out[start : start + TIME_CHUNK] = coh.reshape((*coh.shape[:3], 4))
        return out


def itrf_directions(times: np.ndarray, ra: float, dec: float) -> np.ndarray:
    """(ntime, 3) ITRF unit vectors of the J2000 direction (ra, dec) at `times` (MJD s), as seen
    from LOFAR's core."""
    from casacore.measures import measures
    from casacore.quanta import quantity

    dm = measures()
    dm.do_frame(dm.observatory("LOFAR"))
    direction = dm.direction("J2000", quantity(ra, "rad"), quantity(dec, "rad"))
    out = np.empty((len(times), 3))
    for i, t in enumerate(times):
        dm.do_frame(dm.epoch("UTC", quantity(float(t), "s")))
        itrf = dm.measure(direction, "ITRF")
        lon, lat = itrf["m0"]["value"], itrf["m1"]["value"]
        out[i] = (math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat))
    return out


@contextmanager
def _coefficients() -> Iterator[None]:
    """EVERYBEAM_DATADIR set while a telescope loads (when it reads its element coefficients),
    and as it was afterwards."""
    before = os.environ.get("EVERYBEAM_DATADIR")
    os.environ.setdefault("EVERYBEAM_DATADIR", str(data_dir()))
    try:
        yield
    finally:
        if before is None:
            del os.environ["EVERYBEAM_DATADIR"]


def _load_telescope(stations: list[str], time: float) -> Any:
    """EveryBeam's telescope from a one-timeslot, one-channel Measurement Set of `stations` (its
    pointing does not matter: every evaluation gives its own).

    EveryBeam's own casacore finds its measures data through the AIPSPATH that python-casacore
    (imported with `ms`) sets when it is imported.
    """
    import everybeam

    layout = Layout(tuple(stations), station_positions(stations), np.array([time]), 1.0,
                    np.array([150e6]), 1.0, 0.0, math.pi / 2, "beam")  # fmt: skip
    nbl = len(layout.baselines[0])
    with tempfile.TemporaryDirectory() as tmp:
        ms = Path(tmp) / "beam.MS"
        data, uvw = np.zeros((nbl, 1, 4), dtype=np.complex64), np.zeros((nbl, 3))
        write_ms(ms, layout, data, uvw, beam_tables=True)
        with _coefficients():
            return everybeam.load_telescope(str(ms))
