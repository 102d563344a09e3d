"""QA of the calibrator reduction (`calibrator_transfer`): figure, and scores against the truth.

The truth of a simulated observation gives each station's gain as drifting gains × bandpass ×
clock × TEC phases. The bandpass a calibrator pipeline recovers is the time median of the
amplitude, so it is scored against |bandpass| × the time median of the drifting amplitude.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # jobs have no display

import matplotlib.pyplot as plt
import numpy as np

from ..simulate import truth as truth_files
from .calibration_scores import score_calibration
from .calibrator_transfer import Transfer, read_calibrator, reduce


def true_effects(
    tdir: Path, transfer: Transfer
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True clocks (station,), dTEC (time, station) and bandpass amplitude (freq, station, 2)
    on the transfer's stations, times and frequencies; an effect the simulation left out is
    zero (clock, dTEC) or flat (bandpass)."""
    cube = transfer.cube
    gains = truth_files.read_gains(tdir)
    order = [gains.stations.index(s) for s in cube.stations]
    level = np.median(np.abs(gains.gains), axis=0)[order]  # (station, 2)
    clock_ns = truth_files.clock_on(tdir, cube.stations)
    tec_tecu = truth_files.tec_on(tdir, cube.stations, cube.times)
    if clock_ns is None:
        clock_ns = np.zeros(len(order))
    if tec_tecu is None:
        tec_tecu = np.zeros((cube.times.size, len(order)))
    amplitude = np.ones((cube.freqs.size, len(order), 2))
    bandpass = truth_files.read_bandpass(tdir)
    if bandpass is not None:
        true_amp = np.abs(bandpass.bandpass)[:, order]
        for s in range(len(order)):
            for p in range(2):
                amplitude[:, s, p] = np.interp(cube.freqs, bandpass.freqs, true_amp[:, s, p])
    return clock_ns, tec_tecu, amplitude * level[None]


def qa_transfer(
    h5parms: list[Path], plot: Path, scores: Path, truth: str | None, title: str
) -> None:
    """Reduce the calibrator's solutions again (cheap, deterministic), plot and score them."""
    transfer = reduce(read_calibrator(h5parms))
    result: dict[str, Any] = {"truth": False}
    true = None
    if truth:
        true = true_effects(Path(truth), transfer)
        score = score_calibration(transfer.fit, true[0], true[1], transfer.bandpass, true[2])
        result = score.as_dict() | {"truth": True}
    plot_transfer(transfer, plot, title, true)
    scores.parent.mkdir(parents=True, exist_ok=True)
    scores.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")


def plot_transfer(
    transfer: Transfer,
    out: Path,
    title: str,
    true: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
) -> None:
    cube, fit = transfer.cube, transfer.fit
    ref = fit.reference
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(16, 4.5), width_ratios=[1.3, 1, 1.3])
    colours = plt.get_cmap("tab20")(np.linspace(0, 1, len(cube.stations)))
    mhz = cube.freqs / 1e6
    hours = (cube.times - cube.times[0]) / 3600
    for s, colour in enumerate(colours):
        ax1.plot(mhz, transfer.bandpass.amplitude[:, s, 0], ".", ms=3, color=colour)
        if s != ref:
            ax3.plot(hours, fit.tec_tecu[:, s], color=colour, lw=1)
        if true is not None:
            ax1.plot(mhz, true[2][:, s, 0], "--", lw=0.8, color=colour)
            if s != ref:
                ax3.plot(hours, true[1][:, s] - true[1][:, ref], "--", lw=0.8, color="k")
    x = np.arange(len(cube.stations))
    ax2.bar(x, fit.clock_ns, color=colours, label="solved")
    if true is not None:
        ax2.plot(x, true[0] - true[0][ref], "k_", ms=14, mew=2, label="true")
        ax2.legend(fontsize=8)
    ax2.set_xticks(x, cube.stations, rotation=60, ha="right", fontsize=7)
    ax1.set(xlabel="frequency [MHz]", ylabel="amplitude (XX)", title="bandpass per station")
    ax2.set(ylabel="clock [ns]", title=f"clocks relative to {cube.stations[ref]}")
    ax3.set(xlabel="time [h]", ylabel="dTEC [TECU]", title="differential TEC")
    dashed = " (dashed/black: truth)" if true is not None else ""
    fig.suptitle(f"{title}: calibrator solutions of {cube.freqs.size} channels{dashed}")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
