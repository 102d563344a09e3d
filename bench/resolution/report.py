"""The resolution benchmark's figures: medians, paired differences against the local-files
baseline, ratios between providers, goals, and the printed table."""

from __future__ import annotations

import statistics
from typing import Any

from record import ADDED_S_PER_1000, REQUESTS_PER_1000, spread

from resolution import seeding
from resolution.runner import Run, endpoints

# Each provider and the local-files baseline it is measured against (same venv).
PAIRS = (("datalake", "local"), ("rucio", "local-rucio-venv"))


def summarize(runs: dict[str, list[Run]], size: int) -> dict[str, Any]:
    per_k = size / 1000
    out: dict[str, Any] = {
        "inputs": size,
        "repetitions": {name: len(rs) for name, rs in runs.items()},
        "variants": {},
        "providers": {},
    }
    for name, rs in runs.items():
        out["variants"][name] = {
            "seconds": [round(r.seconds, 3) for r in rs],
            "median_s": round(statistics.median(r.seconds for r in rs), 3),
            "wall_s": spread([r.seconds for r in rs]),
            "cpu_seconds": [round(r.cpu_seconds, 3) for r in rs],
            "median_cpu_s": round(statistics.median(r.cpu_seconds for r in rs), 3),
            "requests": max(r.other for r in rs),
            "auth_requests": max(r.auth for r in rs),
            "endpoints": endpoints(max(rs, key=lambda r: len(r.requests)).requests, seeding.SCOPE),
        }
    for provider, baseline in PAIRS:
        if provider not in runs:
            continue
        # Paired differences: each repetition runs a provider right next to its baseline.
        pairs = list(zip(runs[provider], runs[baseline], strict=True))
        added = [p.seconds - b.seconds for p, b in pairs]
        cpu = [p.cpu_seconds - b.cpu_seconds for p, b in pairs]
        out["providers"][provider] = {
            "baseline": baseline,
            "added_s": round(statistics.median(added), 3),
            "added_s_per_1000": round(statistics.median(added) / per_k, 3),
            "added_s_each": [round(a, 3) for a in added],
            "added_s_per_1000_spread": spread([a / per_k for a in added]),
            # Split: Snakemake's own CPU time (client side) and the rest, waiting (server).
            "added_cpu_s_per_1000": round(statistics.median(cpu) / per_k, 3),
            "added_wait_s_per_1000": round(
                statistics.median(a - c for a, c in zip(added, cpu, strict=True)) / per_k, 3
            ),
            "requests_per_1000": round(out["variants"][provider]["requests"] / per_k, 2),
        }
    ours, theirs = out["providers"].get("datalake"), out["providers"].get("rucio")
    if ours and theirs:
        out["ratio_rucio_to_datalake"] = {
            "added_time": _ratio(theirs["added_s"], ours["added_s"]),
            "requests": _ratio(theirs["requests_per_1000"], ours["requests_per_1000"]),
        }
    if ours:
        out["goal"] = {
            "requests_per_1000": REQUESTS_PER_1000.bound,
            "added_s_per_1000": ADDED_S_PER_1000.bound,
            "requests_met": REQUESTS_PER_1000.met(ours["requests_per_1000"]),
            "added_time_met": ADDED_S_PER_1000.met(ours["added_s_per_1000"]),
        }
    return out


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 1) if b > 0 else None


def table(summary: dict[str, Any]) -> str:
    v, p = summary["variants"], summary["providers"]
    ours, theirs = p["datalake"], p.get("rucio")
    ratio = summary.get("ratio_rucio_to_datalake", {})
    goal = summary["goal"]

    def row(figure: str, mine: str, base: str = "-", rat: str = "-", aim: str = "-") -> str:
        return f"{figure:<40} {mine:>12} {base:>16} {rat:>9}  {aim}"

    def cell(name: str, key: str, fmt: str) -> str:
        return format(v[name][key], fmt) if name in v else "-"

    met = {True: "met", False: "NOT met"}
    lines = [
        f"N = {summary['inputs']:,} inputs of an intermediate rule; medians of repetitions ("
        + ", ".join(f"{name} {n}" for name, n in summary["repetitions"].items())
        + ")",
        row("figure", "datalake", "rucio plugin 0.6", "rucio/ours", "goal (datalake)"),
        row(
            "dry run with the provider [s]",
            cell("datalake", "median_s", ".2f"),
            cell("rucio", "median_s", ".2f"),
        ),
        row(
            "same workflow on local files [s]",
            cell("local", "median_s", ".2f"),
            cell("local-rucio-venv", "median_s", ".2f"),
        ),
        row(
            "added over local files, per 1,000 [s]",
            f"{ours['added_s_per_1000']:.2f}",
            f"{theirs['added_s_per_1000']:.2f}" if theirs else "-",
            f"{ratio['added_time']}x" if ratio.get("added_time") else "-",
            f"<= {goal['added_s_per_1000']} s: {met[goal['added_time_met']]}",
        ),
        row(
            "  of which CPU of Snakemake (client side)",
            f"{ours['added_cpu_s_per_1000']:.2f}",
            f"{theirs['added_cpu_s_per_1000']:.2f}" if theirs else "-",
        ),
        row(
            "  of which waiting (server, I/O)",
            f"{ours['added_wait_s_per_1000']:.2f}",
            f"{theirs['added_wait_s_per_1000']:.2f}" if theirs else "-",
        ),
        row(
            "Rucio requests per 1,000",
            f"{ours['requests_per_1000']:g}",
            f"{theirs['requests_per_1000']:g}" if theirs else "-",
            f"{ratio['requests']}x" if ratio.get("requests") else "-",
            f"<= {goal['requests_per_1000']}: {met[goal['requests_met']]}",
        ),
        row(
            "  + authentication requests per run",
            cell("datalake", "auth_requests", "d"),
            cell("rucio", "auth_requests", "d"),
        ),
    ]
    for name in ("datalake", "rucio"):
        if name in v:
            lines.append(f"  {name} requests: {v[name]['endpoints']}")
    return "\n".join(lines)
