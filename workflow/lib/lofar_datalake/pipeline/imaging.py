"""The WSClean command line (pure), from the `imaging` section of the config."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# WSClean writes these next to its -name prefix.
PRODUCTS = ("image", "residual", "model", "psf", "dirty")


def weighting_args(weighting: str, robust: float) -> list[str]:
    if weighting == "briggs":
        return ["-weight", "briggs", str(robust)]
    if weighting in ("natural", "uniform"):
        return ["-weight", weighting]
    raise ValueError(f"unknown weighting {weighting!r}")


def wsclean_args(
    measurement_sets: Sequence[Path],
    prefix: Path,
    settings: Mapping[str, Any],
    threads: int,
    temp_dir: Path,
) -> list[str]:
    """Stokes I imaging of all `measurement_sets` into one multi-subband image."""
    size = int(settings["size"])
    args = [
        "-name", str(prefix),
        "-size", str(size), str(size),
        "-scale", f"{float(settings['scale_arcsec'])}asec",
        *weighting_args(str(settings["weighting"]), float(settings.get("robust", 0.0))),
        "-pol", "I",
        "-data-column", "DATA",
        "-niter", str(int(settings["niter"])),
        "-mgain", str(float(settings["mgain"])),
        "-auto-threshold", str(float(settings["auto_threshold"])),
        "-auto-mask", str(float(settings["auto_mask"])),
        "-j", str(threads),
        "-temp-dir", str(temp_dir),
        "-no-update-model-required",
    ]  # fmt: skip
    if settings.get("taper_arcsec"):
        args += ["-taper-gaussian", f"{float(settings['taper_arcsec'])}asec"]
    args += [str(a) for a in settings.get("extra_args", [])]
    return args + [str(ms) for ms in measurement_sets]
