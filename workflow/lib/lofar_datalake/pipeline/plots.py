"""QA figures a person wants to look at after a run."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # jobs have no display

import matplotlib.pyplot as plt
import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from matplotlib.ticker import MaxNLocator

from ..simulate.sky import Source
from .crossmatch import Match
from .flagstats import FlagCube, per_channel, per_station
from .solutions import Solutions


def _save(fig: plt.Figure, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_flags(cube: FlagCube, out: Path, title: str) -> None:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4), width_ratios=[1, 1.4])
    ax1.bar(range(len(cube.stations)), 100 * per_station(cube), color="tab:blue")
    ax1.set_xticks(range(len(cube.stations)), cube.stations, rotation=60, ha="right", fontsize=8)
    ax1.set_ylabel("flagged [%]")
    ax1.set_title("per station (its cross-correlations)")
    ax2.step(cube.freqs / 1e6, 100 * per_channel(cube), where="mid", color="tab:red")
    ax2.xaxis.set_major_locator(MaxNLocator(5))
    ax2.set_xlabel("frequency [MHz]")
    ax2.set_ylabel("flagged [%]")
    ax2.set_title("per channel")
    fig.suptitle(f"{title}: {100 * cube.flags.mean():.2f} % of cross-correlations flagged")
    _save(fig, out)


def plot_gains(sol: Solutions, out: Path, title: str,
               truth: tuple[np.ndarray, list[str], np.ndarray] | None = None) -> None:  # fmt: skip
    """Amplitude and phase (relative to the first station) of XX and YY against time."""
    hours = (sol.times - sol.times[0]) / 3600
    g = np.nanmean(sol.gains, axis=1)  # (ntime, nant, 2)
    ref = g[:, :1] / np.abs(g[:, :1])
    fig, axes = plt.subplots(2, 2, figsize=(13, 7), sharex=True)
    colours = plt.cm.tab20(np.linspace(0, 1, len(sol.stations)))
    for p, pol in enumerate(("XX", "YY")):
        for a, name in enumerate(sol.stations):
            axes[0, p].plot(hours, np.abs(g[:, a, p]), color=colours[a], lw=1, label=name)
            phase = np.degrees(np.angle(g[:, a, p] * np.conj(ref[:, 0, p])))
            axes[1, p].plot(hours, phase, ".", ms=1.5, color=colours[a])
        if truth is not None:
            t_times, t_stations, t_gains = truth
            th = (t_times - sol.times[0]) / 3600
            tg = t_gains[:, [t_stations.index(s) for s in sol.stations], p]
            tref = tg[:, :1] / np.abs(tg[:, :1])
            axes[0, p].plot(th, np.abs(tg), color="k", lw=0.6, ls="--")
            # dots, not lines: a line would draw a vertical stroke at every phase wrap
            tphase = np.degrees(np.angle(tg * np.conj(tref)))
            axes[1, p].plot(th, tphase, ",", color="k")
        axes[0, p].set_title(f"{pol} amplitude" + (" (black: truth)" if truth else ""))
        axes[1, p].set_title(f"{pol} phase relative to {sol.stations[0]} [deg]")
        axes[1, p].set_xlabel("time since start [h]")
    axes[0, 1].legend(fontsize=7, ncol=2, loc="upper right")
    fig.suptitle(title)
    _save(fig, out)


def plot_image(image: Path, ra: np.ndarray, dec: np.ndarray, out: Path, title: str,
               cutout_deg: float, truth: list[Source] | None = None) -> None:  # fmt: skip
    """Central cut-out of the image, found sources circled, true positions crossed."""
    with fits.open(image) as hdul:
        data = np.squeeze(hdul[0].data)
        wcs = WCS(hdul[0].header).celestial
    ny, nx = data.shape
    half = int(min(nx, ny) / 2)
    scale = abs(wcs.wcs.cdelt[0])
    half = min(half, int(cutout_deg / 2 / scale))
    cy, cx = ny // 2, nx // 2
    cut = data[cy - half : cy + half, cx - half : cx + half]
    fig = plt.figure(figsize=(8, 7))
    ax = fig.add_subplot(projection=wcs[cy - half : cy + half, cx - half : cx + half])
    vmax = np.nanpercentile(cut, 99.9)
    rms = 1.4826 * np.nanmedian(np.abs(cut - np.nanmedian(cut)))
    im = ax.imshow(cut, origin="lower", cmap="inferno", vmin=-3 * rms, vmax=vmax)
    fig.colorbar(im, ax=ax, label="Jy/beam")
    tr = ax.get_transform("world")
    ax.scatter(ra, dec, s=160, facecolors="none", edgecolors="cyan", transform=tr, label="found")
    if truth:
        ax.scatter([s.ra_deg for s in truth], [s.dec_deg for s in truth], marker="+", s=60,
                   color="lime", transform=tr, label="truth")  # fmt: skip
    ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel("RA")
    ax.set_ylabel("Dec")
    ax.set_title(f"{title}: {len(ra)} sources, rms {1e3 * rms:.2f} mJy/beam")
    _save(fig, out)


def plot_flux(matches: list[Match], out: Path, title: str) -> None:
    found = [m for m in matches if m.found]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    true = np.array([m.true_flux_jy for m in found])
    ratio = np.array([m.flux_ratio for m in found])
    sep = np.array([m.separation_arcsec for m in found])
    ax1.axhline(1, color="k", lw=0.8)
    ax1.axhspan(0.95, 1.05, color="0.9", label="±5 %")
    ax1.semilogx(true, ratio, "o", color="tab:blue")
    missed = [m.true_flux_jy for m in matches if not m.found]
    if missed:
        ax1.semilogx(missed, np.ones(len(missed)), "x", color="tab:red", label="not found")
    ax1.set_xlabel("true flux [Jy]")
    ax1.set_ylabel("measured / true flux")
    ax1.legend(fontsize=8)
    ax2.semilogx(true, sep, "o", color="tab:green")
    ax2.set_xlabel("true flux [Jy]")
    ax2.set_ylabel("position error [arcsec]")
    fig.suptitle(f"{title}: {len(found)}/{len(matches)} true sources found")
    _save(fig, out)
