"""A placement plan as Snakemake runs, and the chain they make as one record.

A plan names, per site, the subbands it preprocesses and the one site that calibrates and
images. Each site with subbands gets a preprocess run and the processing site a process run
(the config's `placement` section); every run has its own directory under the chain's `out`
and its own DataLake products prefix under the chain's name, and they share
`<chain>/preprocessed`, where the preprocess runs store the averaged subbands the process run
reads. This module is the pure part: the runs, their configs and command lines, the chain's
products as one tree, and the manifest with predicted against actual costs. Executing the runs
is `run_command`'s.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datalake_core.journal import InputEvent, OutputEvent, SiteTransferEvent, read_journal
from datalake_core.mirror import RSE as LOCAL_COPY

from .plan import Plan

FORMAT = "lofar-datalake-chain/1"
PREPROCESS, PROCESS = "preprocess", "process"
# Config keys naming files, relative to where the command runs; each run has its own directory.
PATH_KEYS = ("observations", "truth", "local.data_dir", "calibration.skymodel")
MIB = 1024**2


@dataclass(frozen=True)
class ChainRun:
    """One Snakemake run of the chain: a stage of it at one site."""

    site: str
    profile: str
    rse: str
    stage: str
    subbands: tuple[str, ...]  # observation:subband, for a preprocess run
    directory: Path
    products: str  # the run's own DataLake prefix (each run stores a provenance.json)

    @property
    def name(self) -> str:
        return f"{self.site}-{self.stage}"

    @property
    def config_file(self) -> Path:
        return self.directory / "config.yaml"

    @property
    def log(self) -> Path:
        return self.directory / "snakemake.log"


@dataclass(frozen=True)
class Outcome:
    """What one run did: its exit code, and its wall seconds in this invocation."""

    run: ChainRun
    exit_code: int
    wall_s: float


def preprocessed_prefix(chain: str) -> str:
    return f"{chain}/preprocessed"


def plan_runs(plan: Plan, chain: str, out: Path) -> list[ChainRun]:
    """The preprocess runs (one per site with subbands, in the plan's order), then the process
    run at the processing site."""
    runs = [ChainRun(s.name, s.profile, s.rse, PREPROCESS, s.preprocess,
                     out / f"{s.name}-{PREPROCESS}", f"{chain}/{s.name}-{PREPROCESS}")
            for s in plan.sites if s.preprocess]
    site = plan.processing_site
    runs.append(ChainRun(site.name, site.profile, site.rse, PROCESS, (),
                         out / f"{site.name}-{PROCESS}", f"{chain}/{PROCESS}"))
    return runs


def resolve_paths(config: Mapping[str, Any], cwd: Path) -> dict[str, Any]:
    """`config` with its relative file paths made absolute against `cwd`: each run is started
    with `--directory`, where Snakemake would read them relative to the run's directory."""
    resolved = copy.deepcopy(dict(config))
    for dotted in PATH_KEYS:
        section, key = _section(resolved, dotted)
        if section is not None and isinstance(section.get(key), str) and section[key]:
            path = Path(section[key])
            section[key] = str(path if path.is_absolute() else (cwd / path).resolve())
    return resolved


def _section(config: dict[str, Any], dotted: str) -> tuple[dict[str, Any] | None, str]:
    """The mapping holding a dotted key, and the key's last part; None where it is absent."""
    *parents, key = dotted.split(".")
    section: Any = config
    for part in parents:
        section = section.get(part) if isinstance(section, dict) else None
    return (section if isinstance(section, dict) else None), key


def run_config(base: Mapping[str, Any], run: ChainRun, chain: str) -> dict[str, Any]:
    """The config of one run: `base` (paths resolved) with the run's placement and products.
    A split chain reads and writes DataLake files, hence input_mode datalake."""
    config = copy.deepcopy(dict(base))
    config["input_mode"] = "datalake"
    config["placement"] = {"stage": run.stage, "subbands": list(run.subbands),
                           "preprocessed": preprocessed_prefix(chain)}
    config["datalake"] = {**(config.get("datalake") or {}), "products": run.products}
    return config


def command(snakemake: str, run: ChainRun, snakemake_args: Sequence[str]) -> list[str]:
    return [snakemake, "--profile", run.profile, "--directory", str(run.directory),
            "--configfile", str(run.config_file), *snakemake_args]


def failure(outcome: Outcome) -> str:
    return (f"{outcome.run.stage} at {outcome.run.site} failed (exit {outcome.exit_code}); "
            f"see {outcome.run.log}")


def assemble_results(out: Path, process: Path, preprocess: Iterable[Path]) -> Path:
    """The products of a split chain as one tree, `out`: the process run's results, with the
    flag QA of the preprocess runs (their manifests and packed subbands are their own)."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(process / "results", out)
    for run_dir in preprocess:
        for path in sorted((run_dir / "results").glob("*/qa/*_flags.*")):
            target = out / path.relative_to(run_dir / "results")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    return out


def origins(workdir: Path) -> dict[str, str]:
    """Where a run stored each of its outputs: DID -> RSE, from its provider's journal."""
    return {e.did: e.rse for e in read_journal(workdir)
            if isinstance(e, OutputEvent) and e.rse is not None}


def moved_bytes(workdir: Path, site_rse: str, made_at: Mapping[str, str] | None = None) -> int:
    """Bytes of a run's inputs that came to its site from another RSE, from its provider's
    journal (every invocation in that directory, so a resumed chain counts what its earlier
    attempts moved), each input once. An input made by another run of the chain counts as moved
    when it was made at another RSE (`made_at`), however it reached this one: a preprocess
    site's output rules may have copied it here before this run asked. Any other input counts
    when it was staged to the site RSE, or copied or read from another RSE; a replica already
    at the site, linked or read in place, moves nothing."""
    made_at = made_at or {}
    events = read_journal(workdir)
    staged = {f for e in events if isinstance(e, SiteTransferEvent)
              and e.destination == site_rse for f in e.files}
    inputs = {e.did: e for e in events if isinstance(e, InputEvent)}
    return sum(e.bytes for did, e in inputs.items()
               if (made_at[did] != site_rse if did in made_at else
                   did in staged or (e.how.moved
                                     and e.rse not in (None, site_rse, LOCAL_COPY))))


def describe_run(outcome: Outcome, scope: str, moved: int | None) -> dict[str, Any]:
    run = outcome.run
    return {
        "site": run.site, "profile": run.profile, "rse": run.rse, "stage": run.stage,
        "subbands": list(run.subbands), "directory": str(run.directory),
        "config": str(run.config_file), "log": str(run.log),
        "products": f"{scope}:{run.products}",
        "provenance": {"path": str(run.directory / "results" / "provenance.json"),
                       "did": f"{scope}:{run.products}/provenance.json"},
        "wall_s": round(outcome.wall_s, 2), "exit_code": outcome.exit_code,
        "bytes_moved": moved,
    }


def invocation(outcomes: Sequence[Outcome], started: str) -> dict[str, Any]:
    """One invocation of the chain's runs: its makespan (the slowest preprocess run, then the
    process run if it ran) and each run's wall seconds and exit code."""
    pre = [o.wall_s for o in outcomes if o.run.stage == PREPROCESS]
    process = [o.wall_s for o in outcomes if o.run.stage == PROCESS]
    return {"started": started, "makespan_s": round(max(pre, default=0.0) + sum(process), 2),
            "runs": {o.run.name: {"wall_s": round(o.wall_s, 2), "exit_code": o.exit_code}
                     for o in outcomes}}


def manifest(plan: Plan, chain: str, out: Path, scope: str, outcomes: Sequence[Outcome],
             moved: Mapping[str, int | None], products: Sequence[str],
             invocations: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The chain as one record: the plan, every run, what went in, what was stored in between
    and what came out, and the plan's predictions against what the runs took. `moved` is the
    bytes each run moved, by run name; `products` the chain's product DIDs; `invocations` every
    invocation of the chain's runs, this one last (one unless the chain was resumed: then the
    actual makespan is their sum, the time the chain took to finish)."""
    pre = [o for o in outcomes if o.run.stage == PREPROCESS]
    process = [o for o in outcomes if o.run.stage == PROCESS]
    done = bool(process) and all(o.exit_code == 0 for o in outcomes)
    invocations = list(invocations) or [invocation(outcomes, "")]
    raw = [moved.get(o.run.name) for o in pre]
    made = [moved.get(o.run.name) for o in process]
    raw_moved = sum(b or 0 for b in raw) if raw and None not in raw else None
    product_moved = made[0] if made else None
    return {
        "format": FORMAT,
        "chain": chain,
        "out": str(out),
        "complete": done,
        "plan": plan.to_json(),
        "runs": [describe_run(o, scope, moved.get(o.run.name)) for o in outcomes],
        "inputs": sorted(s.did if ":" in s.did else f"{scope}:{s.did}" for s in plan.subbands),
        "preprocessed": [f"{scope}:{preprocessed_prefix(chain)}/{obs}_SB{sb}.MS.tar"
                         for obs, _, sb in (s.id.partition(":") for s in plan.subbands)],
        "products": sorted(products),
        "results": str(out / "results") if done else None,
        "predicted": {"makespan_s": plan.predicted.makespan_s,
                      "bytes_moved": plan.predicted.bytes_moved,
                      "raw_bytes_moved": plan.predicted.raw_bytes_moved,
                      "product_bytes_moved": plan.predicted.product_bytes_moved},
        "invocations": invocations,
        "actual": {
            "makespan_s": round(sum(i["makespan_s"] for i in invocations), 2) if done else None,
            "bytes_moved": None if raw_moved is None or product_moved is None
            else raw_moved + product_moved,
            "raw_bytes_moved": raw_moved,
            "product_bytes_moved": product_moved,
            "bytes_source": "the runs' provider journals: inputs that came to each run's "
                            "site from another RSE (a preprocessed subband: made at another "
                            "site's RSE)",
        },
    }


def output_dids(provenance: Path, exclude_prefix: str) -> list[str]:
    """The DIDs a run stored, from its provenance manifest, leaving out those under
    `exclude_prefix` (the packed subbands, which are the chain's intermediates)."""
    if not provenance.is_file():
        return []
    outputs = json.loads(provenance.read_text()).get("outputs") or []
    return [o["did"] for o in outputs
            if o.get("did") and exclude_prefix not in str(o["did"])]


def table(record: Mapping[str, Any]) -> str:
    """Predicted against actual, for a person."""
    predicted, actual = record["predicted"], record["actual"]
    rows = [("", "predicted", "actual"),
            ("makespan", _seconds(predicted["makespan_s"]), _seconds(actual["makespan_s"]))]
    for key, label in (("bytes_moved", "bytes moved"), ("raw_bytes_moved", "  raw"),
                       ("product_bytes_moved", "  preprocessed")):
        rows.append((label, _mib(predicted[key]), _mib(actual[key])))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{r[0].ljust(widths[0])}  {r[1].rjust(widths[1])}  {r[2].rjust(widths[2])}"
             for r in rows]
    invocations = record.get("invocations") or []
    if len(invocations) > 1:
        lines.append(f"(actual makespan over {len(invocations)} invocations: " + " + ".join(
            _seconds(i["makespan_s"]) for i in invocations) + ")")
    return "\n".join(lines)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / MIB:.1f} MiB"
