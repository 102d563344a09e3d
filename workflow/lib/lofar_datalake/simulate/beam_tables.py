"""The LOFAR beam subtables of a simulated Measurement Set, which EveryBeam (and so DP3's
`applybeam` and `usebeammodel`) reads to model each station's beam.

They are laid out as LOFAR's own writer lays them out: LOFAR_ANTENNA_FIELD (per station field: its
centre, its P,Q,R axes, the tile offsets and flags, the 16 dipole offsets inside a tile),
LOFAR_STATION, an empty LOFAR_ELEMENT_FAILURE, and the LOFAR columns of ANTENNA
(LOFAR_STATION_ID, LOFAR_PHASE_REFERENCE), FIELD (LOFAR_TILE_BEAM_DIR) and OBSERVATION
(LOFAR_ANTENNA_SET). Positions and directions are ITRF and written with casacore's measure
descriptions, which EveryBeam reads them through.

Every station observes in HBA_DUAL_INNER: a core station's HBA0 field, a remote station's inner 24
tiles (the outer 24 flagged), so all stations share one 24-tile layout. Tile positions, field
axes and tile rotations are LOFAR's surveyed values, from `lofarantpos`; a tile's 4 x 4 dipoles are
1.25 m apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
from casacore import tables

ANTENNA_SET = "HBA_DUAL_INNER"
FILTER = "HBA_110_190"
INNER_TILES = 24
DIPOLE_SPACING_M = 1.25

_POSITION = {"MEASINFO": {"type": "position", "Ref": "ITRF"}, "QuantumUnits": ["m", "m", "m"]}
_AXES = {"MEASINFO": {"type": "direction", "Ref": "ITRF"}, "QuantumUnits": ["m", "m"]}
_J2000 = {"MEASINFO": {"type": "direction", "Ref": "J2000"}, "QuantumUnits": ["rad", "rad"]}
_EPOCH = {"MEASINFO": {"type": "epoch", "Ref": "UTC"}, "QuantumUnits": ["s"]}
_FIXED = 5  # casacore ColumnDesc::FixedShape + ColumnDesc::Direct


@dataclass(frozen=True)
class AntennaField:
    """One station field as LOFAR_ANTENNA_FIELD holds it (ITRF, metres)."""

    name: str  # HBA0 (core station ear) or HBA (remote station)
    position: np.ndarray  # (3,) field centre
    axes: np.ndarray  # (3, 3) rows: the P, Q and R axes (R is the field's normal)
    element_offset: np.ndarray  # (ntile, 3) tile centres relative to `position`
    element_flag: np.ndarray  # (ntile, 2) True: tile not used (X, Y)
    tile_element_offset: np.ndarray  # (16, 3) dipoles relative to a tile's centre


@cache
def _database() -> Any:
    from lofarantpos.db import LofarAntennaDatabase

    return LofarAntennaDatabase()


def tile_dipoles_pqr(rotation_rad: float) -> np.ndarray:
    """(16, 3) dipole offsets in a tile, in P,Q,R, for a tile rotated by `rotation_rad`
    (the rotation convention of `lofarantpos`)."""
    grid = (np.arange(4) - 1.5) * DIPOLE_SPACING_M
    p, q = np.meshgrid(grid, grid[::-1])
    c, s = np.cos(rotation_rad), np.sin(rotation_rad)
    rot = np.array([[c, s], [-s, c]])
    pq = np.stack([p.ravel(), q.ravel()], axis=1) @ rot.T
    return np.column_stack([pq, np.zeros(16)])


def antenna_field(station: str) -> AntennaField:
    """The HBA_DUAL_INNER field of `station` (e.g. CS001HBA0, RS106HBA)."""
    db = _database()
    centre = np.asarray(db.phase_centres[station], dtype=float)
    to_itrf = np.asarray(db.pqr_to_etrs[station], dtype=float)
    tiles = np.asarray(db.antenna_etrs(station), dtype=float) - centre
    flag = np.zeros((len(tiles), 2), dtype=bool)
    if len(tiles) > INNER_TILES:  # a remote station: the 24 tiles nearest its centre
        pqr = tiles @ to_itrf
        outer = np.argsort(np.hypot(pqr[:, 0], pqr[:, 1]), kind="stable")[INNER_TILES:]
        flag[outer] = True
    dipoles = tile_dipoles_pqr(db.hba_rotations[station]) @ to_itrf.T
    return AntennaField(station[5:], centre, to_itrf.T, tiles, flag, dipoles)


def _create_subtable(ms: tables.table, name: str, columns: list[dict], nrow: int) -> tables.table:
    sub = tables.table(f"{ms.name()}/{name}", tables.maketabdesc(columns), nrow=nrow,
                       readonly=False, ack=False)  # fmt: skip
    ms.putkeyword(name, sub)
    return sub


def _write_antenna_fields(ms: tables.table, fields: list[AntennaField]) -> None:
    arr = tables.makearrcoldesc
    columns = [
        tables.makescacoldesc("ANTENNA_ID", 0),
        tables.makescacoldesc("NAME", ""),
        arr("POSITION", 0.0, 1, [3], options=_FIXED, keywords=_POSITION),
        arr("COORDINATE_AXES", 0.0, 2, [3, 3], options=_FIXED, keywords=_AXES),
        arr("ELEMENT_OFFSET", 0.0, 2, keywords=_POSITION),
        arr("ELEMENT_RCU", 0, 2),
        arr("ELEMENT_FLAG", False, 2),
        tables.makescacoldesc("TILE_ROTATION", 0.0, keywords={"QuantumUnits": ["rad"]}),
        arr("TILE_ELEMENT_OFFSET", 0.0, 2, keywords=_POSITION),
    ]
    with _create_subtable(ms, "LOFAR_ANTENNA_FIELD", columns, len(fields)) as sub:
        for row, f in enumerate(fields):
            rcu = np.arange(2 * len(f.element_offset), dtype=np.int32).reshape(-1, 2)
            sub.putcell("ANTENNA_ID", row, row)
            sub.putcell("NAME", row, f.name)
            sub.putcell("POSITION", row, f.position)
            sub.putcell("COORDINATE_AXES", row, f.axes)
            sub.putcell("ELEMENT_OFFSET", row, f.element_offset)
            sub.putcell("ELEMENT_RCU", row, np.where(f.element_flag, -1, rcu))
            sub.putcell("ELEMENT_FLAG", row, f.element_flag)
            # The dipole offsets are ITRF and already rotated with the tile.
            sub.putcell("TILE_ROTATION", row, 0.0)
            sub.putcell("TILE_ELEMENT_OFFSET", row, f.tile_element_offset)


def _station_ids(stations: Sequence[str]) -> tuple[list[str], list[int], list[int]]:
    """LOFAR_STATION names and clock ids (core stations share one clock), and each antenna's
    row in it."""
    names: list[str] = []
    for s in stations:
        if s[:5] not in names:
            names.append(s[:5])
    clocks, next_clock = [], 1
    for n in names:
        clocks.append(0 if n.startswith("CS") else next_clock)
        next_clock += not n.startswith("CS")
    return names, clocks, [names.index(s[:5]) for s in stations]


def _write_stations(ms: tables.table, stations: Sequence[str]) -> list[int]:
    names, clocks, ids = _station_ids(stations)
    columns = [tables.makescacoldesc("NAME", ""), tables.makescacoldesc("CLOCK_ID", 0),
               tables.makescacoldesc("FLAG_ROW", False)]  # fmt: skip
    with _create_subtable(ms, "LOFAR_STATION", columns, len(names)) as sub:
        sub.putcol("NAME", names)
        sub.putcol("CLOCK_ID", np.array(clocks, dtype=np.int32))
        sub.putcol("FLAG_ROW", np.zeros(len(names), dtype=bool))
    return ids


def _write_element_failure(ms: tables.table) -> None:
    columns = [tables.makescacoldesc("ANTENNA_FIELD_ID", 0),
               tables.makescacoldesc("ELEMENT_INDEX", 0),
               tables.makescacoldesc("TIME", 0.0, keywords=_EPOCH)]  # fmt: skip
    _create_subtable(ms, "LOFAR_ELEMENT_FAILURE", columns, 0).close()


def _add_column(sub: tables.table, desc: dict, values: object) -> None:
    sub.addcols(tables.maketabdesc([desc]))
    sub.putcol(desc["name"], values)


def add_beam_tables(path: str, stations: Sequence[str], ra: float, dec: float) -> None:
    """Add the beam subtables and columns to the Measurement Set at `path`, whose ANTENNA rows
    are `stations` and whose station and tile beams point at (ra, dec) (J2000, rad)."""
    fields = [antenna_field(s) for s in stations]
    with tables.table(path, readonly=False, ack=False) as ms:
        _write_antenna_fields(ms, fields)
        ids = _write_stations(ms, stations)
        _write_element_failure(ms)
    with tables.table(f"{path}/ANTENNA", readonly=False, ack=False) as ant:
        _add_column(ant, tables.makescacoldesc("LOFAR_STATION_ID", 0),
                    np.array(ids, dtype=np.int32))  # fmt: skip
        phase_ref = tables.makearrcoldesc("LOFAR_PHASE_REFERENCE", 0.0, 1, [3], options=_FIXED,
                                          keywords=_POSITION)  # fmt: skip
        _add_column(ant, phase_ref, np.array([f.position for f in fields]))
    with tables.table(f"{path}/FIELD", readonly=False, ack=False) as field:
        tile_dir = tables.makearrcoldesc("LOFAR_TILE_BEAM_DIR", 0.0, 2, keywords=_J2000)
        _add_column(field, tile_dir, np.array([[[ra, dec]]]))
    with tables.table(f"{path}/OBSERVATION", readonly=False, ack=False) as obs:
        _add_column(obs, tables.makescacoldesc("LOFAR_ANTENNA_SET", ""), [ANTENNA_SET])
        _add_column(obs, tables.makescacoldesc("LOFAR_FILTER_SELECTION", ""), [FILTER])
        clock = tables.makescacoldesc("LOFAR_CLOCK_FREQUENCY", 0.0,
                                      keywords={"QuantumUnits": ["MHz"]})  # fmt: skip
        _add_column(obs, clock, [200.0])
