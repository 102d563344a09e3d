"""What every product check returns, and the helpers the checks share."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

T = TypeVar("T")
Metrics = dict[str, float | int | str]


@dataclass(frozen=True)
class Outcome:
    equivalent: bool
    summary: str  # one line a person reads: what was compared, the worst difference, the limit
    metrics: Metrics = field(default_factory=dict)


class Unreadable(Exception):
    """A product that cannot be read as the type its rule says it is."""


def load(side: str, kind: str, reader: Callable[[Path], T], path: Path) -> T:
    """`reader(path)`, any failure raised as Unreadable naming the side and the expected type.

    Warnings count as failures: astropy only warns about a truncated FITS file.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            return reader(path)
    except Exception as exc:
        raise Unreadable(f"{side} unreadable as {kind}: {type(exc).__name__}: {exc}") from exc


def within(ref: np.ndarray, cand: np.ndarray, atol: float, rtol: float) -> np.ndarray:
    """Element-wise |cand - ref| <= atol + rtol * |ref|; NaN equals NaN at the same position."""
    both_nan = np.isnan(ref) & np.isnan(cand)
    with np.errstate(invalid="ignore"):
        return both_nan | (np.abs(cand - ref) <= atol + rtol * np.abs(ref))


def relative_diff(ref: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """|cand - ref| / |ref|: 0 where equal (also both zero), inf where only ref is zero."""
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(cand - ref) / np.abs(ref)
    return np.where((ref == cand) | (np.isnan(ref) & np.isnan(cand)), 0.0, rel)
