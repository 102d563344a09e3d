"""Cross-match a source catalogue with the true sky (pure logic)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..simulate.sky import Source


@dataclass(frozen=True)
class Match:
    name: str
    ra_deg: float
    dec_deg: float
    true_flux_jy: float  # at the image frequency
    found: bool
    flux_jy: float  # NaN if not found
    separation_arcsec: float  # NaN if not found

    @property
    def flux_ratio(self) -> float:
        return self.flux_jy / self.true_flux_jy if self.found else math.nan


def separation_arcsec(ra1: float, dec1: float, ra2: np.ndarray, dec2: np.ndarray) -> np.ndarray:
    """Great-circle distance (haversine), degrees in, arcsec out."""
    r1, d1, r2, d2 = (np.radians(v) for v in (ra1, dec1, ra2, dec2))
    a = np.sin((d2 - d1) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((r2 - r1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(a, 0, 1)))) * 3600


def crossmatch(
    truth: list[Source],
    ra: np.ndarray,
    dec: np.ndarray,
    flux: np.ndarray,
    freq_hz: float,
    radius_arcsec: float,
) -> list[Match]:
    """Nearest found source within `radius_arcsec` of each true source (each used at most once)."""
    taken = np.zeros(len(ra), dtype=bool)
    out = []
    for s in sorted(truth, key=lambda s: -s.flux_jy):
        true_flux = float(s.flux_at(freq_hz))
        sep = separation_arcsec(s.ra_deg, s.dec_deg, np.asarray(ra), np.asarray(dec))
        sep = np.where(taken, np.inf, sep)
        i = int(np.argmin(sep)) if len(sep) else -1
        if i >= 0 and sep[i] <= radius_arcsec:
            taken[i] = True
            out.append(Match(s.name, s.ra_deg, s.dec_deg, true_flux, True, float(flux[i]),
                             float(sep[i])))  # fmt: skip
        else:
            out.append(Match(s.name, s.ra_deg, s.dec_deg, true_flux, False, math.nan, math.nan))
    return sorted(out, key=lambda m: m.name)


def summary(matches: list[Match], rms_jy: float, detect_sigma: float = 10.0) -> dict[str, float]:
    """Completeness above `detect_sigma` x rms, and the flux and position errors of the matches."""
    bright = [m for m in matches if m.true_flux_jy > detect_sigma * rms_jy]
    found = [m for m in matches if m.found]
    ratio_err = [abs(m.flux_ratio - 1) for m in found]
    return {
        "n_true": len(matches),
        "n_bright": len(bright),
        "n_bright_found": sum(m.found for m in bright),
        "image_rms_jy": rms_jy,
        "max_flux_error": max(ratio_err, default=math.nan),
        "median_flux_ratio": float(np.median([m.flux_ratio for m in found])) if found else math.nan,
        "max_separation_arcsec": max((m.separation_arcsec for m in found), default=math.nan),
    }


def write_matches(path: Path, matches: list[Match]) -> None:
    lines = ["name,ra_deg,dec_deg,true_flux_jy,found,flux_jy,flux_ratio,separation_arcsec"]
    for m in matches:
        lines.append(
            f"{m.name},{m.ra_deg:.6f},{m.dec_deg:.6f},{m.true_flux_jy:.5f},{int(m.found)},"
            f"{m.flux_jy:.5f},{m.flux_ratio:.4f},{m.separation_arcsec:.3f}"
        )
    path.write_text("\n".join(lines) + "\n")


def image_rms(residual: np.ndarray) -> float:
    """Robust noise of a residual image (MAD), ignoring blanked pixels."""
    v = residual[np.isfinite(residual)]
    return float(1.4826 * np.median(np.abs(v - np.median(v))))
