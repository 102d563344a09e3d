"""QA stages: figures and, for simulated data, scores against the truth."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from astropy.io import fits

from ..simulate import truth as truth_files
from . import crossmatch, flagstats, plots, solutions
from .catalogue import read_catalogue


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _truth_dir(truth: str | None) -> Path | None:
    return Path(truth) if truth else None


def qa_flags(
    ms: Path, plot: Path, table: Path, scores: Path, truth: str | None, title: str
) -> None:
    """Flag fractions per station and channel; recall and false flags if the RFI is known."""
    cube = flagstats.read_flags(str(ms))
    plots.plot_flags(cube, plot, title)
    lines = ["kind\tname\tflagged_fraction"]
    by_station = zip(cube.stations, flagstats.per_station(cube), strict=True)
    by_channel = zip(cube.freqs, flagstats.per_channel(cube), strict=True)
    lines += [f"station\t{s}\t{f:.5f}" for s, f in by_station]
    lines += [f"channel\t{f_hz:.1f}\t{f:.5f}" for f_hz, f in by_channel]
    table.write_text("\n".join(lines) + "\n")
    result: dict[str, Any] = {"flagged_fraction": float(cube.flags.mean()), "truth": False}
    tdir = _truth_dir(truth)
    if tdir is not None:
        rfi = truth_files.read_rfi(tdir, ms_name_of(title))
        result |= flagstats.scores(cube.flags, rfi.mask) | {"truth": True}
    _write_json(scores, result)


def ms_name_of(title: str) -> str:
    """`L700000_SB000` -> the archive name of that subband, `L700000_SB000_uv.MS`."""
    return f"{title}_uv.MS"


def qa_gains(h5parm: Path, plot: Path, scores: Path, truth: str | None, title: str) -> None:
    sol = solutions.read_h5parm(h5parm)
    tdir = _truth_dir(truth)
    result: dict[str, Any] = {"truth": False}
    true = None
    if tdir is not None:
        g = truth_files.read_gains(tdir)
        true = (g.times, g.stations, g.gains)
        result = solutions.compare(sol, *true) | {"truth": True}
    plots.plot_gains(sol, plot, title, true)
    _write_json(scores, result)


def image_frequency(image_fits: Path) -> float:
    with fits.open(image_fits) as hdul:
        header = hdul[0].header
    for axis in range(1, int(header["NAXIS"]) + 1):
        if str(header.get(f"CTYPE{axis}", "")).startswith("FREQ"):
            return float(header[f"CRVAL{axis}"])
    raise ValueError(f"{image_fits}: no frequency axis")


def bright_matches(
    image_fits: Path, catalogue: Path, truth_dir: Path, detect_sigma: float = 10.0,
    radius_arcsec: float = 10.0,
) -> list[crossmatch.Match]:  # fmt: skip
    """The true sources brighter than `detect_sigma` × the noise of the image's residual (its
    `-residual` sibling), each with its match in `catalogue` if any."""
    residual = image_fits.with_name(image_fits.name.replace("-image", "-residual"))
    with fits.open(residual) as hdul:
        rms = crossmatch.image_rms(hdul[0].data)
    cat = read_catalogue(catalogue)
    matches = crossmatch.crossmatch(
        truth_files.read_target_sources(truth_dir), cat["RA"].data, cat["DEC"].data,
        cat["Total_flux"].data, image_frequency(image_fits), radius_arcsec,
    )  # fmt: skip
    return [m for m in matches if m.true_flux_jy >= detect_sigma * rms]


def qa_sources(
    image_fits: Path,
    residual_fits: Path,
    catalogue: Path,
    outputs: dict[str, Path],
    truth: str | None,
    settings: dict[str, Any],
    title: str,
) -> None:
    """Image cut-out with the sources, and (with truth) the flux and position comparison."""
    cat = read_catalogue(catalogue)
    ra, dec = cat["RA"].data, cat["DEC"].data
    with fits.open(residual_fits) as hdul:
        rms = crossmatch.image_rms(hdul[0].data)
    tdir = _truth_dir(truth)
    true = truth_files.read_target_sources(tdir) if tdir else None
    plots.plot_image(image_fits, ra, dec, outputs["cutout"], title,
                     float(settings["cutout_deg"]), true)  # fmt: skip
    result: dict[str, Any] = {"n_found": len(cat), "image_rms_jy": rms, "truth": False}
    if true is not None:
        matches = crossmatch.crossmatch(
            true, ra, dec, cat["Total_flux"].data, image_frequency(image_fits),
            float(settings["match_radius_arcsec"]),
        )  # fmt: skip
        crossmatch.write_matches(outputs["matches"], matches)
        plots.plot_flux(matches, outputs["flux"], title)
        result |= crossmatch.summary(matches, rms, float(settings["detect_sigma"]))
        result["truth"] = True
    else:
        outputs["matches"].write_text("name\n")
        plots.plot_flux([], outputs["flux"], f"{title} (no truth)")
    _write_json(outputs["scores"], result)
