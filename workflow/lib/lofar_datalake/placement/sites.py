"""The sites file (which sites exist, what each may read and hold, the user's weights) and the
per-stage costs, measured in earlier runs where their benchmark records exist.

The file is strict: an unknown key or a value of the wrong kind is an error naming the key, so
a misspelt `disk_gib` cannot silently mean "unlimited". Costs come from Snakemake's `benchmark:`
records (`benchmarks/<rule>/<obs>_SB<sb>.tsv`, wall seconds in column `s`) of the runs listed:
the median of each rule, summed per stage. A stage without records falls back to the file's
`stage_seconds`, and the plan says which source it used.
"""

from __future__ import annotations

import csv
import statistics
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .model import GIB, Overhead, SharedCores, Site, Weights

MIB = 1024**2
# The rules a split chain runs, by how often (a run of the whole chain at one site runs the same
# but the packing and unpacking of the preprocessed subbands).
PREPROCESS_RULES = ("fetch", "flag", "average", "qa_flags", "pack_preprocessed",
                    "store_preprocessed")  # once per subband
ONE_OF_PER_SUBBAND = ("calibrate", "apply_calibration")  # one of them per subband
PER_SUBBAND_RULES = ("unpack_preprocessed", "qa_gains")  # once per subband, at processing
PER_TARGET_RULES = ("image", "find_sources", "qa_sources")  # once per target observation
COSTED_RULES = (*PREPROCESS_RULES, *ONE_OF_PER_SUBBAND, *PER_SUBBAND_RULES, *PER_TARGET_RULES)
SITE_KEYS = {"profile", "rse", "cores", "reads", "disk_gib", "inbound_mib_s"}
TOP_KEYS = {"sites", "keep_at_site", "weights", "stage_seconds", "run_overhead_s",
            "shared_cores", "preprocessed_fraction", "time_limit_s", "runs"}


# A Snakemake run's own seconds where no chain measured them: start-up, DAG, staging, storing.
DEFAULT_OVERHEAD_S = 30.0


class SitesFileError(ValueError):
    """The sites file is not valid; the message names the file and the key."""


@dataclass(frozen=True)
class SitesFile:
    sites: tuple[Site, ...]
    keep_at_site: tuple[str, ...]
    weights: Weights
    preprocess_s: float  # stage_seconds.preprocess: per subband, when nothing was measured
    process_s: float  # stage_seconds.process: per target observation's chain
    overhead: Overhead  # run_overhead_s: fixed seconds of each stage's run, when none measured
    shared: tuple[SharedCores, ...]  # shared_cores: pools of cores several sites run on
    preprocessed_fraction: float  # preprocessed bytes / raw bytes
    time_limit_s: float
    runs: tuple[Path, ...]  # earlier runs' directories, whose benchmarks/ give the costs


def load(path: Path) -> SitesFile:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SitesFileError(f"sites file {path}: not YAML: {exc}") from exc
    try:
        return parse(data)
    except SitesFileError as exc:
        raise SitesFileError(f"sites file {path}: {exc}") from None


def parse(data: Any) -> SitesFile:
    top = _mapping(data, "the file", TOP_KEYS, required={"sites", "stage_seconds"})
    sites = _mapping(top["sites"], "sites")
    if not sites:
        raise SitesFileError("sites: lists no site")
    weights = _mapping(top.get("weights", {}), "weights", {"per_gib_moved", "per_second"})
    stages = _mapping(top["stage_seconds"], "stage_seconds", {"preprocess", "process"},
                      required={"preprocess", "process"})
    overhead = _mapping(top.get("run_overhead_s", {}), "run_overhead_s",
                        {"preprocess", "process"})
    parsed = tuple(_site(str(name), value) for name, value in sites.items())
    return SitesFile(
        sites=parsed,
        keep_at_site=_strings(top.get("keep_at_site", []), "keep_at_site"),
        weights=Weights(_number(weights.get("per_gib_moved", 1.0), "weights.per_gib_moved"),
                        _number(weights.get("per_second", 0.01), "weights.per_second")),
        preprocess_s=_number(stages["preprocess"], "stage_seconds.preprocess"),
        process_s=_number(stages["process"], "stage_seconds.process"),
        overhead=Overhead(*(_number(overhead.get(stage, DEFAULT_OVERHEAD_S),
                                    f"run_overhead_s.{stage}")
                            for stage in ("preprocess", "process"))),
        shared=_shared(top.get("shared_cores", {}), {s.name for s in parsed}),
        preprocessed_fraction=_fraction(top.get("preprocessed_fraction", 0.25)),
        time_limit_s=_number(top.get("time_limit_s", 30), "time_limit_s", positive=True),
        runs=tuple(Path(p) for p in _strings(top.get("runs", []), "runs")),
    )


def _shared(value: Any, names: set[str]) -> tuple[SharedCores, ...]:
    out = []
    for name, fields in _mapping(value, "shared_cores").items():
        key = f"shared_cores.{name}"
        group = _mapping(fields, key, {"cores", "sites"}, required={"cores", "sites"})
        members = _strings(group["sites"], f"{key}.sites")
        unknown = sorted(set(members) - names)
        if unknown:
            raise SitesFileError(f"{key}.sites: {', '.join(unknown)} is not a site of the "
                                 f"file (its sites: {', '.join(sorted(names))})")
        out.append(SharedCores(name, _cores(group["cores"], f"{key}.cores"), members))
    return tuple(out)


def _cores(value: Any, key: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SitesFileError(f"{key}: must be a whole number of at least 1, got {value!r}")
    return value


def _site(name: str, value: Any) -> Site:
    key = f"sites.{name}"
    fields = _mapping(value, key, SITE_KEYS, required={"profile", "rse", "cores"})
    cores = _cores(fields["cores"], f"{key}.cores")
    disk = fields.get("disk_gib")
    rate = fields.get("inbound_mib_s")
    return Site(
        name=name, profile=_string(fields["profile"], f"{key}.profile"),
        rse=_string(fields["rse"], f"{key}.rse"), cores=cores,
        reads=_strings(fields.get("reads", []), f"{key}.reads"),
        disk_bytes=None if disk is None else int(
            _number(disk, f"{key}.disk_gib", positive=True) * GIB),
        inbound_bytes_s=None if rate is None else (
            _number(rate, f"{key}.inbound_mib_s", positive=True) * MIB),
    )


def _mapping(value: Any, key: str, allowed: set[str] | None = None,
             required: Collection[str] = ()) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SitesFileError(f"{key}: must be a mapping, got {type(value).__name__}")
    if allowed is not None:
        unknown = sorted(set(map(str, value)) - allowed)
        if unknown:
            raise SitesFileError(f"{key}: unknown key {', '.join(unknown)} "
                                 f"(known: {', '.join(sorted(allowed))})")
    missing = sorted(set(required) - set(value))
    if missing:
        raise SitesFileError(f"{key}: missing {', '.join(missing)}")
    return {str(k): v for k, v in value.items()}


def _number(value: Any, key: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or (
            positive and value == 0):
        kind = "a positive number" if positive else "a number of at least 0"
        raise SitesFileError(f"{key}: must be {kind}, got {value!r}")
    return float(value)


def _fraction(value: Any) -> float:
    number = _number(value, "preprocessed_fraction", positive=True)
    if number > 1:
        raise SitesFileError(f"preprocessed_fraction: must be at most 1, got {value!r}")
    return number


def _string(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise SitesFileError(f"{key}: must be a non-empty string, got {value!r}")
    return value


def _strings(value: Any, key: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise SitesFileError(f"{key}: must be a list, got {value!r}")
    return tuple(_string(v, f"{key}[{i}]") for i, v in enumerate(value))


@dataclass(frozen=True)
class StageCosts:
    """Seconds of one job of each stage, and where they came from."""

    preprocess_s: float  # one subband's preprocessing jobs
    per_subband_s: float  # its calibration (calibrator) or applying it (target)
    per_target_s: float  # one target observation's imaging and source finding
    source: str

    def process_s(self, subbands: int, targets: int) -> float:
        return self.per_subband_s * subbands + self.per_target_s * targets


def stage_costs(sites: SitesFile, runs: Iterable[Path] = ()) -> StageCosts:
    """The costs measured in `runs` (run directories, or their benchmarks/), else the file's."""
    runs = list(runs)
    records = read_benchmarks(runs)
    pre = _median_sum(records, PREPROCESS_RULES)
    one_of = [s for r in ONE_OF_PER_SUBBAND for s in records.get(r, [])]
    sub = _add(statistics.median(one_of) if one_of else None,
               _median_sum(records, PER_SUBBAND_RULES))
    target = _median_sum(records, PER_TARGET_RULES)
    fallback = [name for name, value in (("preprocess", pre), ("process", sub or target))
                if value is None]
    source = "stage_seconds" if len(fallback) == 2 else (
        f"benchmark records of {len(runs)} run(s) ({', '.join(sorted(records))})"
        + "".join(f"; {name} from stage_seconds" for name in fallback))
    if sub is None and target is None:
        sub, target = 0.0, sites.process_s
    return StageCosts(sites.preprocess_s if pre is None else pre, sub or 0.0, target or 0.0,
                      source)


def _add(a: float | None, b: float | None) -> float | None:
    return None if a is None and b is None else (a or 0.0) + (b or 0.0)


def _median_sum(records: Mapping[str, list[float]], rules: Iterable[str]) -> float | None:
    found = [statistics.median(records[r]) for r in rules if records.get(r)]
    return sum(found) if found else None


def read_benchmarks(runs: Iterable[Path]) -> dict[str, list[float]]:
    """Wall seconds of every benchmark record, by rule, of the stages the plan costs."""
    out: dict[str, list[float]] = {}
    for run in runs:
        root = run if run.name == "benchmarks" else run / "benchmarks"
        if not root.is_dir():
            raise FileNotFoundError(f"{run}: no benchmarks/ directory of an earlier run")
        for rule in COSTED_RULES:
            for record in sorted((root / rule).glob("*.tsv")):
                out.setdefault(rule, []).extend(_seconds(record))
    return out


def _seconds(record: Path) -> list[float]:
    with record.open(newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    try:
        return [float(row["s"]) for row in rows]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"benchmark record {record}: no wall seconds in column `s` "
                         f"({exc})") from exc
