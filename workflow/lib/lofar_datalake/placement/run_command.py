"""`lofar-datalake run --plan plan.json`: execute a placement plan over its sites.

Each site with subbands preprocesses them in its own Snakemake run, all sites at once since
they share nothing but the DataLake; when every one has succeeded, the processing site
calibrates and images from the preprocessed subbands they stored. Each run's output goes to a
log in its directory. The chain ends as one tree of products (`<out>/results`) and one record
(`<out>/chain.json`) with the plan's predictions against what the runs took.

Nothing stored is lost when a run fails: run the same command with the same `--chain` and
`--out` again, and each Snakemake run does only what is missing (a finished preprocess run
finds its outputs and does nothing). Once the chain has succeeded its preprocessed files are
released (intermediates.py). `lofar-datalake compare --chain <out>` compares the chain with one
run of the whole chain on a local copy of its raw inputs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from . import chain as chains
from . import chain_provenance
from .chain import PREPROCESS, PROCESS, ChainRun, Outcome
from .plan import Plan

HELP = "execute a placement plan: each site's preprocessing at once, then calibration and imaging"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
# A run: its exit code. Called from several threads at once, one per preprocessing site.
Launch = Callable[[ChainRun], int]

_print_lock = threading.Lock()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plan", type=Path, required=True,
                        help="the plan to execute, as `lofar-datalake plan` wrote it")
    parser.add_argument("--configfile", type=Path, default=Path("config/config.yaml"),
                        help="the workflow config each run starts from; its relative paths are "
                             "taken from the current directory (default: %(default)s)")
    parser.add_argument("--chain",
                        help="DataLake name prefix of the chain's files (default: "
                             "products/chain-<UTC time>); the same one resumes a chain")
    parser.add_argument("--out", type=Path,
                        help="directory of the chain's runs, results and chain.json "
                             "(default: runs/<last part of --chain>)")
    parser.add_argument("--keep-preprocessed", action="store_true",
                        help="keep the preprocessed files in the DataLake once the chain has "
                             "succeeded (by default this account's rules on them are deleted "
                             "and Rucio removes them within the hour)")
    parser.add_argument("--dry-run", action="store_true",
                        help="write each run's config and print its Snakemake command; run "
                             "nothing")


def run(args: argparse.Namespace) -> int:
    plan = Plan.from_json(json.loads(args.plan.read_text()))
    chain = args.chain or f"products/chain-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}"
    out = (args.out or Path("runs") / PurePosixPath(chain).name).resolve()
    config = yaml.safe_load(args.configfile.read_text())
    runs = prepare(plan, chain, out, chains.resolve_paths(config, Path.cwd()))
    snakemake_args = list(args.snakemake_args)
    if args.dry_run:
        for r in runs:
            print(shlex.join(chains.command(SNAKEMAKE, r, snakemake_args)))
        return 0
    record = execute(plan, chain, out, runs, launcher(snakemake_args),
                     scope=record_scope(config))
    print(f"\n{chains.table(record)}\n\nchain record: {out / 'chain.json'}")
    failed = [run_ for run_ in record["runs"] if run_["exit_code"] != 0]
    if failed:
        raise RuntimeError("; ".join(f"{r['stage']} at {r['site']} failed (exit "
                                     f"{r['exit_code']}); see {r['log']}" for r in failed)
                           + ("" if any(r["stage"] == PROCESS for r in record["runs"])
                              else "; the process stage was not run"))
    print(f"results: {record['results']}")
    settings = site_settings(plan, snakemake_args)
    stored = chain_provenance.store(record, out, settings, record_scope(config))
    print(f"the chain's provenance manifest: {out / 'provenance.json'}, stored as {stored}")
    if not args.keep_preprocessed:
        release_preprocessed(record, settings)
    return 0


def record_scope(config: Mapping[str, Any]) -> str:
    return str((config.get("datalake") or {}).get("scope", "lofar"))


def site_settings(plan: Plan, snakemake_args: Sequence[str]) -> dict[str, Any]:
    """The storage plugin's settings of the processing site's runs (its profile, the
    arguments every run got, secrets from the environment)."""
    from ..compare.make_mirror import provider_settings

    return provider_settings(Path(plan.processing_site.profile), snakemake_args)


def release_preprocessed(record: Mapping[str, Any], settings: Mapping[str, Any]) -> None:
    """Rucio as the processing site's runs reach it; see intermediates.py."""
    from datalake_core.settings import ProviderConfig

    from ..compare.make_mirror import connect
    from .intermediates import release

    rucio = connect(ProviderConfig.parse(dict(settings)))
    deleted = release(rucio, record["preprocessed"])
    print(f"preprocessed files released: {len(deleted)} rules deleted (Rucio removes the "
          "files within the hour; --keep-preprocessed keeps them)")


def prepare(plan: Plan, chain: str, out: Path, config: Mapping[str, Any]) -> list[ChainRun]:
    """The chain's runs, each with its directory and config written (left untouched when a
    resumed chain's is the same)."""
    runs = chains.plan_runs(plan, chain, out)
    for r in runs:
        r.directory.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(chains.run_config(config, r, chain), sort_keys=False)
        if not r.config_file.is_file() or r.config_file.read_text() != text:
            r.config_file.write_text(text)
    return runs


def execute(plan: Plan, chain: str, out: Path, runs: Sequence[ChainRun], launch: Launch,
            scope: str = "lofar") -> dict[str, Any]:
    """Run the preprocess runs at once, then (if all succeeded) the process run; write the
    chain's results tree and chain.json, and return the record."""
    earlier = earlier_invocations(out / "chain.json", chain)
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    pre = [r for r in runs if r.stage == PREPROCESS]
    with ThreadPoolExecutor(max_workers=max(1, len(pre))) as pool:
        outcomes = list(pool.map(lambda r: timed(r, launch), pre))
    if all(o.exit_code == 0 for o in outcomes):
        outcomes += [timed(r, launch) for r in runs if r.stage == PROCESS]
    invocations = [*earlier, chains.invocation(outcomes, started)]
    record = finish(plan, chain, out, outcomes, scope, invocations)
    (out / "chain.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def earlier_invocations(path: Path, chain: str) -> list[dict[str, Any]]:
    """The invocations an earlier record of the same chain in this directory lists."""
    if not path.is_file():
        return []
    record = json.loads(path.read_text())
    return list(record.get("invocations") or []) if record.get("chain") == chain else []


def timed(run_: ChainRun, launch: Launch) -> Outcome:
    what = f"{run_.stage} at {run_.site}"
    count = f" ({len(run_.subbands)} subbands)" if run_.subbands else ""
    _say(f"==> {what}{count} started in {run_.directory}")
    started = time.monotonic()
    outcome = Outcome(run_, launch(run_), time.monotonic() - started)
    if outcome.exit_code == 0:
        _say(f"    {what} finished in {outcome.wall_s:.1f} s")
    else:
        _say(f"    {chains.failure(outcome)}")
    return outcome


def finish(plan: Plan, chain: str, out: Path, outcomes: Sequence[Outcome], scope: str,
           invocations: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The chain's record; with every run done, its products as one tree under out/results."""
    pre = [o.run.directory for o in outcomes if o.run.stage == PREPROCESS]
    process = [o.run.directory for o in outcomes if o.run.stage == PROCESS]
    complete = bool(process) and all(o.exit_code == 0 for o in outcomes)
    if complete:
        chains.assemble_results(out / "results", process[0], pre)
    made_at = {did: rse for d in pre for did, rse in chains.origins(d).items()}
    moved = {o.run.name: _moved(o.run, made_at) for o in outcomes}
    products = sorted({did for o in outcomes for did in chains.output_dids(
        o.run.directory / "results" / "provenance.json", chains.preprocessed_prefix(chain))})
    return chains.manifest(plan, chain, out, scope, outcomes, moved, products, invocations)


def _moved(run_: ChainRun, made_at: Mapping[str, str]) -> int | None:
    try:
        return chains.moved_bytes(run_.directory, run_.rse, made_at)
    except (OSError, ValueError, TypeError):
        return None


def launcher(snakemake_args: Sequence[str]) -> Launch:
    """Snakemake, started where this command runs (profiles and the workflow are found there),
    its output in the run's log."""

    def launch(run_: ChainRun) -> int:
        with open(run_.log, "w") as log:
            done = subprocess.run(chains.command(SNAKEMAKE, run_, snakemake_args),
                                  stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ),
                                  check=False)
        return done.returncode

    return launch


def _say(line: str) -> None:
    with _print_lock:
        print(line, flush=True)
