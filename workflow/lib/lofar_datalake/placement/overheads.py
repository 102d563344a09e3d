"""The fixed seconds of each stage's Snakemake run, learnt from earlier chains' records.

What the model's stage costs leave out of a run (Snakemake's start-up and DAG, staging inputs
in, storing products, jobs waiting on each other or on cores a site shares) is the run's wall
time less its jobs' benchmarked seconds spread over the cores it had: the site's, or its share
of a pool of cores the chain's concurrent preprocess runs shared. A chain's `chain.json`
holds each run's wall time and directory, whose benchmark records give its jobs' seconds; the
overhead of a stage is the median over the runs of that stage. Only a chain's first invocation
counts, and only when all its runs succeeded in it: a resumed run's wall time covers part of the
work and a rerun with nothing to do none of it.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .model import Overhead, SharedCores
from .sites import read_benchmarks

RECORD = "chain.json"
STAGES = ("preprocess", "process")


@dataclass(frozen=True)
class Learnt:
    overhead: Overhead
    source: str  # where each stage's overhead came from, for the plan
    samples: dict[str, list[float]]  # seconds of each run counted, by stage


def split_runs(paths: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    """Earlier runs given to `plan`, as (run directories, chain directories). A chain's
    directory (its `out`, holding chain.json) stands for its runs' directories as well."""
    runs: list[Path] = []
    chains: list[Path] = []
    for path in paths:
        if (path / RECORD).is_file():
            chains.append(path)
            runs.extend(Path(r["directory"]) for r in _record(path)["runs"])
        else:
            runs.append(path)
    return runs, chains


def _record(chain: Path) -> dict[str, Any]:
    try:
        record = json.loads((chain / RECORD).read_text())
    except ValueError as exc:
        raise ValueError(f"{chain / RECORD}: not JSON ({exc})") from exc
    if not isinstance(record, dict) or not str(record.get("format", "")).startswith(
            "lofar-datalake-chain/") or "runs" not in record:
        raise ValueError(f"{chain / RECORD}: not a chain record (no lofar-datalake-chain "
                         "format and runs)")
    return record


def run_overheads(record: Mapping[str, Any], cores: Mapping[str, int],
                  shared: Sequence[SharedCores] = ()) -> list[tuple[str, float]]:
    """(stage, seconds) of each run of a chain's first invocation, where all its runs
    succeeded. A site's cores come from the plan, else from `cores` (the sites file's)."""
    invocations = record.get("invocations") or []
    first = invocations[0]["runs"] if invocations else {}
    if not first or any(r["exit_code"] != 0 for r in first.values()):
        return []
    planned = {s["name"]: s.get("cores") or cores.get(s["name"]) for s in record["plan"]["sites"]}
    out = []
    for run in record["runs"]:
        name, site_cores = f"{run['site']}-{run['stage']}", planned.get(run["site"])
        if name not in first or not site_cores:
            continue
        site_cores = _share(run, site_cores, record["runs"], shared)
        jobs_s = sum(sum(v) for v in read_benchmarks([Path(run["directory"])]).values())
        out.append((run["stage"], max(0.0, first[name]["wall_s"] - jobs_s / site_cores)))
    return out


def _share(run: Mapping[str, Any], cores: float, runs: Sequence[Mapping[str, Any]],
           shared: Sequence[SharedCores]) -> float:
    """The cores a run had: its site's, or an even share of a pool it ran on beside the
    chain's runs of the same stage there (the preprocess runs run together)."""
    for group in shared:
        if run["site"] in group.sites:
            together = sum(1 for r in runs if r["stage"] == run["stage"]
                           and r["site"] in group.sites)
            cores = min(cores, group.cores / max(together, 1))
    return cores


def learn(chains: Sequence[Path], cores: Mapping[str, int], fallback: Overhead,
          shared: Sequence[SharedCores] = ()) -> Learnt:
    """Each stage's overhead from `chains`; a stage none of them measured keeps `fallback`."""
    samples: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for chain in chains:
        for stage, seconds in run_overheads(_record(chain), cores, shared):
            samples[stage].append(seconds)
    values = [round(statistics.median(samples[s]), 2) if samples[s] else getattr(
        fallback, f"{s}_s") for s in STAGES]
    source = "; ".join(
        f"{stage}: median of {len(samples[stage])} run(s) of {len(chains)} chain(s)"
        if samples[stage] else f"{stage}: run_overhead_s" for stage in STAGES)
    return Learnt(Overhead(*values), source, samples)
