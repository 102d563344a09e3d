"""`lofar-datalake plan`: where to preprocess each subband and where to calibrate and image, from
where the data is in the DataLake, the sites file and the costs of earlier runs.

Prints the plan as a table and writes it as JSON, the form a run across the sites executes.
Reads Rucio only (one bulk replica listing, one distance per pair of RSEs); changes nothing.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the solver loads when a plan is made, not on every start of the command
    from .inventory import Catalogue
    from .model import Weights
    from .plan import Plan
    from .sites import SitesFile

HELP = "plan where each subband is preprocessed and where calibration and imaging run"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sites", type=Path, required=True,
                        help="the sites file (see config/sites.example.yaml)")
    parser.add_argument("--config", type=Path, default=Path("config/config.yaml"),
                        help="the workflow config naming the observation sheet "
                             "(default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("plan.json"),
                        help="where to write the plan as JSON (default: %(default)s)")
    parser.add_argument("--strategy", default="optimal",
                        help="optimal (the default: solved), round-robin (subband i to the "
                             "i-th site, processing at the first) or site:NAME (everything "
                             "there): the latter two to compare with, costed the same way")
    parser.add_argument("--figure", type=Path,
                        help="also draw the plan (PNG or SVG by the suffix)")
    parser.add_argument("--profile", type=Path,
                        help="the profile whose DataLake settings reach Rucio "
                             "(default: the first site's)")
    parser.add_argument("--rucio-config", type=Path,
                        help="Rucio client configuration (default: the profile's, then "
                             "$RUCIO_CONFIG)")
    parser.add_argument("--runs", type=Path, action="append", default=[],
                        help="an earlier run's directory whose benchmarks/ give the stage "
                             "costs, or an earlier chain's (`run --out`, holding chain.json): "
                             "its runs' records give the costs and its runs' wall times each "
                             "stage's fixed overhead; repeatable, added to the sites file's "
                             "`runs`")
    parser.add_argument("--time-limit", type=float,
                        help="seconds the solver may search (default: the sites file's "
                             "time_limit_s); at the limit the best plan found is used")
    parser.add_argument("--per-gib-moved", type=float,
                        help="weight of each GiB moved (default: the sites file's)")
    parser.add_argument("--per-second", type=float,
                        help="weight of each second of makespan (default: the sites file's)")


def run(args: argparse.Namespace) -> int:
    from . import sites

    site_file = sites.load(args.sites)
    plan = make_plan(args, site_file, connect(args, site_file))
    print(plan.table())
    args.out.write_text(plan.dumps())
    print(f"\nstage costs from {plan.costs['source']}")
    print(f"run overheads from {plan.costs['overhead_source']}; plan written to {args.out}")
    if args.figure is not None:
        from .figure import draw

        draw(plan, args.figure, title=f"placement plan for {args.config}")
        print(f"picture of the plan: {args.figure}")
    return 0


def make_plan(args: argparse.Namespace, site_file: SitesFile, catalogue: Catalogue) -> Plan:
    from . import inventory, overheads, planner, sites, strategies
    from .model import Problem

    rows = inventory.read_sheet(args.config)
    subbands = inventory.subbands(catalogue, rows, site_file.preprocessed_fraction)
    run_dirs, chains = overheads.split_runs([*site_file.runs, *args.runs])
    costs = sites.stage_costs(site_file, run_dirs)
    learnt = overheads.learn(chains, {s.name: s.cores for s in site_file.sites},
                             site_file.overhead, site_file.shared)
    held = {rse for sb in subbands for rse in sb.replicas}
    problem = Problem(
        subbands, site_file.sites, costs.preprocess_s,
        costs.process_s(len(subbands), inventory.targets(rows)),
        weights(args, site_file.weights), site_file.keep_at_site,
        inventory.link_costs(catalogue, held, {s.rse for s in site_file.sites}),
        learnt.overhead, site_file.shared,
    )
    time_limit = site_file.time_limit_s if args.time_limit is None else args.time_limit
    plan = (planner.solve(problem, time_limit) if args.strategy == "optimal"
            else strategies.fixed_plan(problem, args.strategy))
    return replace(plan, costs={
        "preprocess_s": problem.preprocess_s, "process_s": problem.process_s,
        "source": costs.source,
        "run_overhead_s": {"preprocess": learnt.overhead.preprocess_s,
                           "process": learnt.overhead.process_s},
        "overhead_source": learnt.source})


def weights(args: argparse.Namespace, given: Weights) -> Weights:
    from .model import Weights

    return Weights(
        given.per_gib_moved if args.per_gib_moved is None else args.per_gib_moved,
        given.per_second if args.per_second is None else args.per_second,
    )


def connect(args: argparse.Namespace, site_file: SitesFile) -> Catalogue:
    """Rucio as the plugin would reach it with the profile: same account, login, config."""
    from datalake_core.settings import ProviderConfig

    from ..compare.make_mirror import connect as connect_rucio
    from ..compare.make_mirror import provider_settings

    profile = args.profile or Path(site_file.sites[0].profile)
    extra = ["--storage-datalake-rucio-config", str(args.rucio_config)] if args.rucio_config \
        else []
    return connect_rucio(ProviderConfig.parse(provider_settings(profile, extra)))
