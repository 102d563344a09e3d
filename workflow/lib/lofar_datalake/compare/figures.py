"""Figures of the comparison report: where the time went, and how the products differ."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # the command runs without a display

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import TwoSlopeNorm
from matplotlib.patches import Patch
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from .catalogues import match_sources, read_source_list
from .images import read_image_2d

DPI = 150


def _colours(labels: list[str]) -> dict[str, Any]:
    """The same colour for a run in every figure: the first run blue, the second orange, …"""
    return {label: plt.cm.tab10(i % 10) for i, label in enumerate(labels)}


def _save(fig: plt.Figure, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=DPI)
    plt.close(fig)


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 600 else f"{value / 60:.1f} min"


def stage_timing_bars(stages: dict[str, dict[str, float]], out: Path) -> None:
    """Wall time per workflow rule, the runs side by side; longest rules on top."""
    labels = list(stages)
    colours = _colours(labels)
    rules = sorted(
        {r for times in stages.values() for r in times},
        key=lambda r: max(t.get(r, 0.0) for t in stages.values()),
    )
    height = 0.8 / max(len(labels), 1)
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.32 * len(rules) * max(len(labels), 1)))
    top = max((t for times in stages.values() for t in times.values()), default=1.0) or 1.0
    for k, label in enumerate(labels):
        y = np.arange(len(rules)) + (len(labels) - 1 - k - (len(labels) - 1) / 2) * height
        values = [stages[label].get(r) for r in rules]
        ax.barh(
            y, [v or 0.0 for v in values], height=height * 0.95, color=colours[label], label=label
        )
        for yi, value in zip(y, values, strict=True):
            text = "not run" if value is None else _seconds(value)
            ax.text((value or 0.0) + top * 0.01, yi, text, va="center", fontsize=7)
    ax.set_yticks(range(len(rules)), rules)
    ax.set_xlim(0, top * 1.15)
    ax.set_xlabel("wall time [s] (all jobs of the rule)")
    ax.set_title("Wall time per workflow rule")
    ax.legend(loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    _save(fig, out)


def _short_name(did: str) -> str:
    """'lofar:L700000/L700000_SB000_uv.MS.tar' -> 'L700000_SB000_uv.MS.tar'."""
    return did.rpartition(":")[2].rpartition("/")[2] or did


def _mebibytes(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 1024:.0f} KiB"


def staging_timeline(events: dict[str, list[dict[str, Any]]], out: Path) -> None:
    """When each input was made local, per run: one row per file, time since that run's first
    staging start (the runs happen one after the other, so absolute times would not line up)."""
    colours = _colours(list(events))
    rows = [
        (label, e)
        for label, evs in events.items()
        for e in sorted(evs, key=lambda e: (float(e["start"]), str(e["did"])))
    ]
    # one readable row per file up to ~100 files; beyond that the rows get thinner, unlabelled
    fig, ax = plt.subplots(figsize=(10, min(1.4 + 0.28 * max(len(rows), 1), 30)))
    t0 = {
        label: min((float(e["start"]) for e in evs), default=0.0) for label, evs in events.items()
    }
    span = max((float(e["end"]) - t0[label] for label, e in rows), default=1.0) or 1.0
    for y, (label, e) in enumerate(rows):
        start, end = float(e["start"]) - t0[label], float(e["end"]) - t0[label]
        ax.barh(y, max(end - start, span * 0.003), left=start, height=0.7, color=colours[label])
        if len(rows) <= 100:
            label_text = f"{_mebibytes(int(e.get('bytes') or 0))}, {e.get('how')}"
            ax.text(end + span * 0.01, y, label_text, va="center", fontsize=7)
    if len(rows) <= 100:
        ax.set_yticks(range(len(rows)), [_short_name(str(e["did"])) for _, e in rows], fontsize=7)
    else:
        ax.set_yticks([])
        ax.set_ylabel(f"{len(rows)} files, one row each")
    ax.invert_yaxis()  # first transfer on top, like a Gantt chart
    ax.set_xlim(0, span * 1.3)  # room for the size and method labels
    ax.set_xlabel("time since the run's first staging started [s]")
    first_rows = np.cumsum([len(evs) for evs in events.values()])[:-1]
    for boundary in first_rows:
        ax.axhline(boundary - 0.5, color="0.5", lw=0.8, ls="--")
    per_run = []
    for label, evs in events.items():
        wall = max((float(e["end"]) for e in evs), default=t0[label]) - t0[label]
        per_run.append(f"{label}: {len(evs)} file(s) in {_seconds(wall)}")
    ax.set_title("Staging of the inputs — " + "; ".join(per_run))
    ax.legend(handles=[Patch(color=colours[k], label=k) for k in events], loc="best")
    ax.grid(axis="x", alpha=0.3)
    _save(fig, out)


def _display_limits(image: np.ndarray) -> tuple[float, float]:
    """From -3 sigma (robust) to the 99.9th percentile: faint structure and noise both show."""
    finite = image[np.isfinite(image)]
    if not finite.size:
        return 0.0, 1.0
    sigma = 1.4826 * float(np.median(np.abs(finite - np.median(finite))))
    low, high = -3 * sigma, float(np.percentile(finite, 99.9))
    return (low, high) if high > low else (float(finite.min()), float(finite.max()) + 1e-30)


def image_difference_map(reference_fits: Path, candidate_fits: Path, out: Path) -> None:
    """Reference, candidate and candidate - reference, pixel for pixel."""
    ref, unit = read_image_2d(reference_fits)
    cand, _ = read_image_2d(candidate_fits)
    if ref.shape != cand.shape:
        raise ValueError(f"image shapes differ: {ref.shape} vs {cand.shape}")
    diff = cand - ref
    unit = unit or "image units"
    limit = float(np.nanmax(np.abs(diff), initial=0.0))
    low, high = _display_limits(ref)
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.4))
    panels = ((ref, "reference (DataLake run)"), (cand, "candidate (local-copy run)"))
    for ax, (image, title) in zip(axes[:2], panels, strict=True):
        im = ax.imshow(image, origin="lower", cmap="inferno", vmin=low, vmax=high)
        fig.colorbar(im, ax=ax, label=unit, shrink=0.85)
        ax.set_title(title)
    # Symmetric about zero, clipped at the 99.9th percentile of |diff| so that the pattern of
    # the differences shows, not just the one largest pixel; a tiny range when identical.
    shown = float(np.nanpercentile(np.abs(diff), 99.9)) or limit or 1e-12
    norm = TwoSlopeNorm(0.0, -shown, shown)
    im = axes[2].imshow(diff, origin="lower", cmap="RdBu_r", norm=norm)
    fig.colorbar(
        im,
        ax=axes[2],
        label=f"candidate − reference [{unit}]",
        shrink=0.85,
        format="%.1e",
        extend="both" if shown < limit else "neither",
    )
    peak = float(np.nanmax(np.abs(ref), initial=0.0))
    ratio = f" = {limit / peak:.1e} × peak" if peak > 0 else ""
    clipped = "\ncolours clipped at the 99.9th percentile of |diff|" if shown < limit else ""
    axes[2].set_title(
        f"difference (candidate − reference)\nmax |diff| {limit:.2g} {unit}{ratio}{clipped}",
        fontsize=10,
    )
    for ax in axes:
        ax.set_xlabel("x [pixel]")
        ax.set_ylabel("y [pixel]")
    fig.suptitle(f"{reference_fits.name}: reference vs candidate")
    _save(fig, out)


def flux_scatter(reference_cat: Path, candidate_cat: Path, out: Path, match_arcsec: float) -> None:
    """Total flux of the sources matched within `match_arcsec`: candidate against reference,
    and their relative difference (the 1:1 panel alone hides differences below ~1 %)."""
    ref, cand = read_source_list(reference_cat), read_source_list(candidate_cat)
    pairs, only_ref, only_cand = match_sources(ref, cand, match_arcsec)
    rf = ref.flux_jy[[p[0] for p in pairs]]
    cf = cand.flux_jy[[p[1] for p in pairs]]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 5))
    positive = (rf > 0) & (cf > 0)  # a log axis cannot show the others
    ax1.loglog(
        rf[positive],
        cf[positive],
        "o",
        ms=5,
        color="tab:blue",
        label=f"matched within {match_arcsec:g}″: {len(pairs)}",
    )
    every = np.concatenate([ref.flux_jy, cand.flux_jy])
    every = every[np.isfinite(every) & (every > 0)]
    ends = np.array([every.min(), every.max()]) if every.size else np.array([0.1, 10.0])
    ax1.loglog(ends * [0.8, 1.25], ends * [0.8, 1.25], "k--", lw=0.8, label="1:1")
    ax1.plot([], [], " ", label=f"only in reference: {len(only_ref)}")
    ax1.plot([], [], " ", label=f"only in candidate: {len(only_cand)}")
    ax1.set_xlabel("reference Total_flux [Jy]")
    ax1.set_ylabel("candidate Total_flux [Jy]")
    ax1.set_title("Total flux of matched sources")
    ax1.legend(fontsize=8, loc="upper left")
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = (cf - rf) / rf
    ax2.semilogx(rf[positive], rel[positive], "o", ms=5, color="tab:blue")
    ax2.axhline(0, color="k", lw=0.8)
    ax2.set_xlabel("reference Total_flux [Jy]")
    ax2.set_ylabel("(candidate − reference) / reference")
    ax2.yaxis.set_major_formatter(FormatStrFormatter("%.1e"))
    ax2.set_title("Relative flux difference")
    ax2.grid(alpha=0.3)
    for ax in (ax1, ax2):
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        if not pairs:
            ax.text(
                0.5,
                0.5,
                "no source matched",
                transform=ax.transAxes,
                ha="center",
                color="tab:red",
                fontsize=12,
            )
    ax1.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax1.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax1.yaxis.set_minor_formatter(NullFormatter())
    fig.suptitle(
        f"{reference_cat.name}: {len(pairs)} matched, {len(only_ref) + len(only_cand)} unmatched"
    )
    _save(fig, out)
