"""Placement over three sites: the optimal plan against everything at the site holding the most
data and against round-robin, in bytes moved and makespan, and each plan's predictions against
what its chain took. Writes bench/results/placement.json in the figures format bench/summary.py
reads.

It starts a testbed of its own (in a temporary directory). Each chain gets a fresh simulated
observation (new observation ids, so no site already holds a copy an earlier chain made) of N
subbands per beam, seeded unevenly: half of the archives at SITE_B_DISK, a third at SITE_C_DAV,
the rest at SITE_A_DISK, dealt subband by subband over both beams. Then `lofar-datalake plan
--strategy S` and `lofar-datalake run --plan`, whose chain.json holds predicted and actual
figures. A first chain, not counted, measures the stage costs and each stage's run overhead
every plan is made with (its directory as `--runs`), so all strategies and repetitions are
predicted from the same costs; it also warms the caches the counted chains would otherwise pay
for.

    .venv/bin/python bench/bench_placement.py [--subbands 3] [--reps 3]
    .venv/bin/python bench/bench_placement.py --smoke --reps 1 --subbands 2 --json /tmp/p.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from statistics import median
from typing import Any

import yaml
from record import RESULTS, Provenance, paired_ratios, scratch, spread, write

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).with_name("lofar-datalake"))
MIB = 1024**2
SITES = {  # site: (profile, RSE), in the sites file's order (round-robin processes at the first)
    "SITE_A": ("profiles/local", "SITE_A_DISK"),
    "SITE_B": ("profiles/local-site-b", "SITE_B_DISK"),
    "SITE_C": ("profiles/local-site-c", "SITE_C_DAV"),
}
# A GiB moved weighs as much as 100 s of makespan: one simulated subband (~120 MiB) moved is
# worth ~12 s, about one subband's preprocessing, so neither term decides alone.
WEIGHTS = {"per_gib_moved": 1.0, "per_second": 0.01}
FIRST_OBSID, OBSID_STEP = 780000, 10
OPTIMAL, ROUND_ROBIN = "optimal", "round-robin"
MEASURES = (("makespan_s", "makespan", "s", 1.0), ("bytes_moved", "bytes moved", "MiB", MIB))


def uneven_rses(subbands: int) -> list[str]:
    """The RSE of each archive in name order (calibrator SB000.., then target SB000..): half at
    SITE_B_DISK, a third at SITE_C_DAV, the rest at SITE_A_DISK, dealt subband by subband
    over both beams so that each beam is spread too."""
    n = 2 * subbands
    n_b, n_c = n // 2, round(n / 3)
    dealt = ["SITE_B_DISK"] * n_b + ["SITE_C_DAV"] * n_c + ["SITE_A_DISK"] * (n - n_b - n_c)
    return [dealt[(j % subbands) * 2 + j // subbands] for j in range(n)]


def site_holding_most(rses: Sequence[str]) -> str:
    counts = Counter(rses)
    return next(site for site, (_, rse) in SITES.items()
                if counts[rse] == max(counts.values()))


def sites_file(path: Path) -> Path:
    """The three sites, each reading the others' RSEs and all running on this machine's cores;
    no keep_at_site, so the solver decides where each subband goes. `stage_seconds` and
    `run_overhead_s` only until the first chain has measured them."""
    rses = [rse for _, rse in SITES.values()]
    path.write_text(yaml.safe_dump({
        "sites": {site: {"profile": profile, "rse": rse, "cores": 2,
                         "reads": [r for r in rses if r != rse]}
                  for site, (profile, rse) in SITES.items()},
        "shared_cores": {"this-machine": {"cores": os.cpu_count() or 1, "sites": list(SITES)}},
        "weights": WEIGHTS,
        "stage_seconds": {"preprocess": 20.0, "process": 60.0},
        "time_limit_s": 20,
    }, sort_keys=False))
    return path


def testbed_profile(bed: Any, path: Path) -> Path:
    """A profile holding only where this testbed is, for `plan` to reach its Rucio."""
    from lofar_datalake_testbed.demo import pipeline

    path.mkdir(parents=True, exist_ok=True)
    args = pipeline.testbed_args(bed)
    (path / "config.yaml").write_text(yaml.safe_dump(
        {args[i].removeprefix("--"): args[i + 1] for i in range(0, len(args), 2)}))
    return path


def cli(env: Mapping[str, str], log: Path, *args: str) -> str:
    """`lofar-datalake ARGS` from the project root (the profiles are found there); its output
    in `log`."""
    done = subprocess.run([CLI, *args], cwd=ROOT, env=dict(env), capture_output=True,
                          text=True, timeout=3600, check=False)
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"lofar-datalake {args[0]} failed; see {log}\n{done.stderr[-2000:]}")
    return done.stdout


def one_chain(bed: Any, env: Mapping[str, str], work: Path, k: int, strategy: str,
              args: argparse.Namespace, cost_runs: Sequence[str]) -> dict[str, Any]:
    """A fresh observation seeded unevenly, planned with `strategy` and run; the chain's
    record."""
    from lofar_datalake.placement.chain import table as chain_table
    from lofar_datalake.simulate.observation import SimulationParams, simulate
    from lofar_datalake_testbed.demo import pipeline
    from lofar_datalake_testbed.seed import seed

    work.mkdir(parents=True)
    data = work / "data"
    obsid = FIRST_OBSID + OBSID_STEP * k
    simulate(SimulationParams(seed=13, sky_seed=13, calibrator_obsid=obsid,
                              target_obsid=obsid + 1, n_subbands=args.subbands), data)
    seed(bed, data, rses=uneven_rses(args.subbands))
    config = pipeline.write_demo_config(work, data, "products/unused", ROOT)
    plan = work / "plan.json"
    cli(env, work / "plan.log", "plan", "--sites", str(args.sites_file), "--config",
        str(config), "--profile", str(args.profile), "--strategy", strategy, "--out", str(plan),
        *[a for run in cost_runs for a in ("--runs", run)])
    print(f"==> {strategy}: L{obsid}/L{obsid + 1}, {describe_plan(json.loads(plan.read_text()))}",
          flush=True)
    cli(env, work / "run.log", "run", "--plan", str(plan), "--configfile", str(config),
        "--chain", f"bench/placement-{args.tag}/{k:02d}", "--out", str(work / "chain"),
        "--", *pipeline.testbed_args(bed))
    record = json.loads((work / "chain" / "chain.json").read_text())
    print(chain_table(record), flush=True)
    if not record["complete"]:
        raise SystemExit(f"chain {work / 'chain'} is not complete")
    for archive in data.glob("*.MS.tar"):  # in the DataLake now; keeps the disk from filling
        archive.unlink()
    return record


def describe_plan(plan: Mapping[str, Any]) -> str:
    where = ", ".join(f"{s['name']} {len(s['preprocess'])}" for s in plan["sites"]
                      if s["preprocess"])
    return f"preprocessing at {where}; processing at {plan['processing_site']}"


def summarise(record: Mapping[str, Any], strategy: str) -> dict[str, Any]:
    """What the figures need of a chain's record."""
    plan = record["plan"]
    return {"strategy": strategy, "chain": record["chain"], "plan": describe_plan(plan),
            "optimal": plan["optimal"], "costs": dict(plan["costs"]),
            "predicted": dict(record["predicted"]),
            "actual": {k: v for k, v in record["actual"].items() if k != "bytes_source"}}


def measure(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    from lofar_datalake_testbed.layout import Layout, default_dir
    from lofar_datalake_testbed.orchestrator import Testbed
    from lofar_datalake_testbed.server_env import ENV_VAR

    # The servers' environment the project's testbed installed (as the tests share it).
    os.environ.setdefault(ENV_VAR, str(default_dir() / "server-env"))
    bed = Testbed(Layout(root / "testbed"))
    try:
        bed.up()
        env = {**os.environ, **bed.client_env(), **quiet_executors(root)}
        os.environ.update(bed.client_env())
        args.profile = testbed_profile(bed, root / "profile")
        args.sites_file = sites_file(root / "sites.yaml")
        return chains(bed, env, root, args)
    finally:
        bed.down()


def chains(bed: Any, env: Mapping[str, str], root: Path,
           args: argparse.Namespace) -> dict[str, Any]:
    """The uncounted first chain (its records give the stage costs), then per repetition each
    strategy once, their order rotated so that drift hits every strategy alike."""
    print("== first chain, not counted: the stage costs and run overheads every plan is made "
          "with", flush=True)
    first = one_chain(bed, env, root / "costs", 0, args.strategies[1], args, [])
    cost_runs = [first["out"]]
    reps: list[dict[str, Any]] = []
    k = 1
    for i in range(args.reps):
        print(f"== repetition {i + 1} of {args.reps}", flush=True)
        rep = {}
        for j in range(len(args.strategies)):
            strategy = args.strategies[(i + j) % len(args.strategies)]
            slug = strategy.replace(":", "-")
            record = one_chain(bed, env, root / f"rep-{i}" / slug, k, strategy, args, cost_runs)
            rep[strategy] = summarise(record, strategy)
            k += 1
        reps.append(rep)
    return {"costs_from": summarise(first, args.strategies[1]), "repetitions": reps}


def quiet_executors(root: Path) -> dict[str, str]:
    """Snakemake's Slurm plugin runs `scontrol` on every start (10 s where no controller
    answers): point it at one that refuses at once, as the tests do; no HTCondor config."""
    if "SLURM_CONF" in os.environ:
        return {"CONDOR_CONFIG": os.environ.get("CONDOR_CONFIG", "/dev/null")}
    conf = root / "noslurm.conf"
    conf.write_text(
        "ClusterName=none\nSlurmctldHost=localhost(127.0.0.1)\nSlurmctldPort=9\nMessageTimeout=1\n"
        "NodeName=localhost CPUs=1\nPartitionName=none Nodes=localhost\n")
    return {"SLURM_CONF": str(conf), "CONDOR_CONFIG": os.environ.get("CONDOR_CONFIG", "/dev/null")}


def _ratios(numerators: Sequence[float | None], denominators: Sequence[float | None]
            ) -> list[float]:
    pairs = [(n, d) for n, d in zip(numerators, denominators, strict=True)
             if n is not None and d is not None]
    return paired_ratios([n for n, _ in pairs], [d for _, d in pairs])


def figure(name: str, unit: str, values: Sequence[float | None],
           baseline: Sequence[float | None] | None, baseline_name: str, ratio_means: str,
           note: str, scale: float = 1.0) -> dict[str, Any] | None:
    """One row: the median of `values` (divided by `scale`), against `baseline` per repetition
    where there is one; no target (the requirement asks for the figures, not a bound). None
    where no chain measured it (a run whose journal could not be read has no bytes moved)."""
    got = [v / scale for v in values if v is not None]
    if not got:
        return None
    row: dict[str, Any] = {"figure": name, "value": round(median(got), 2), "unit": unit,
                           "goal": None, "met": None, "note": note,
                           "spread": {"value": spread(got)}}
    if baseline is not None:
        base = [b / scale for b in baseline if b is not None]
        ratios = _ratios(values, baseline)
        row |= {"baseline": round(median(base), 2) if base else None,
                "baseline_name": baseline_name, "ratio_means": ratio_means,
                "ratio": round(median(ratios), 3) if ratios else None}
        if base:
            row["spread"]["baseline"] = spread(base)
        if ratios:
            row["spread"]["ratio"] = spread(ratios)
    return row


def figures(reps: Sequence[Mapping[str, Mapping[str, Any]]], strategies: Sequence[str],
            setup: str) -> list[dict[str, Any]]:
    """Per strategy its actual makespan and bytes moved against all at one site (the second
    strategy), each repetition paired; then each strategy's predictions against the actual."""
    one_site = strategies[1]

    def series(strategy: str, side: str, key: str) -> list[float | None]:
        return [r[strategy][side][key] for r in reps]

    out: list[dict[str, Any] | None] = []
    for key, label, unit, scale in MEASURES:
        for strategy in strategies:
            name = f"  {label}, {strategy}" if out else f"{label}, {strategy} ({setup})"
            base = None if strategy == one_site else series(one_site, "actual", key)
            out.append(figure(
                name, unit, series(strategy, "actual", key), base,
                f"all at one site, {one_site}", f"{strategy} / {one_site}",
                _note(key, strategy, reps, one_site), scale))
    for key, label, unit, scale in MEASURES:
        for strategy in strategies:
            out.append(figure(
                f"  {label} predicted vs actual, {strategy}", unit,
                series(strategy, "actual", key), series(strategy, "predicted", key),
                "predicted by the plan", "actual / predicted",
                "actual, against the plan's prediction of the same chain", scale))
    return [row for row in out if row is not None]


def _note(key: str, strategy: str, reps: Sequence[Mapping[str, Mapping[str, Any]]],
          one_site: str) -> str:
    if key == "makespan_s":
        plans = Counter(r[strategy]["plan"] for r in reps).most_common()
        return ("the slowest site's preprocess run, then the process run; "
                + "; ".join(f"{p} ({c} of {len(reps)})" for p, c in plans))
    raw = [r[strategy]["actual"]["raw_bytes_moved"] for r in reps]
    made = [r[strategy]["actual"]["product_bytes_moved"] for r in reps]
    return (f"raw subbands {_mib(raw)} + preprocessed subbands to the processing site "
            f"{_mib(made)} (medians)" + (" (the baseline)" if strategy == one_site else ""))


def _mib(values: Sequence[int | None]) -> str:
    got = [v for v in values if v is not None]
    return f"{median(got) / MIB:.0f} MiB" if got else "-"


def setup_text(subbands: int) -> str:
    rses = Counter(uneven_rses(subbands))
    held = ", ".join(f"{rses[rse]} at {rse}" for rse in ("SITE_B_DISK", "SITE_C_DAV",
                                                         "SITE_A_DISK"))
    return (f"{subbands} subbands per beam, {2 * subbands} archives: {held}; weights "
            f"{WEIGHTS['per_gib_moved']:g} per GiB moved, {WEIGHTS['per_second']:g} per second; "
            "three sites of 2 cores sharing this machine")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subbands", type=int, default=3, help="per beam (default: %(default)s)")
    parser.add_argument("--reps", type=int, default=3, help="at least 3 (default: %(default)s)")
    parser.add_argument("--smoke", action="store_true",
                        help="a quick look: allows --reps 1; --json must be outside "
                             "bench/results")
    parser.add_argument("--json", type=Path, default=RESULTS / "placement.json")
    parser.add_argument("--keep", type=Path, default=None,
                        help="a new directory for the runs and their testbed, kept afterwards")
    args = parser.parse_args()
    if args.reps < (1 if args.smoke else 3):
        parser.error("--reps: a median needs at least 3 repetitions (1 with --smoke)")
    if args.smoke and args.json.resolve().is_relative_to(RESULTS):
        parser.error("--smoke: give --json a path outside bench/results")
    if args.subbands < 2:
        parser.error("--subbands: at least 2, so that the data lies at all three sites")
    args.strategies = [OPTIMAL, f"site:{site_holding_most(uneven_rses(args.subbands))}",
                       ROUND_ROBIN]
    args.tag = uuid.uuid4().hex[:8]
    provenance = Provenance()
    started = time.monotonic()
    with scratch("lofar-datalake-bench-placement-", args.keep) as root:
        measured = measure(args, root)
    write(args.json, {
        "benchmark": "placement", "repetitions": args.reps, "smoke": args.smoke,
        "strategies": args.strategies, "subbands_per_beam": args.subbands,
        "figures": figures(measured["repetitions"], args.strategies, setup_text(args.subbands)),
        "runs": measured, "wall_s": round(time.monotonic() - started, 1),
        "method": "one testbed; a first chain (all at the site holding the most data, not "
                  "counted) whose runs' benchmark records give the stage costs and whose runs' "
                  "wall times give each stage's run overhead for every plan (`plan --runs "
                  "CHAIN`); then per repetition each strategy once, in rotated order, "
                  "each on a fresh simulated observation seeded unevenly, planned with `plan "
                  "--strategy` (optimal: solved with the weights, no keep_at_site) and run "
                  "with `run --plan`; figures from each chain's chain.json; ratios are the "
                  "medians of the per-repetition ratios",
    }, provenance)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
