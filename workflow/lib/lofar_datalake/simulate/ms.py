"""Write a LOFAR-like Measurement Set with python-casacore alone."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from casacore import tables
from casacore.measures import measures
from casacore.quanta import quantity

from .beam_tables import add_beam_tables

# Linear feeds: XX, XY, YX, YY (casacore Stokes enum).
CORR_TYPES = [9, 10, 11, 12]


@dataclass(frozen=True)
class Layout:
    """The axes of one observation: stations, time grid, channels and pointing."""

    station_names: tuple[str, ...]
    positions: np.ndarray  # (nant, 3) ITRF, m
    times: np.ndarray  # (ntime,) MJD seconds, centroids
    interval: float  # s
    freqs: np.ndarray  # (nchan,) Hz
    chan_width: float  # Hz
    ra: float  # phase centre, rad
    dec: float  # rad
    field_name: str

    @property
    def baselines(self) -> tuple[np.ndarray, np.ndarray]:
        """ANTENNA1, ANTENNA2 of one timeslot, autocorrelations included (as LOFAR writes them)."""
        a1, a2 = np.triu_indices(len(self.station_names))
        return a1.astype(np.int32), a2.astype(np.int32)


def antenna_uvw(layout: Layout) -> np.ndarray:
    """(ntime, nant, 3) UVW of every station relative to the first, J2000, metres."""
    dm = measures()
    ref = layout.positions[0]
    dm.do_frame(dm.position("ITRF", *[quantity(float(v), "m") for v in ref]))
    dm.do_frame(dm.direction("J2000", quantity(layout.ra, "rad"), quantity(layout.dec, "rad")))
    rel = layout.positions - ref
    bl = dm.baseline("ITRF", *[quantity(rel[:, i].tolist(), "m") for i in range(3)])
    out = np.empty((len(layout.times), len(rel), 3))
    for i, t in enumerate(layout.times):
        dm.do_frame(dm.epoch("UTC", quantity(float(t), "s")))
        out[i] = np.asarray(dm.to_uvw(bl)["xyz"].get_value()).reshape(-1, 3)
    return out


def _subtable(ms: str, name: str, nrows: int) -> tables.table:
    sub = tables.table(f"{ms}/{name}", readonly=False, ack=False)
    sub.addrows(nrows)
    return sub


def write_ms(
    path: Path, layout: Layout, data: np.ndarray, uvw: np.ndarray, beam_tables: bool = False
) -> None:
    """Create `path` with DATA (nrow, nchan, 4), zero flags and unit weights; with `beam_tables`,
    also the LOFAR beam subtables and columns that EveryBeam reads."""
    nchan = len(layout.freqs)
    desc = tables.maketabdesc(
        [
            tables.makearrcoldesc("DATA", 0j, shape=[nchan, 4], valuetype="complex"),
            tables.makearrcoldesc("WEIGHT_SPECTRUM", 0.0, shape=[nchan, 4], valuetype="float"),
        ]
    )
    ms = str(path)
    main = tables.default_ms(ms, desc)
    a1, a2 = layout.baselines
    ntime, nbl = len(layout.times), len(a1)
    main.addrows(ntime * nbl)
    main.putcol("ANTENNA1", np.tile(a1, ntime))
    main.putcol("ANTENNA2", np.tile(a2, ntime))
    times = np.repeat(layout.times, nbl)
    for col in ("TIME", "TIME_CENTROID"):
        main.putcol(col, times)
    for col in ("INTERVAL", "EXPOSURE"):
        main.putcol(col, np.full(ntime * nbl, layout.interval))
    main.putcol("UVW", uvw)
    main.putcol("DATA", data)
    main.putcol("FLAG", np.zeros(data.shape, dtype=bool))
    main.putcol("WEIGHT_SPECTRUM", np.ones(data.shape, dtype=np.float32))
    main.putcol("WEIGHT", np.ones((ntime * nbl, 4), dtype=np.float32))
    main.putcol("SIGMA", np.ones((ntime * nbl, 4), dtype=np.float32))
    main.close()

    nant = len(layout.station_names)
    ant = _subtable(ms, "ANTENNA", nant)
    ant.putcol("NAME", list(layout.station_names))
    ant.putcol("STATION", ["LOFAR"] * nant)
    ant.putcol("POSITION", layout.positions)
    ant.putcol("DISH_DIAMETER", np.full(nant, 31.0))  # HBA sub-station diameter
    ant.putcol("TYPE", ["GROUND-BASED"] * nant)
    ant.putcol("MOUNT", ["X-Y"] * nant)
    ant.close()

    feed = _subtable(ms, "FEED", nant)
    feed.putcol("ANTENNA_ID", np.arange(nant, dtype=np.int32))
    feed.putcol("SPECTRAL_WINDOW_ID", np.full(nant, -1, dtype=np.int32))
    feed.putcol("NUM_RECEPTORS", np.full(nant, 2, dtype=np.int32))
    feed.putcol("POLARIZATION_TYPE", np.array([["X", "Y"]] * nant))
    feed.putcol("RECEPTOR_ANGLE", np.zeros((nant, 2)))
    feed.putcol("POL_RESPONSE", np.tile(np.eye(2, dtype=complex), (nant, 1, 1)))
    feed.putcol("BEAM_OFFSET", np.zeros((nant, 2, 2)))
    feed.putcol("INTERVAL", np.full(nant, 1e30))
    feed.close()

    spw = _subtable(ms, "SPECTRAL_WINDOW", 1)
    spw.putcell("CHAN_FREQ", 0, layout.freqs)
    for col in ("CHAN_WIDTH", "EFFECTIVE_BW", "RESOLUTION"):
        spw.putcell(col, 0, np.full(nchan, layout.chan_width))
    spw.putcell("NUM_CHAN", 0, nchan)
    spw.putcell("REF_FREQUENCY", 0, float(np.mean(layout.freqs)))
    spw.putcell("TOTAL_BANDWIDTH", 0, nchan * layout.chan_width)
    spw.putcell("MEAS_FREQ_REF", 0, 5)  # TOPO
    spw.putcell("NAME", 0, "SB")
    spw.close()

    pol = _subtable(ms, "POLARIZATION", 1)
    pol.putcell("NUM_CORR", 0, 4)
    pol.putcell("CORR_TYPE", 0, np.array(CORR_TYPES, dtype=np.int32))
    pol.putcell("CORR_PRODUCT", 0, np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.int32))
    pol.close()

    dd = _subtable(ms, "DATA_DESCRIPTION", 1)
    dd.putcell("SPECTRAL_WINDOW_ID", 0, 0)
    dd.putcell("POLARIZATION_ID", 0, 0)
    dd.close()

    direction = np.array([[layout.ra, layout.dec]])
    field = _subtable(ms, "FIELD", 1)
    for col in ("PHASE_DIR", "DELAY_DIR", "REFERENCE_DIR"):
        field.putcell(col, 0, direction)
    field.putcell("NAME", 0, layout.field_name)
    field.putcell("TIME", 0, float(layout.times[0]))
    field.close()

    half = layout.interval / 2
    obs = _subtable(ms, "OBSERVATION", 1)
    obs.putcell("TELESCOPE_NAME", 0, "LOFAR")
    obs.putcell("OBSERVER", 0, "simulated")
    obs.putcell("PROJECT", 0, "SIMULATION")
    obs.putcell("TIME_RANGE", 0, np.array([layout.times[0] - half, layout.times[-1] + half]))
    obs.close()
    if beam_tables:
        add_beam_tables(ms, layout.station_names, layout.ra, layout.dec)
