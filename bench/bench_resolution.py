"""Input-resolution benchmark: what a storage provider adds to building the DAG (`snakemake -n`)
of a workflow whose N registered DataLake inputs belong to an intermediate rule.

Compares, on the same testbed files: the `datalake` plugin of this project; the
snakemake-storage-plugin-rucio 0.6.0 in a venv of its own (created if missing; only up to
--rucio-plugin-max-inputs, as it needs ~2 minutes per run at 10,000); the same workflow on local
files, in each venv (Snakemake's own cost, the baseline each provider is measured against).
Reports medians of at least 3 repetitions with their spread, the time each provider adds per
1,000 inputs, the Rucio requests (counted by the project's request counter in both venvs) and the
ratio between the providers, against the targets (at 10,000 inputs: <= 3 requests and
<= 0.3 s added per 1,000); writes them as JSON. `--profile` adds where the added time goes.
About 12 minutes with the defaults (1,000 and 10,000 inputs).

    .venv/bin/lofar-datalake testbed up --dir /tmp/tb-bench
    .venv/bin/python bench/bench_resolution.py --testbed /tmp/tb-bench [--sizes 1000,10000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from record import RESULTS, Provenance, write
from resolution import profiling, seeding, venvs
from resolution.report import PAIRS, summarize, table
from resolution.runner import (
    Run,
    Variant,
    clean_env,
    dry_run,
    variants,
    without_slurm_probe,
)

from lofar_datalake_testbed.layout import Layout, default_dir
from lofar_datalake_testbed.orchestrator import Testbed

ROOT = Path(__file__).resolve().parents[1]
PROJECT_VENV = Path(sys.prefix)
RSE = "SITE_A_DISK"
# Pairs timed back to back in each repetition: a provider and its baseline in the same venv.


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--testbed",
        type=Path,
        default=default_dir(),
        help="directory of a running testbed (default: %(default)s)",
    )
    parser.add_argument(
        "--sizes",
        default="1000,10000",
        help="comma-separated numbers of inputs (default: %(default)s)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="timed repetitions of every variant, at least 3 (default: %(default)s)",
    )
    parser.add_argument(
        "--rucio-plugin-max-inputs",
        type=int,
        default=1000,
        help="run the Rucio plugin only up to this many inputs (default: %(default)s)",
    )
    parser.add_argument(
        "--rucio-venv",
        type=Path,
        default=venvs.DEFAULT_DIR,
        help="venv of snakemake-storage-plugin-rucio (default: %(default)s)",
    )
    parser.add_argument(
        "--no-rucio-plugin", action="store_true", help="measure this project's plugin only"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also show where the added time goes (about a minute more)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=RESULTS / "resolution.json",
        help="results file (default: %(default)s)",
    )
    parser.add_argument(
        "--keep-slurm-probe",
        action="store_true",
        help="let the slurm executor plugin probe `scontrol` at start-up",
    )
    args = parser.parse_args()
    if args.repeat < 3:
        parser.error("--repeat: a median needs at least 3 repetitions")
    return args


def measure(
    chosen: list[Variant],
    size: int,
    prefix: str,
    local: Path,
    repeat: int,
    warm_up: bool,
    tmp: Path,
    env: dict[str, str],
) -> dict[str, list[Run]]:
    config = [f"prefix={prefix}", f"count={size}", f"local={local}"]
    if warm_up:  # .pyc files, the OS's and the database's caches
        for variant in chosen:
            dry_run(variant, tmp / f"n{size}-warm-{variant.name}", config, size, env)
    runs: dict[str, list[Run]] = {v.name: [] for v in chosen}
    for i in range(repeat):
        # Every other repetition in reverse order, so that drift hits all variants alike.
        for variant in chosen if i % 2 == 0 else chosen[::-1]:
            run = dry_run(variant, tmp / f"n{size}-{i}-{variant.name}", config, size, env)
            runs[variant.name].append(run)
            print(
                f"  N={size} rep {i + 1}/{repeat} {variant.name:<17} "
                f"{run.seconds:6.2f} s (CPU {run.cpu_seconds:5.2f} s) "
                f"{run.other:5d} requests (+{run.auth} auth)",
                file=sys.stderr,
                flush=True,
            )
    return runs


def profile(
    chosen: list[Variant],
    prefix: str,
    local: Path,
    tmp: Path,
    env: dict[str, str],
) -> dict[str, Any]:
    """Both views of `resolution.profiling` at 1,000 inputs."""
    from datalake_core.rucio_adapter import RucioAdapter

    names = seeding.names(prefix, 1000)
    split = profiling.request_split(RucioAdapter(), seeding.SCOPE, names, f"{prefix}/SB*.dat")
    config = [f"prefix={prefix}", "count=1000", f"local={local}"]
    groups: dict[str, dict[str, float]] = {}
    for variant in chosen:
        prof = tmp / f"{variant.name}.prof"
        dry_run(variant, tmp / f"profile-{variant.name}", config, 1000, env, profile_to=prof)
        groups[variant.name] = profiling.breakdown(prof)
    added = {
        provider: {g: round(groups[provider][g] - groups[baseline][g], 3) for g in profiling.GROUPS}
        for provider, baseline in PAIRS
        if provider in groups
    }
    return {
        "requests": {k: {kk: round(vv, 3) for kk, vv in d.items()} for k, d in split.items()},
        "cprofile_self_s": {k: {g: round(s, 3) for g, s in d.items()} for k, d in groups.items()},
        "cprofile_added_s": added,
    }


def profile_text(result: dict[str, Any]) -> str:
    lines = ["Requests of one bulk pass over 1,000 inputs (replayed; median of 3):"]
    for key, t in result["requests"].items():
        lines.append(
            f"  {key:<34} server+transfer {t['server_s']:5.2f} s   "
            f"client parsing {t['parse_s']:5.2f} s"
        )
    lines.append("Added over local files, by who spends it (cProfile self time, inflated):")
    providers = list(result["cprofile_added_s"])
    lines.append(f"  {'':<50}" + "".join(f"{p:>10}" for p in providers))
    for group in profiling.GROUPS:
        lines.append(
            f"  {group:<50}"
            + "".join(f"{result['cprofile_added_s'][p][group]:10.2f}" for p in providers)
        )
    lines.append(
        f"  {'total':<50}"
        + "".join(f"{sum(result['cprofile_added_s'][p].values()):10.2f}" for p in providers)
    )
    return "\n".join(lines)


def main() -> int:
    args = parse_args()
    provenance = Provenance()
    sizes = [int(s) for s in args.sizes.split(",")]
    bed = Testbed(Layout(args.testbed.resolve()))
    rucio_config = bed.layout.client_config
    os.environ.update({"RUCIO_CONFIG": str(rucio_config), "X509_USER_PROXY": str(bed.pki.proxy)})

    from datalake_core.rucio_adapter import RucioAdapter

    try:
        rucio = RucioAdapter()
        rucio.client.whoami()
    except Exception as exc:
        raise SystemExit(
            f"no testbed answering at {args.testbed} ({type(exc).__name__}); "
            f"start one: lofar-datalake testbed up --dir {args.testbed}"
        ) from None
    rucio_venv = None
    versions = {"project_venv": {n: metadata.version(n) for n in ("snakemake", "rucio-clients")}}
    if not args.no_rucio_plugin:
        rucio_venv = args.rucio_venv
        versions["rucio_plugin_venv"] = venvs.ensure_rucio_plugin_venv(rucio_venv)
    chosen = variants(PROJECT_VENV, rucio_venv, rucio_config)

    results: dict[str, Any] = {
        "benchmark": "resolution",
        "versions": versions,
        "rse": RSE,
        "slurm_probe_disabled": not args.keep_slurm_probe,
        "method": [
            "wall and CPU (user+system) time of `snakemake -n` in a fresh working directory",
            "added = median over repetitions of (provider run - local-files run of the same "
            "repetition, same venv); every other repetition runs the variants in reverse order",
            "requests: lines written by datalake_core.request_counter in both venvs; "
            "authentication counted apart",
        ],
        "sizes": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-resolution-") as name:
        tmp = Path(name)
        extra = (
            {}
            if args.keep_slurm_probe
            else {"PATH": f"{without_slurm_probe(tmp)}{os.pathsep}{os.environ.get('PATH', '')}"}
        )
        env = clean_env(extra)
        prefixes: dict[int, str] = {}
        for i, size in enumerate(sizes):
            prefixes[size] = prefix = f"bench/{time.time_ns()}-n{size}"
            started = time.monotonic()
            seeding.seed(rucio, prefix, size, RSE, tmp / f"local-{size}")
            print(
                f"registered {size} files under {seeding.SCOPE}:{prefix} on {RSE} "
                f"({time.monotonic() - started:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
            here = [
                v for v in chosen if size <= args.rucio_plugin_max_inputs or v.name not in PAIRS[1]
            ]
            runs = measure(
                here,
                size,
                prefix,
                tmp / f"local-{size}",
                args.repeat,
                warm_up=i == 0,
                tmp=tmp,
                env=env,
            )
            summary = summarize(runs, size)
            results["sizes"][str(size)] = {"prefix": prefix, **summary}
            print("\n" + table(summary) + "\n", flush=True)
        if args.profile:
            if 1000 not in prefixes:
                prefixes[1000] = f"bench/{time.time_ns()}-n1000"
                seeding.seed(rucio, prefixes[1000], 1000, RSE, tmp / "local-1000")
            results["profile"] = profile(chosen, prefixes[1000], tmp / "local-1000", tmp, env)
            print(profile_text(results["profile"]) + "\n", flush=True)
    write(args.json, results, provenance)
    return 0


if __name__ == "__main__":
    sys.exit(main())
