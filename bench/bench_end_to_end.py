"""End to end: the demo observation processed in DataLake mode vs on a local copy of the same
inputs, with `lofar-datalake compare --demo` (the local DataLake must be up). Writes
bench/results/end_to_end.json in the figures format bench/summary.py reads (the runs' own
directories, large, stay in benchmarks/end_to_end/, not committed). Target: <= 1.10x.

The DataLake run stages the subbands to SITE_A under each stage policy measured (`rule`, the
local profile's: Rucio rules, the conveyor and FTS; `fts`: FTS jobs the provider submits
itself) and stores the products back; the local-copy run reads a copy made beforehand (its
making is reported, not counted) and writes its products into that copy. Both run the same DAG
with the same profile; each policy's comparisons pair its own local-copy runs.

    .venv/bin/python bench/bench_end_to_end.py [--reps N] [--policies rule,fts]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from record import END_TO_END, RESULTS, Provenance, paired_ratios, spread, write

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).with_name("lofar-datalake"))


def one_comparison(out: Path, policy: str) -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    # A new observation each time: its subbands are on SITE_B/SITE_C only, so the DataLake run
    # really stages them to SITE_A.
    done = subprocess.run([CLI, "compare", "--demo", "--fresh-observation", "--out", str(out),
                           "--", "--storage-datalake-stage-policy", policy],
                          cwd=ROOT, check=False)
    verdict = json.loads((out / "verdict.json").read_text())
    if done.returncode != 0:
        raise SystemExit(f"compare exited {done.returncode}; see {out / 'report.html'}")
    return verdict


def figures(verdicts: list[dict[str, Any]], policy: str) -> list[dict[str, Any]]:
    datalake = [v["runs"]["datalake"]["wall_s"] for v in verdicts]
    local = [v["runs"]["local"]["wall_s"] for v in verdicts]
    staging = [v["runs"]["datalake"]["staging"]["wall_s"] for v in verdicts]
    copying = [v["runs"]["local"]["copy"]["wall_s"] for v in verdicts]
    ratios = paired_ratios(datalake, local)
    ratio = round(statistics.median(ratios), 3)
    n = len(verdicts)
    return [
        {"figure": f"end-to-end wall time, DataLake mode, stage policy {policy} (demo "
                   "observation)",
         "value": statistics.median(datalake), "unit": "s",
         "baseline": statistics.median(local), "baseline_name": "local-copy mode",
         "ratio": ratio, "ratio_means": "DataLake / local copy",
         "goal": END_TO_END.as_dict(), "met": END_TO_END.met(ratio),
         "spread": {"value": spread(datalake), "baseline": spread(local),
                    "ratio": spread(ratios)},
         "note": f"products equivalent in {sum(v['equivalent'] for v in verdicts)}/{n}"},
        {"figure": f"  of which staging to the site, stage policy {policy}"
                   + (" (Rucio rules: conveyor + FTS)" if policy == "rule" else
                      " (FTS jobs of the provider)" if policy == "fts" else ""),
         "value": statistics.median(staging), "unit": "s", "baseline": None, "ratio": None,
         "goal": None, "met": None, "spread": {"value": spread(staging)},
         "note": f"making the local copy took {statistics.median(copying):.1f} s (not counted)"},
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="at least 3 (default: %(default)s)")
    parser.add_argument("--runs", type=Path, default=ROOT / "benchmarks" / "end_to_end",
                        help="the comparisons' run directories (default: %(default)s)")
    parser.add_argument("--policies", default="rule,fts",
                        help="stage policies of the DataLake run, each compared apart "
                             "(default: %(default)s)")
    parser.add_argument("--json", type=Path, default=RESULTS / "end_to_end.json")
    args = parser.parse_args()
    if args.reps < 3:
        parser.error("--reps: a median needs at least 3 repetitions")
    provenance = Provenance()
    policies = args.policies.split(",")
    verdicts = {p: [one_comparison(args.runs / p / f"rep-{i}", p) for i in range(args.reps)]
                for p in policies}
    result = {"benchmark": "end_to_end", "repetitions": args.reps, "policies": policies,
              "figures": [f for p in policies for f in figures(verdicts[p], p)],
              "runs": {p: [{k: v["runs"][k]["wall_s"] for k in ("datalake", "local")}
                           for v in verdicts[p]] for p in policies},
              "method": "each repetition: `lofar-datalake compare --demo --fresh-observation "
                        "-- --storage-datalake-stage-policy P` (a new observation, so the "
                        "DataLake run really stages its inputs), the DataLake run and the "
                        "local-copy run back to back; per policy, the ratio is the median of "
                        "the per-repetition ratios"}
    write(args.json, result, provenance)
    for f in result["figures"]:
        ratio = (f" ratio {f['ratio']:.2f} (goal {f['goal']['text']}: "
                 f"{'met' if f['met'] else 'NOT met'})" if f["ratio"] else "")
        print(f"{f['figure']}: {f['value']:.1f} {f['unit']}{ratio}; {f['note']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
