"""The verdict of a comparison as records, and its one serialiser to and from verdict.json.

The command builds a `Verdict`, the report renders it, and `to_json` writes the file whose keys
tests and earlier comparisons rely on; `from_json` reads one back, however sparse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .rules import Rule

if TYPE_CHECKING:  # the checks behind it load numpy and astropy: only when products are judged
    from .equivalence import ProductResult

Json = dict[str, Any]


@dataclass(frozen=True)
class Bar:
    """One bar of the staging timeline: an input made local, or a site transfer (no RSE)."""

    did: str
    start: float
    end: float
    bytes: int
    how: str
    rse: str | None = None
    is_input: bool = True

    def to_json(self) -> Json:
        bar: Json = {"did": self.did, "start": self.start, "end": self.end,
                     "bytes": self.bytes, "how": self.how}
        return {**bar, "rse": self.rse} if self.is_input else bar

    @classmethod
    def from_json(cls, data: Json) -> Bar:
        return cls(str(data.get("did")), float(data.get("start") or 0.0),
                   float(data.get("end") or 0.0), int(data.get("bytes") or 0),
                   str(data.get("how")), data.get("rse"), is_input="rse" in data)


@dataclass(frozen=True)
class Staging:
    wall_s: float = 0.0
    files: int = 0
    bytes: int | None = None  # None: the transfer records could not be read
    bytes_source: str | None = None
    events: list[Bar] = field(default_factory=list)


@dataclass(frozen=True)
class Requests:
    rucio: int | None = None
    fts_jobs: int | None = None
    rucio_rules: int | None = None


@dataclass(frozen=True)
class Stage:
    """One workflow rule's jobs and their summed wall time."""

    jobs: int = 0
    wall_s: float = 0.0


@dataclass(frozen=True)
class RunSummary:
    label: str
    workdir: str | None = None
    exit_code: int | None = None
    log: str | None = None
    wall_s: float | None = None
    stages: dict[str, Stage] = field(default_factory=dict)
    staging: Staging = field(default_factory=Staging)
    requests: Requests = field(default_factory=Requests)
    copy: Json | None = None  # how the local copy was made (the local-copy run only)

    def to_json(self) -> Json:
        run: Json = {
            "label": self.label, "workdir": self.workdir, "exit_code": self.exit_code,
            "log": self.log, "wall_s": self.wall_s,
            "stages": {k: {"jobs": s.jobs, "wall_s": s.wall_s} for k, s in self.stages.items()},
            "staging": {"wall_s": self.staging.wall_s, "files": self.staging.files,
                        "bytes": self.staging.bytes, "bytes_source": self.staging.bytes_source,
                        "events": [b.to_json() for b in self.staging.events]},
            "requests": {"rucio": self.requests.rucio, "fts_jobs": self.requests.fts_jobs,
                         "rucio_rules": self.requests.rucio_rules},
        }
        return {**run, "copy": self.copy} if self.copy else run

    @classmethod
    def from_json(cls, data: Json, label: str) -> RunSummary:
        staging, requests = data.get("staging") or {}, data.get("requests") or {}
        return cls(
            label=str(data.get("label") or label), workdir=data.get("workdir"),
            exit_code=data.get("exit_code"), log=data.get("log"), wall_s=data.get("wall_s"),
            stages={k: Stage(int(v.get("jobs", 0)), float(v.get("wall_s", 0.0)))
                    for k, v in (data.get("stages") or {}).items()},
            staging=Staging(float(staging.get("wall_s") or 0.0), int(staging.get("files") or 0),
                            staging.get("bytes"), staging.get("bytes_source"),
                            [Bar.from_json(b) for b in staging.get("events") or []]),
            requests=Requests(requests.get("rucio"), requests.get("fts_jobs"),
                              requests.get("rucio_rules")),
            copy=data.get("copy"))


@dataclass
class Verdict:
    """Mutable while the command works: notes and figures are added as it goes."""

    equivalent: bool | None = None  # None: no runs to judge (only in a verdict read back)
    notes: list[str] = field(default_factory=list)
    site: dict[str, Json] | None = None  # per run: the site, executor, images, batch jobs
    chain: Json | None = None  # the DataLake side as a chain across sites: its runs, makespan
    runs: dict[str, RunSummary] = field(default_factory=dict)
    created: str | None = None
    workflow: Json = field(default_factory=dict)
    tolerances: list[Rule] = field(default_factory=list)
    products: list[ProductResult] = field(default_factory=list)
    figures: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> Json:
        from .equivalence import to_json

        data: Json = {"equivalent": self.equivalent, "notes": self.notes}
        if self.site is not None:
            data["site"] = self.site
        if self.chain is not None:
            data["chain"] = self.chain
        return data | {
            "runs": {k: r.to_json() for k, r in self.runs.items()},
            "created": self.created,
            "workflow": self.workflow,
            "tolerances": [{"pattern": r.pattern, "method": r.method, "params": r.params}
                           for r in self.tolerances],
            "products": to_json(self.products),
            "figures": self.figures,
        }

    @classmethod
    def from_json(cls, data: Json) -> Verdict:
        from .equivalence import ProductResult

        return cls(
            equivalent=data.get("equivalent"), notes=list(data.get("notes") or []),
            site=data.get("site"), chain=data.get("chain"),
            runs={k: RunSummary.from_json(v, k) for k, v in (data.get("runs") or {}).items()},
            created=data.get("created"), workflow=dict(data.get("workflow") or {}),
            tolerances=[Rule(t["pattern"], t["method"], dict(t.get("params") or {}))
                        for t in data.get("tolerances") or []],
            products=[ProductResult(p["path"], p["method"], bool(p["equivalent"]),
                                    str(p.get("summary", "")), dict(p.get("metrics") or {}),
                                    dict(p.get("params") or {}))
                      for p in data.get("products") or []],
            figures=dict(data.get("figures") or {}))
