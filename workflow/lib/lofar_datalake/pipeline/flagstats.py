"""Flag statistics of a Measurement Set, and their score against a known RFI mask."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from casacore import tables


@dataclass(frozen=True)
class FlagCube:
    """Cross-correlation FLAG as (ntime, nbl, nchan); a cell is flagged if any correlation is."""

    flags: np.ndarray
    ant1: np.ndarray  # (nbl,)
    ant2: np.ndarray
    stations: list[str]
    freqs: np.ndarray
    times: np.ndarray


def read_flags(ms: str) -> FlagCube:
    with tables.table(ms, ack=False) as t:
        a1, a2 = t.getcol("ANTENNA1"), t.getcol("ANTENNA2")
        times = t.getcol("TIME")
        flags = t.getcol("FLAG").any(axis=-1)
    with tables.table(f"{ms}::ANTENNA", ack=False) as t:
        stations = [str(n) for n in t.getcol("NAME")]
    with tables.table(f"{ms}::SPECTRAL_WINDOW", ack=False) as t:
        freqs = t.getcol("CHAN_FREQ")[0]
    utimes = np.unique(times)
    nbl = len(a1) // len(utimes)
    if nbl * len(utimes) != len(a1):
        raise ValueError(f"{ms}: rows are not a regular time x baseline grid")
    cross = a1[:nbl] != a2[:nbl]
    cube = flags.reshape(len(utimes), nbl, -1)[:, cross]
    return FlagCube(cube, a1[:nbl][cross], a2[:nbl][cross], stations, freqs, utimes)


def per_station(cube: FlagCube) -> np.ndarray:
    """Flagged fraction of the baselines of each station."""
    per_bl = cube.flags.mean(axis=(0, 2))
    out = np.zeros(len(cube.stations))
    for i in range(len(cube.stations)):
        out[i] = per_bl[(cube.ant1 == i) | (cube.ant2 == i)].mean()
    return out


def per_channel(cube: FlagCube) -> np.ndarray:
    return cube.flags.mean(axis=(0, 1))


def scores(flags: np.ndarray, rfi_mask: np.ndarray) -> dict[str, float]:
    """Recall of the injected RFI and the false-flag fraction of RFI-free data.

    `flags` is (ntime, nbl, nchan); `rfi_mask` (ntime, nchan) holds on every cross-correlation.
    """
    if flags.shape[0] != rfi_mask.shape[0] or flags.shape[2] != rfi_mask.shape[1]:
        raise ValueError(f"flags {flags.shape} do not match the RFI mask {rfi_mask.shape}")
    truth = np.broadcast_to(rfi_mask[:, None, :], flags.shape)
    return {
        "rfi_fraction": float(truth.mean()),
        "flagged_fraction": float(flags.mean()),
        "recall": float(flags[truth].mean()) if truth.any() else 1.0,
        "false_flag_fraction": float(flags[~truth].mean()),
    }
