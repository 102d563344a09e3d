"""A placement plan as a picture: one column per site, its subbands as chips (green when read
from the site's own RSE, orange when copied from another, named), the processing site marked,
and an arrow from each other site to it carrying its preprocessed subbands. What a reader of
the README or of a plan wants to see at a glance: where the work goes and what has to move.
"""

from __future__ import annotations

from pathlib import Path

from .plan import GIB, Plan

LOCAL, MOVED, PROCESS = "#8fd18f", "#f5b461", "#9ec5f0"
CHIP_H, HEADER_H, GAP = 0.5, 1.6, 0.15


def draw(plan: Plan, path: Path, title: str = "") -> list[str]:
    """Write the picture (PNG or SVG by the suffix); returns its texts, top to bottom per site,
    for tests and for the log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, Rectangle

    rows = max((len(s.preprocess) for s in plan.sites), default=0)
    height = HEADER_H + rows * (CHIP_H + GAP) + 1.8
    fig, ax = plt.subplots(figsize=(3.2 * len(plan.sites), 0.45 * height + 1.2))
    texts: list[str] = []

    def text(x: float, y: float, s: str, **kw: object) -> None:
        ax.text(x, y, s, ha="center", va="center", **kw)  # type: ignore[arg-type]
        texts.append(s)

    by_id = {s.id: s for s in plan.subbands}
    centres = {}
    for i, site in enumerate(plan.sites):
        x = i * 3.2
        centres[site.name] = x + 1.4
        colour = PROCESS if site.process else "#eeeeee"
        ax.add_patch(Rectangle((x, 0), 2.8, height - 0.6, facecolor=colour, edgecolor="#555"))
        text(x + 1.4, height - 1.0, f"{site.name}\n{site.rse}", fontsize=10, weight="bold")
        if site.process:
            text(x + 1.4, height - 1.65, "calibration + imaging", fontsize=8, style="italic")
        for k, sid in enumerate(site.preprocess):
            y = height - HEADER_H - 0.6 - (k + 1) * (CHIP_H + GAP)
            sub = by_id.get(sid)
            local = sub is None or sub.read_from == site.rse
            ax.add_patch(Rectangle((x + 0.15, y), 2.5, CHIP_H,
                                   facecolor=LOCAL if local else MOVED, edgecolor="#777"))
            label = sid if local else f"{sid} \u2190 {sub.read_from if sub else '?'}"
            text(x + 1.4, y + CHIP_H / 2, label, fontsize=7)
    processing = plan.processing_site
    for site in plan.sites:
        if site.process or not site.preprocess:
            continue
        start, end = centres[site.name], centres[processing.name]
        ax.add_patch(FancyArrowPatch((start, 0.35), (end, 0.35), connectionstyle="arc3,rad=0.25",
                                     arrowstyle="-|>", mutation_scale=14, color="#2a6fb0"))
        text((start + end) / 2, -0.45, f"{site.name}: {len(site.preprocess)} preprocessed "
             f"subbands → {processing.name}", fontsize=7, color="#2a6fb0")
    p = plan.predicted
    summary = (f"predicted: {p.bytes_moved / GIB:.2f} GiB moved "
               f"(raw {p.raw_bytes_moved / GIB:.2f}, products {p.product_bytes_moved / GIB:.2f}), "
               f"makespan {p.makespan_s:.0f} s"
               + ("" if plan.optimal else " (not proven optimal)"))
    text(1.6 * len(plan.sites) - 0.2, -1.2, summary, fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    ax.set_xlim(-0.2, 3.2 * len(plan.sites))
    ax.set_ylim(-1.6, height)
    ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return texts
