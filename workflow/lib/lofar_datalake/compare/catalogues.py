"""PyBDSF source lists of two runs: read, cross-match by position, compare total fluxes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..pipeline.catalogue import read_catalogue
from ..pipeline.crossmatch import separation_arcsec
from .outcome import Metrics, Outcome, load, relative_diff


@dataclass(frozen=True)
class SourceList:
    ra_deg: np.ndarray
    dec_deg: np.ndarray
    flux_jy: np.ndarray  # PyBDSF Total_flux


def read_source_list(path: Path) -> SourceList:
    """Positions and total fluxes of a .srl.fits or .srl.csv (PyBDSF column names)."""
    table = read_catalogue(path)
    missing = [c for c in ("RA", "DEC", "Total_flux") if c not in table.colnames]
    if missing:
        raise ValueError(f"no column {', '.join(missing)} (columns: {', '.join(table.colnames)})")
    return SourceList(*(np.asarray(table[c], dtype=float) for c in ("RA", "DEC", "Total_flux")))


def match_sources(
    ref: SourceList, cand: SourceList, radius_arcsec: float
) -> tuple[list[tuple[int, int, float]], list[int], list[int]]:
    """Pairs (reference index, candidate index, separation arcsec), then the unmatched indices
    of each list. Brightest reference sources pick first; each candidate is used at most once."""
    taken = np.zeros(len(cand.flux_jy), dtype=bool)
    pairs, only_ref = [], []
    for i in np.argsort(-np.nan_to_num(ref.flux_jy, nan=-np.inf), kind="stable"):
        sep = separation_arcsec(ref.ra_deg[i], ref.dec_deg[i], cand.ra_deg, cand.dec_deg)
        sep = np.where(taken | np.isnan(sep), np.inf, sep)
        j = int(np.argmin(sep)) if len(sep) else -1
        if j >= 0 and sep[j] <= radius_arcsec:
            taken[j] = True
            pairs.append((int(i), j, float(sep[j])))
        else:
            only_ref.append(int(i))
    return sorted(pairs), sorted(only_ref), [int(j) for j in np.flatnonzero(~taken)]


def check_catalogue(ref: Path, cand: Path, params: dict[str, Any]) -> Outcome:
    radius, flux_rtol = float(params["match_arcsec"]), float(params["flux_rtol"])
    r = load("reference", "source list", read_source_list, ref)
    c = load("candidate", "source list", read_source_list, cand)
    pairs, only_ref, only_cand = match_sources(r, c, radius)
    rf = r.flux_jy[[p[0] for p in pairs]]
    cf = c.flux_jy[[p[1] for p in pairs]]
    rel = np.nan_to_num(relative_diff(rf, cf), nan=np.inf)
    max_rel = float(rel.max(initial=0.0))
    max_sep = max((p[2] for p in pairs), default=0.0)
    n_flux_beyond = int((rel > flux_rtol).sum())
    metrics: Metrics = {
        "n_reference": len(r.flux_jy),
        "n_candidate": len(c.flux_jy),
        "n_matched": len(pairs),
        "n_reference_only": len(only_ref),
        "n_candidate_only": len(only_cand),
        "max_separation_arcsec": max_sep,
        "max_flux_rel_diff": max_rel,
        "n_flux_beyond_tolerance": n_flux_beyond,
    }
    matched = f"{len(pairs)}/{len(r.flux_jy)} reference sources matched within {radius:g}″"
    if pairs:
        matched += f" (max sep {max_sep:.2g}″)"
    problems = []
    if len(only_ref) + len(only_cand) > int(params["max_unmatched"]):
        problems.append(
            f"{len(only_ref)} reference-only and {len(only_cand)} candidate-only "
            f"source(s) > max_unmatched {params['max_unmatched']}"
        )
    if n_flux_beyond:
        k = int(np.argmax(rel))
        problems.append(
            f"Total_flux of {n_flux_beyond} matched source(s) beyond flux_rtol {flux_rtol:g} "
            f"(worst {rf[k]:.5g} vs {cf[k]:.5g} Jy, rel diff {max_rel:.2g})"
        )
    if problems:
        return Outcome(False, "; ".join([*problems, matched]), metrics)
    return Outcome(
        True, f"{matched}; max Total_flux rel diff {max_rel:.2g} ≤ {flux_rtol:g}", metrics
    )
