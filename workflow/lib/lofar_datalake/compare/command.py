"""`lofar-datalake compare`: run a workflow on DataLake data and on a local copy of the same
inputs, and decide whether the products are equivalent, with the evidence (JSON verdict, HTML
report with figures). Works for any Snakemake workflow whose inputs are `storage.datalake(...)`.
With `--chain DIR` the DataLake side is a chain `lofar-datalake run --plan` ran across sites,
done before (`chain_side`), and the local side one run of the whole chain.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datalake_core.rucio_adapter import RucioAdapter
from datalake_core.settings import ProviderConfig

from . import at_site, chain_side, runs
from .make_mirror import lazy_rucio, make_local_copy, provider_settings
from .runs import Run
from .verdict import Verdict

if TYPE_CHECKING:
    from .equivalence import ProductResult

ROOT = Path(__file__).resolve().parents[4]  # the project: workflow/lib/lofar_datalake/compare
DEFAULT_RULES = ROOT / "config" / "compare.yaml"
# Run bookkeeping that is no product of the workflow.
NOT_PRODUCTS = (".snakemake/", "logs/", "benchmarks/", "snakemake.log", "config.yaml")


@dataclass
class Comparison:
    out: Path
    snakemake_args: list[str]
    profile: Path | None = None
    rules: Path = DEFAULT_RULES
    products: str = "results"
    datalake_workdir: Path | None = None
    chain: Path | None = None  # the DataLake side: a chain's directory, its runs done before
    local_copy: Path | None = None  # an existing copy to run against, used as it is
    only: set[str] | None = None  # compare just these products (paths under `products`)
    # Directories the runs' containers must see besides the site's storage (the observation's
    # sheet, sky model and truth at a site whose jobs run in containers).
    binds: list[Path] = field(default_factory=list)
    description: dict[str, Any] = field(default_factory=dict)


def run_comparison(job: Comparison) -> int:
    """0: equivalent; 1: not equivalent; 2: a run failed (the verdict says which)."""
    site = at_site.site_of(job.profile)
    if site is not None:
        site.check_out(job.out)
    job.out.mkdir(parents=True, exist_ok=True)
    profile = site.profile if site else job.profile
    args = [*job.snakemake_args, *(["--profile", str(profile)] if profile else [])]
    settings = provider_settings(job.profile, job.snakemake_args)
    if site is not None:
        settings = {**settings, **site.plugin_settings()}
    rucio = lazy_rucio(ProviderConfig.parse(dict(settings)))
    local = Run("local copy", job.out / "local")
    verdict = Verdict(equivalent=False)
    if job.chain is not None:
        side = chain_side.datalake_side(chain_side.Chain.read(job.chain), local.workdir,
                                        job.snakemake_args, rucio, Path.cwd())
        datalake, dids, args = side.run, side.inputs, [*args, *side.local_args]
        verdict.chain, verdict.runs["datalake"] = side.description, side.summary
        verdict.notes.extend(side.notes)
    else:
        datalake = runs.run_snakemake(
            Run("DataLake", job.datalake_workdir or job.out / "datalake"), args,
            env=site.bind_env(job.binds) if site is not None else None, site=site)
        dids = sorted({e.did for e in runs.staging_events(datalake.workdir, since=0.0)})
    copy: dict[str, Any] = {}
    if datalake.exit_code == 0:
        copy = _run_local(job, local, args, dids, settings, verdict, site)
    if site is not None:
        sides = {"local": local} if job.chain else {"datalake": datalake, "local": local}
        verdict.site = {k: site.describe(r.workdir, at_site.config_of(args))
                        for k, r in sides.items()}
    return judge(job, datalake, local, verdict, rucio=rucio, copy=copy)


def _run_local(job: Comparison, local: Run, args: list[str], dids: list[str],
               settings: dict[str, Any], verdict: Verdict,
               site: at_site.SiteRuns | None) -> dict[str, Any]:
    """The local copy of `dids` (made, or the one given) and the run on it; how the copy was
    made."""
    copy_dir = job.local_copy or (
        site.local_copy_dir(job.out) if site else job.out / "local-copy")
    if job.local_copy is None:
        copy = make_local_copy(dids, copy_dir, settings)
        if site is not None:
            at_site.make_readable(copy_dir)
            site.site.hand_to_jobs(copy_dir)
    else:
        copy = {"files": len(dids), "bytes": 0, "wall_s": 0.0, "given": str(copy_dir)}
        verdict.notes.append(f"local copy given: {copy_dir} (used as it is)")
    if site is not None:
        # A pool's jobs take this directory with them (its profile lists it); a
        # local-copy run has no DataLake credential to put there.
        (local.workdir / ".snakemake" / "datalake-credential").mkdir(parents=True,
                                                                     exist_ok=True)
    runs.run_snakemake(local, [*args, "--storage-datalake-local-copy", str(copy_dir)],
                       env=site.bind_env([*job.binds, copy_dir]) if site else None,
                       site=site)
    return copy


def judge(
    job: Comparison,
    datalake: Run,
    local: Run,
    verdict: Verdict,
    *,
    rucio: Callable[[], RucioAdapter] | None,
    copy: dict[str, Any] | None = None,
) -> int:
    """Compare the products of a reference run and a candidate run, write the verdict and the
    report; the exit code of `compare`."""
    from .equivalence import compare_trees
    from .rules import load_rules

    rules = load_rules(job.rules)
    verdict.runs = {  # a DataLake side described before (a chain) stays as it is
        "datalake": verdict.runs.get("datalake") or runs.describe(datalake, rucio),
        "local": replace(runs.describe(local, rucio), copy=copy or None),
    }
    verdict.created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    verdict.workflow = {
        "snakemake_args": job.snakemake_args,
        "profile": str(job.profile) if job.profile else None,
        **job.description,
    }
    verdict.tolerances, verdict.products = list(rules), []
    failed = [r.label for r in (datalake, local) if r.exit_code != 0]
    if failed:
        verdict.notes.append(f"run failed: {', '.join(failed)}; see the logs named above")
    else:
        ref, cand = _products_root(datalake.workdir, job), _products_root(local.workdir, job)
        only = job.only

        def exclude(path: str) -> bool:
            return _bookkeeping(path) or (only is not None and path not in only)

        results = compare_trees(ref, cand, rules, exclude=exclude)
        verdict.products = results
        verdict.equivalent = bool(results) and all(r.equivalent for r in results)
        if not results:
            verdict.notes.append(f"no products found under {ref}")
    figures = _figures(job.out, verdict, datalake, local, job)
    verdict.figures = {k: str(v) for k, v in figures.items()}
    text = json.dumps(verdict.to_json(), indent=1, default=str)
    (job.out / "verdict.json").write_text(text + "\n")
    from .html import render

    render(verdict, figures, job.out / "report.html")
    _print_summary(verdict, job.out)
    if failed:
        return 2
    return 0 if verdict.equivalent else 1


def _products_root(workdir: Path, job: Comparison) -> Path:
    root = workdir / job.products
    return root if root.is_dir() else workdir


def _bookkeeping(path: str) -> bool:
    return path.startswith(NOT_PRODUCTS) or path.endswith((".part", ".log"))


def _figures(
    out: Path, verdict: Verdict, datalake: Run, local: Run, job: Comparison
) -> dict[str, Path]:
    from . import figures as fig

    made: dict[str, Path] = {}
    stages = {
        r.label: {rule: s.wall_s for rule, s in r.stages.items()} for r in verdict.runs.values()
    }
    if any(stages.values()):
        made["Wall time per stage"] = out / "stage_timing.png"
        fig.stage_timing_bars(stages, made["Wall time per stage"])
    events = {
        r.label: [b.to_json() for b in r.staging.events] for r in verdict.runs.values()
    }
    if any(events.values()):
        made["Staging timeline"] = out / "staging_timeline.png"
        fig.staging_timeline(events, made["Staging timeline"])
    ref, cand = _products_root(datalake.workdir, job), _products_root(local.workdir, job)
    by_method: dict[str, list[ProductResult]] = {}
    for product in verdict.products:
        by_method.setdefault(product.method, []).append(product)
    for method, name in (("fits-image", "Image difference"), ("catalogue", "Catalogue fluxes")):
        # The first product of the kind that differs, else the first one.
        candidates = sorted(by_method.get(method, []), key=lambda p: (p.equivalent, p.path))
        if method == "catalogue":
            candidates = [p for p in candidates if p.path.endswith(".fits")] or candidates
        for product in candidates:
            a, b = ref / product.path, cand / product.path
            if not (a.is_file() and b.is_file()):
                continue
            target = out / f"{name.lower().replace(' ', '_')}.png"
            try:
                if method == "fits-image":
                    fig.image_difference_map(a, b, target)
                else:
                    fig.flux_scatter(
                        a, b, target, float(product.params.get("match_arcsec", 5.0))
                    )
            except (OSError, ValueError, KeyError) as exc:
                verdict.notes.append(f"figure for {product.path} not made: {exc}")
                break
            made[f"{name}: {product.path}"] = target
            break
    return made


def _print_summary(verdict: Verdict, out: Path) -> None:
    products = verdict.products
    differing = [p for p in products if not p.equivalent]
    word = "EQUIVALENT" if verdict.equivalent else "NOT EQUIVALENT"
    print(f"==> {word}: {len(products) - len(differing)}/{len(products)} products agree")
    for product in differing:
        print(f"    differs: {product.path} ({product.method}): {product.summary}")
    for run in verdict.runs.values():
        print(
            f"    {run.label:<12} wall {run.wall_s or 0:7.1f} s, staging "
            f"{run.staging.wall_s:6.1f} s, "
            f"{(run.staging.bytes or 0) / 2**20:8.1f} MiB moved, Rucio requests "
            f"{run.requests.rucio}"
        )
    for note in verdict.notes:
        print(f"    note: {note}")
    print(f"    verdict: {out / 'verdict.json'}\n    report:  {out / 'report.html'}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="directory for both runs, the verdict and the report (default: compare-<time>)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="Snakemake profile of both runs (its storage-datalake-* settings "
        "also serve to make the local copy)",
    )
    parser.add_argument(
        "--rules",
        type=Path,
        default=DEFAULT_RULES,
        help="equivalence rules and tolerances (default: config/compare.yaml)",
    )
    parser.add_argument(
        "--products",
        default="results",
        help="directory of the products inside a run (default: results; the "
        "whole working directory when it does not exist)",
    )
    parser.add_argument(
        "--datalake-workdir",
        type=Path,
        default=None,
        help="working directory of the DataLake run (default: OUT/datalake); "
        "a finished run there is not repeated",
    )
    parser.add_argument(
        "--chain",
        type=Path,
        default=None,
        help="the DataLake side is the chain `lofar-datalake run --plan` ran across sites in "
        "this directory (its chain.json and results); the local side one run of the whole "
        "chain on a local copy of its raw inputs (profile: the processing site's)",
    )
    parser.add_argument(
        "--local-copy",
        type=Path,
        default=None,
        help="run against this existing local copy (<dir>/<scope>/<name> with "
        "index.json) instead of making one",
    )
    parser.add_argument(
        "--fresh-observation",
        action="store_true",
        help="with --demo: simulate a new observation under new IDs, so that its inputs are "
        "not at the site yet and are staged for real",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="the demo observation on the local DataLake (`make demo` setup)",
    )


def _has_workflow(args: Sequence[str]) -> bool:
    """A Snakefile Snakemake would find: given with -s/--snakefile, or where it runs."""
    return runs.names_snakefile(args) or runs.snakefile_in(Path()) is not None


def _check_chain_options(args: argparse.Namespace) -> None:
    given = [o for o, v in (("--datalake-workdir", args.datalake_workdir),
                            ("--demo", args.demo)) if v]
    if given:
        raise ValueError(f"--chain names the DataLake side; {' and '.join(given)} cannot "
                         "be given with it")


def main(args: argparse.Namespace) -> int:
    extra: Sequence[str] = list(args.snakemake_args)
    if not args.demo and not _has_workflow(extra):
        raise ValueError(
            f"no workflow to compare: no Snakefile in {Path.cwd()} and none given; name one "
            "after `--` (lofar-datalake compare [--profile P] -- -s path/to/Snakefile ...), "
            "or use --demo for the demo observation")
    profile = args.profile
    if args.chain is not None:
        _check_chain_options(args)
        chain = chain_side.Chain.read(args.chain.resolve())
        profile = (profile or chain.profile(Path.cwd())).resolve()
    elif args.datalake_workdir and (args.datalake_workdir / chain_side.RECORD).is_file():
        raise ValueError(f"{args.datalake_workdir} holds a chain ({chain_side.RECORD}): "
                         f"compare it with --chain {args.datalake_workdir}")
    site = at_site.site_of(profile)
    out = args.out or (site.default_out() if site else
                       Path(f"compare-{dt.datetime.now():%Y%m%dT%H%M%S}"))
    job = Comparison(
        out=out.resolve(),
        snakemake_args=list(extra),
        profile=profile,
        rules=args.rules,
        products=args.products,
        datalake_workdir=args.datalake_workdir,
        chain=args.chain.resolve() if args.chain else None,
        local_copy=args.local_copy,
    )
    if args.demo:
        from .. import extensions

        prepare = extensions.load(extensions.DEMOS, "compare", "compare --demo")
        prepare(job, fresh=args.fresh_observation)
    return run_comparison(job)
