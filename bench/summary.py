"""One table of every benchmark result in benchmarks/: figure / value / baseline / ratio / goal /
met?, printed and written as benchmarks/summary.md (a markdown table for the README, with the
machine it was measured on).

Reads the formats of bench_resolution.py (resolution.json), bench_scale.py (scale.json) and of
every result with a `figures` list (bench_staging.py, bench_compute.py, and end_to_end.json when
it is there): each figure is {figure, value, unit, baseline, baseline_name, ratio, ratio_means,
goal: {text, ...} | null, met: bool | null, note}.

    .venv/bin/python bench/summary.py [--dir benchmarks]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["resolution", "scale", "staging_site", "staging_remote", "compute", "end_to_end"]
TITLES = {
    "resolution": "Input resolution (`snakemake -n`, bench_resolution.py)",
    "scale": "DAG scale (dry runs, bench_scale.py)",
    "staging_site": "Stage-in of a file already at the site (bench_staging.py site)",
    "staging_remote": "Parallel stage-in from a remote RSE (bench_staging.py remote)",
    "compute": "Compute efficiency per stage (bench_compute.py)",
    "end_to_end": "End to end: DataLake mode vs local copy (end_to_end.json)",
}
SCALE_GOAL_S, SCALE_GOAL_MIB = 15.0, 1024.0  # for 244 subbands of one observation
Row = dict[str, Any]


def row(figure: str, value: str, baseline: str = "-", ratio: str = "-", goal: str = "-",
        met: bool | None = None) -> Row:
    return {"figure": figure, "value": value, "baseline": baseline, "ratio": ratio,
            "goal": goal, "met": met}


def _num(x: float) -> str:
    return f"{x:,.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def from_figures(data: dict[str, Any]) -> list[Row]:
    rows = []
    for f in data.get("figures", []):
        unit = f" {f['unit']}" if f.get("unit") else ""
        base = "-"
        if f.get("baseline") is not None:
            base = f"{_num(f['baseline'])}{unit} ({f.get('baseline_name') or 'baseline'})"
        ratio = "-"
        if f.get("ratio") is not None:
            ratio = f"{_num(f['ratio'])}x" + (f" ({f['ratio_means']})" if f.get("ratio_means")
                                              else "")
        value = f"{_num(f['value'])}{unit}" + (f"; {f['note']}" if f.get("note") else "")
        goal = (f.get("goal") or {}).get("text", "-")
        rows.append(row(f["figure"], value, base, ratio, goal, f.get("met")))
    return rows


def from_resolution(data: dict[str, Any]) -> list[Row]:
    rows = []
    for size, s in data.get("sizes", {}).items():
        ours, theirs = s["providers"].get("datalake"), s["providers"].get("rucio")
        if not ours:
            continue
        ratio, goal = s.get("ratio_rucio_to_datalake", {}), s.get("goal", {})
        base = "rucio plugin 0.6"
        n = f"{int(size):,} inputs"
        rows.append(row(
            f"Rucio requests per 1,000 inputs ({n})", _num(ours["requests_per_1000"]),
            f"{_num(theirs['requests_per_1000'])} ({base})" if theirs else "-",
            f"{ratio['requests']}x fewer" if ratio.get("requests") else "-",
            f"<= {goal.get('requests_per_1000')}", goal.get("requests_met")))
        rows.append(row(
            f"time added over local files, per 1,000 inputs ({n})",
            f"{ours['added_s_per_1000']:.2f} s (CPU {ours['added_cpu_s_per_1000']:.2f} s)",
            f"{theirs['added_s_per_1000']:.2f} s ({base})" if theirs else "-",
            f"{ratio['added_time']}x less" if ratio.get("added_time") else "-",
            f"<= {goal.get('added_s_per_1000')} s", goal.get("added_time_met")))
    return rows


def from_scale(data: list[dict[str, Any]]) -> list[Row]:
    rows = []
    for r in data:
        aimed = r["subbands"] == 244 and r["observations"] == 1
        what = f"{r['observations']} obs x {r['subbands']} subbands, {r['jobs']:,} jobs"
        rows.append(row(f"dry run wall time ({what})", f"{r['wall_s']:.1f} s",
                        goal=f"<= {SCALE_GOAL_S:g} s" if aimed else "-",
                        met=r["wall_s"] <= SCALE_GOAL_S if aimed else None))
        rows.append(row(f"dry run peak RSS ({what})", f"{r['peak_rss_mib']:.0f} MiB",
                        goal="<= 1 GiB" if aimed else "-",
                        met=r["peak_rss_mib"] <= SCALE_GOAL_MIB if aimed else None))
    return rows


def load(directory: Path) -> dict[str, list[Row]]:
    sections: dict[str, list[Row]] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            sections[path.stem] = [row(f"{path.name}: unreadable ({exc})", "-")]
            continue
        if isinstance(data, dict) and "figures" in data:
            sections[path.stem] = from_figures(data)
        elif isinstance(data, dict) and "sizes" in data:
            sections[path.stem] = from_resolution(data)
        elif isinstance(data, list) and data and "peak_rss_mib" in data[0]:
            sections[path.stem] = from_scale(data)
        else:
            sections[path.stem] = [row(f"{path.name}: format not recognised", "-")]
    if "end_to_end" not in sections:
        sections["end_to_end"] = [row("not measured yet (benchmarks/end_to_end.json)", "-")]
    return sections


def machine() -> dict[str, str]:
    """From /proc (and /sys for the disk's kind): what the figures were measured on."""
    cpu = next((line.split(":", 1)[1].strip() for line in _lines("/proc/cpuinfo")
                if line.startswith("model name")), "unknown")
    mem_kib = next((int(line.split()[1]) for line in _lines("/proc/meminfo")
                    if line.startswith("MemTotal:")), 0)
    where = str(ROOT)
    mount = max((line.split() for line in _lines("/proc/mounts")
                 if where.startswith(line.split()[1])), key=lambda m: len(m[1]),
                default=["?", "/", "?"])
    device = Path(mount[0]).name
    kind = mount[0]
    for base in (device, device.rstrip("0123456789").removesuffix("p")):
        rotational = Path(f"/sys/block/{base}/queue/rotational")
        if rotational.exists():
            spin = rotational.read_text().strip() == "1"
            virtual = base.startswith(("vd", "xvd"))
            kind = (f"{mount[0]} ({'virtio ' if virtual else ''}block device, "
                    f"{'reports rotational' if spin else 'SSD/NVMe'}), {mount[2]}")
            break
    load = " ".join(_lines("/proc/loadavg")[0].split()[:3]) if _lines("/proc/loadavg") else "?"
    return {"CPU": f"{cpu}, {os.cpu_count()} cores", "RAM": f"{mem_kib / 2**20:.1f} GiB",
            "disk": kind, "kernel": " ".join(_lines("/proc/version")[0].split()[:3])
            if _lines("/proc/version") else "?", "load average now": load}


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def ordered(sections: dict[str, list[Row]]) -> list[tuple[str, list[Row]]]:
    keys = [k for k in ORDER if k in sections] + sorted(k for k in sections if k not in ORDER)
    return [(k, sections[k]) for k in keys]


def met_text(met: bool | None) -> str:
    return {True: "met", False: "NOT met", None: "-"}[met]


def text_table(sections: dict[str, list[Row]]) -> str:
    out = []
    for key, rows in ordered(sections):
        out.append(f"\n== {TITLES.get(key, key)}")
        for r in rows:
            out.append(f"  {r['figure']}\n      {r['value']} | baseline {r['baseline']} | "
                       f"ratio {r['ratio']} | goal {r['goal']} | {met_text(r['met'])}")
    return "\n".join(out)


def markdown(sections: dict[str, list[Row]], box: dict[str, str]) -> str:
    lines = ["# Benchmark summary", "",
             "Measured on: " + "; ".join(f"{k} {v}" for k, v in box.items()) + ".", "",
             "| figure | value | baseline | ratio | goal | met? |", "|---|---|---|---|---|---|"]
    for key, rows in ordered(sections):
        lines.append(f"| **{TITLES.get(key, key)}** | | | | | |")
        for r in rows:
            cells = [r["figure"], r["value"], r["baseline"], r["ratio"], r["goal"],
                     met_text(r["met"])]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=ROOT / "benchmarks")
    args = parser.parse_args()
    if not args.dir.is_dir():
        raise SystemExit(f"no results in {args.dir}: run the benchmarks first (make bench)")
    sections = load(args.dir)
    box = machine()
    print("Machine: " + "; ".join(f"{k} {v}" for k, v in box.items()))
    print(text_table(sections))
    met = [r["met"] for rows in sections.values() for r in rows if r["met"] is not None]
    print(f"\ngoals met: {sum(met)} of {len(met)}")
    (args.dir / "summary.md").write_text(markdown(sections, box))
    print(f"markdown: {args.dir / 'summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
