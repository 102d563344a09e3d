"""Truth files written next to a simulated observation, and their readers."""

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
PARAMETERS = "simulation.json"


def rfi_name(ms_name: str) -> str:
    return f"rfi_{ms_name.removesuffix('.MS').removesuffix('_uv')}.npz"


@dataclass(frozen=True)
class Gains:
    times: np.ndarray  # (ntime,) MJD s
    stations: list[str]
    gains: np.ndarray  # (ntime, nant, 2) complex, X and Y


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
