"""`lofar-datalake compare`: run a workflow on DataLake data and on a local copy of the same
inputs, and decide whether the products are equivalent, with the evidence (JSON verdict, HTML
report with figures). Works for any Snakemake workflow whose inputs are `storage.datalake(...)`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datalake_core.journal import InputEvent, SiteTransferEvent
from datalake_core.rucio_adapter import DataLakeError, RucioAdapter
from datalake_core.settings import ProviderConfig

from . import accounting, at_site, runs
from .make_mirror import lazy_rucio, make_local_copy, provider_settings
from .runs import Run
from .verdict import Bar, Requests, RunSummary, Stage, Staging, Verdict

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
    env = site.bind_env(job.binds) if site is not None else None
    datalake = runs.run_snakemake(
        Run("DataLake", job.datalake_workdir or job.out / "datalake"), args, env=env, site=site
    )
    local = Run("local copy", job.out / "local")
    verdict = Verdict(equivalent=False)
    copy: dict[str, Any] = {}
    if datalake.exit_code == 0:
        dids = sorted(
            {e.did for e in runs.staging_events(datalake.workdir, since=0.0)}
        )
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
    if site is not None:
        verdict.site = {
            "datalake": site.describe(datalake.workdir, at_site.config_of(args)),
            "local": site.describe(local.workdir, at_site.config_of(args)),
        }
    rucio = lazy_rucio(ProviderConfig.parse(dict(settings)))
    return judge(job, datalake, local, verdict, rucio=rucio, copy=copy)


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
    verdict.runs = {
        "datalake": _describe(datalake, rucio),
        "local": replace(_describe(local, rucio), copy=copy or None),
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


def _describe(run: Run, rucio: Callable[[], RucioAdapter] | None) -> RunSummary:
    events = runs.staging_events(run.workdir, run.started) if run.started else []
    transfers = runs.site_transfers(run.workdir, run.started) if run.started else []
    try:
        moved = accounting.moved_bytes(events, transfers, rucio)
    except DataLakeError as exc:
        moved = {"bytes": None, "bytes_source": f"Rucio records not readable: {exc}"}
    starts = [e.began for e in events] + [t.start for t in transfers]
    ends = [e.time for e in events] + [t.time for t in transfers]
    stages = runs.stage_times(run.workdir, run.started) if run.started else {}
    return RunSummary(
        label=run.label,
        workdir=str(run.workdir),
        exit_code=run.exit_code,
        log=str(run.log) if run.log else None,
        wall_s=round(run.wall_s, 2),
        stages={rule: Stage(int(s["jobs"]), s["wall_s"]) for rule, s in stages.items()},
        staging=Staging(
            wall_s=round(max(ends) - min(starts), 2) if starts else 0.0,
            files=len(events),
            bytes=moved.get("bytes"),
            bytes_source=moved.get("bytes_source"),
            events=_site_bars(transfers) + _input_bars(events),
        ),
        requests=Requests(
            rucio=runs.rucio_requests(run) if run.started else None,
            fts_jobs=moved.get("fts_jobs"),
            rucio_rules=moved.get("rucio_rules"),
        ),
    )


def _site_bars(transfers: list[SiteTransferEvent]) -> list[Bar]:
    """Rules and FTS jobs bringing files to the site, as bars of the staging timeline."""
    bars = []
    for t in transfers:
        way = "Rucio rule (conveyor + FTS)" if t.policy == "rule" else "FTS jobs"
        bars.append(Bar(f"{t.policy} to {t.destination}", t.start, t.time, t.bytes,
                        f"{way}, {len(t.files)} files", is_input=False))
    return bars


def _input_bars(events: list[InputEvent]) -> list[Bar]:
    """Each input made local, as a bar of the staging timeline."""
    return [Bar(e.did, e.began, e.time, e.bytes, str(e.how), e.rse) for e in events]


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
    if any(a in ("-s", "--snakefile") or a.startswith("--snakefile=") for a in args):
        return True
    names = ("Snakefile", "snakefile", "workflow/Snakefile", "workflow/snakefile")
    return any(Path(n).is_file() for n in names)


def main(args: argparse.Namespace) -> int:
    extra: Sequence[str] = list(args.snakemake_args)
    if not args.demo and not _has_workflow(extra):
        raise ValueError(
            f"no workflow to compare: no Snakefile in {Path.cwd()} and none given; name one "
            "after `--` (lofar-datalake compare [--profile P] -- -s path/to/Snakefile ...), "
            "or use --demo for the demo observation")
    site = at_site.site_of(args.profile)
    out = args.out or (site.default_out() if site else
                       Path(f"compare-{dt.datetime.now():%Y%m%dT%H%M%S}"))
    job = Comparison(
        out=out.resolve(),
        snakemake_args=list(extra),
        profile=args.profile,
        rules=args.rules,
        products=args.products,
        datalake_workdir=args.datalake_workdir,
        local_copy=args.local_copy,
    )
    if args.demo:
        from .. import extensions

        prepare = extensions.load(extensions.DEMOS, "compare", "compare --demo")
        prepare(job, fresh=args.fresh_observation)
    return run_comparison(job)
