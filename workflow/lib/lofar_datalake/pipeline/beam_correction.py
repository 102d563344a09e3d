"""Fluxes corrected for LOFAR's station beam, source by source (Debian's WSClean 3.1 has no
EveryBeam, so the image itself cannot be corrected).

The target's data were corrected for the beam towards the phase centre (DP3 `applybeam`); a
source elsewhere keeps the fraction A(ν) of its flux that a baseline's Stokes I response towards
it bears to the one towards the phase centre, Re tr(E_p E_q^H) with E EveryBeam's full beam,
averaged over the cross-correlations and the track. The image averages the subbands, so a source
of spectrum S ∝ ν^α keeps Σ_k S(ν_k) A(ν_k) / Σ_k S(ν_k): its catalogued fluxes are divided by
that. α = −0.8 (typical at these frequencies); the factor depends on it only weakly.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from astropy.table import Table

from ..simulate.beam_truth import baseline_response
from ..simulate.station_beam import itrf_directions
from .catalogue import read_catalogue
from .tools import EVERYBEAM_DATA

SPECTRAL_INDEX = -0.8
TIME_STEP_S = 600.0  # the beam changes over tens of minutes: one evaluation per 10 min


def phase_centre(ms: Path) -> tuple[float, float]:
    """The phase centre (RA, Dec in rad) of the Measurement Set `ms`."""
    from casacore import tables

    with tables.table(f"{ms}::FIELD", ack=False) as field:
        ra, dec = (float(v) for v in field.getcell("PHASE_DIR", 0)[0])
    return ra, dec


def _ms_axes(ms: Path) -> tuple[np.ndarray, float, float, float, int]:
    """Times (MJD s), centre frequency (Hz), phase centre (rad) and stations of `ms`."""
    from casacore import tables

    with tables.table(str(ms), ack=False) as main:
        times = np.unique(main.getcol("TIME"))
    with tables.table(f"{ms}::SPECTRAL_WINDOW", ack=False) as spw:
        freq = float(np.mean(spw.getcell("CHAN_FREQ", 0)))
    ra, dec = phase_centre(ms)
    with tables.table(f"{ms}::ANTENNA", ack=False) as ant:
        nant = ant.nrows()
    return times, freq, ra, dec, nant


def beam_factors(
    measurement_sets: list[Path], ra_deg: np.ndarray, dec_deg: np.ndarray,
    spectral_index: float = SPECTRAL_INDEX,
) -> np.ndarray:  # fmt: skip
    """The fraction of its flux each source (ra, dec in deg) keeps in the image of the beam-
    corrected subbands `measurement_sets` (one per subband, with LOFAR's beam tables)."""
    import casacore  # noqa: F401  (sets the measures path EveryBeam's casacore relies on)
    import everybeam

    os.environ.setdefault("EVERYBEAM_DATADIR", str(EVERYBEAM_DATA))
    axes = [_ms_axes(ms) for ms in measurement_sets]
    times, _, ra0, dec0, nant = axes[0]
    freqs = np.array([a[1] for a in axes])
    step = max(1, round(TIME_STEP_S / max(float(np.median(np.diff(times))), 1.0)))
    nodes = np.unique(np.append(times[::step], times[-1]))
    telescope = everybeam.load_telescope(str(measurement_sets[0]))
    stations = np.arange(nant, dtype=np.uint64)
    centre = itrf_directions(nodes, ra0, dec0)

    pairs = np.triu_indices(nant, 1)

    def response(k: int, direction: np.ndarray) -> np.ndarray:
        """(nfreq, npair) Stokes I response of the cross-correlations towards `direction`."""
        jones = telescope.station_response(
            np.array([nodes[k]]), stations, freqs, direction, centre[k], centre[k]
        )[0]  # (nant, nfreq, 2, 2)
        return baseline_response(np.moveaxis(jones, 0, 1), *pairs)

    at_centre = [response(k, centre[k]) for k in range(len(nodes))]
    weights = freqs**spectral_index
    out = np.empty(len(ra_deg))
    for i, (ra, dec) in enumerate(zip(ra_deg, dec_deg, strict=True)):
        source = itrf_directions(nodes, math.radians(float(ra)), math.radians(float(dec)))
        ratio = [response(k, source[k]) / at_centre[k] for k in range(len(nodes))]
        keep = np.mean(ratio, axis=(0, 2))  # over times and baselines: (nfreq,)
        out[i] = float(np.sum(weights * keep) / np.sum(weights))
    return out


def correct_catalogue(catalogue: Path, measurement_sets: list[Path], out_csv: Path) -> Table:
    """The catalogue with its fluxes divided by each source's beam factor (column
    `Beam_factor`; the uncorrected fluxes kept as `*_apparent`)."""
    table = read_catalogue(catalogue)
    factors = (
        beam_factors(measurement_sets, np.asarray(table["RA"]), np.asarray(table["DEC"]))
        if len(table)
        else np.empty(0)
    )
    for column in ("Total_flux", "E_Total_flux", "Peak_flux", "E_Peak_flux"):
        if column in table.colnames:
            table[f"{column}_apparent"] = table[column]
            table[column] = table[column] / factors
    table["Beam_factor"] = factors
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    table.write(out_csv, format="csv", overwrite=True)
    return table
