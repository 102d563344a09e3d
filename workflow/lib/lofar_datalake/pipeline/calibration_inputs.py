"""Checks on the solution cubes that the calibrator fits take, with errors that say what to fix.

Gain solutions reach the clock-TEC separation and the bandpass as arrays ordered time ×
frequency × station (the order `solutions.read_h5parm` gives). A transposed cube or a
frequency list from another solve would fit silently and give nonsense, so both are refused here.
"""

from __future__ import annotations

import numpy as np

CUBE_AXES = "time × frequency × station"


class SolutionInputError(ValueError):
    """Solutions or frequencies a calibrator fit cannot use, and what is wrong with them."""


def frequencies(freqs_hz: np.ndarray | list[float], nfreq: int) -> np.ndarray:
    """The channel frequencies as a float array, checked against the cube's frequency axis."""
    freqs = np.asarray(freqs_hz, dtype=float)
    if freqs.ndim != 1 or freqs.size != nfreq:
        raise SolutionInputError(
            f"frequencies have shape {freqs.shape}, the solutions have {nfreq} channels"
        )
    if not np.all(np.isfinite(freqs)) or np.any(freqs <= 0):
        raise SolutionInputError("frequencies must be finite and positive (in Hz)")
    return freqs


def cube(values: np.ndarray, name: str, *, trailing_axes: bool = False) -> np.ndarray:
    """`values` as an array whose first three axes are time, frequency and station.

    With `trailing_axes` further axes (polarisation, direction) may follow and are kept.
    """
    arr = np.asarray(values)
    if arr.ndim < 3 or (arr.ndim > 3 and not trailing_axes):
        more = " (further axes, e.g. polarisation, may follow)" if trailing_axes else ""
        raise SolutionInputError(f"{name} has shape {arr.shape}; expected {CUBE_AXES}{more}")
    if 0 in arr.shape:
        raise SolutionInputError(f"{name} has shape {arr.shape}: an axis is empty")
    return arr


def reference_station(reference: int, nstation: int) -> int:
    """The reference station's index, checked against the number of stations."""
    if nstation < 2:
        raise SolutionInputError(
            f"need at least 2 stations (a reference and one more), got {nstation}"
        )
    if not 0 <= reference < nstation:
        raise SolutionInputError(
            f"reference station {reference} is not one of the {nstation} stations"
        )
    return reference
