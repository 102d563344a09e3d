"""FITS images of two runs (WSClean writes 4-D: Stokes, frequency, Dec, RA): compare pixels."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from .outcome import Metrics, Outcome, load

# Keys that place the pixels on the sky and in frequency: must agree (to float64 rounding).
_AXIS_KEYS = ("CTYPE", "CUNIT", "CRVAL", "CDELT", "CRPIX")
_BEAM_KEYS = ("BMAJ", "BMIN", "BPA")  # fitted to the PSF, so held to the image's rtol


def read_image_hdus(path: Path) -> list[tuple[fits.Header, np.ndarray]]:
    """(header, data) of every HDU holding an image; an error if there is none."""
    with fits.open(path, memmap=False) as hdul:
        images = [
            (h.header.copy(), np.asarray(h.data)) for h in hdul if h.is_image and h.data is not None
        ]
    if not images:
        raise ValueError("no image data in any HDU")
    return images


def read_image_2d(path: Path) -> tuple[np.ndarray, str]:
    """The first image squeezed to 2-D (WSClean: one Stokes, one frequency), and its BUNIT."""
    header, data = read_image_hdus(path)[0]
    plane = np.squeeze(data)
    while plane.ndim > 2:  # a cube: its first plane
        plane = plane[0]
    if plane.ndim != 2:
        raise ValueError(f"image of shape {data.shape} has no 2-D plane")
    return plane.astype(float), str(header.get("BUNIT", "")).strip()


def _close(a: object, b: object, rtol: float) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(float(a), float(b), rel_tol=rtol, abs_tol=1e-12)
    return a == b


def _header_mismatch(ref: fits.Header, cand: fits.Header, beam_rtol: float) -> str | None:
    keys = [f"{k}{i}" for i in range(1, int(ref.get("NAXIS", 0)) + 1) for k in _AXIS_KEYS]
    for key in ["BUNIT", *keys]:
        if not _close(ref.get(key), cand.get(key), 1e-12):
            return f"header {key}: {ref.get(key)!r} vs {cand.get(key)!r}"
    for key in _BEAM_KEYS:
        if not _close(ref.get(key), cand.get(key), beam_rtol):
            return f"header {key} (restoring beam): {ref.get(key)!r} vs {cand.get(key)!r}"
    return None


def _pixel_stats(ref: np.ndarray, cand: np.ndarray, atol: float, rtol: float) -> Metrics:
    r, c = ref.astype(np.float64), cand.astype(np.float64)
    finite = np.isfinite(r) & np.isfinite(c)
    diff = np.abs(c[finite] - r[finite])
    peak = float(np.abs(r[np.isfinite(r)]).max(initial=0.0))
    limit = atol + rtol * peak
    return {
        "n_pixels": int(r.size),
        "n_nan_mismatch": int((np.isnan(r) != np.isnan(c)).sum()),
        "n_pixels_differing": int((diff > 0).sum()),
        "n_pixels_beyond": int((diff > limit).sum()),
        "max_abs_diff": float(diff.max(initial=0.0)),
        "rms_diff": float(np.sqrt(np.mean(diff**2))) if diff.size else 0.0,
        "peak_abs_reference": peak,
        "limit": limit,
    }


def _hdu_verdict(
    hr: fits.Header, dr: np.ndarray, hc: fits.Header, dc: np.ndarray, atol: float, rtol: float
) -> tuple[list[str], str, Metrics]:
    """Problems of one pair of image HDUs (none: equivalent), the pixel evidence, statistics."""
    if dr.shape != dc.shape:
        return [f"shape {dr.shape} vs {dc.shape}"], "", {}
    stats = _pixel_stats(dr, dc, atol, rtol)
    unit = str(hr.get("BUNIT", "")).strip() or "(no BUNIT)"
    beyond = int(stats["n_pixels_beyond"])
    problems = [p for p in [_header_mismatch(hr, hc, rtol)] if p]
    if stats["n_nan_mismatch"]:
        problems.append(f"NaN (blanked) in one image only at {stats['n_nan_mismatch']} pixel(s)")
    pixels = (
        f"max |diff| {stats['max_abs_diff']:.2g} {unit} {'>' if beyond else '≤'} atol {atol:g} "
        f"+ rtol {rtol:g}·peak {stats['peak_abs_reference']:.3g} = {stats['limit']:.2g}"
    )
    if beyond:
        pixels += f" at {beyond} of {stats['n_pixels']} pixels"
        problems.append(pixels)
    return problems, pixels, {**stats, "unit": unit}


def check_fits_image(ref: Path, cand: Path, params: dict[str, Any]) -> Outcome:
    atol, rtol = float(params["atol"]), float(params["rtol"])
    r = load("reference", "FITS image", read_image_hdus, ref)
    c = load("candidate", "FITS image", read_image_hdus, cand)
    if len(r) != len(c):
        return Outcome(False, f"{len(r)} image HDUs vs {len(c)}")
    verdicts = [
        _hdu_verdict(hr, dr, hc, dc, atol, rtol) for (hr, dr), (hc, dc) in zip(r, c, strict=True)
    ]
    prefix = [f"HDU {i}: " if len(r) > 1 else "" for i in range(len(r))]
    problems = [prefix[i] + p for i, v in enumerate(verdicts) for p in v[0]]
    # the evidence shown: the HDU with the largest difference
    worst = max(range(len(r)), key=lambda i: float(verdicts[i][2].get("max_abs_diff", 0.0)))
    pixels = prefix[worst] + verdicts[worst][1] if verdicts[worst][1] else ""
    if problems:
        shown = problems if pixels in problems or not pixels else [*problems, pixels]
        return Outcome(False, "; ".join(shown), verdicts[worst][2])
    return Outcome(True, pixels, verdicts[worst][2])
