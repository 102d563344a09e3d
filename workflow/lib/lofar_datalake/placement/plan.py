"""A placement plan: which site preprocesses which subband and which one calibrates and images,
with what that is predicted to cost. Its JSON is what a run across the sites executes, so each
site carries its profile and RSE, and each subband the DID and the replica to read.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

FORMAT = "lofar-datalake-plan/1"
GIB = 1024**3


@dataclass(frozen=True)
class Prediction:
    raw_bytes_moved: int  # raw subbands copied to a site whose RSE does not hold them
    product_bytes_moved: int  # preprocessed subbands sent to the processing site
    makespan_s: float
    objective: float

    @property
    def bytes_moved(self) -> int:
        return self.raw_bytes_moved + self.product_bytes_moved


@dataclass(frozen=True)
class SitePlan:
    name: str
    profile: str
    rse: str
    preprocess: tuple[str, ...]  # subband ids (observation:subband)
    process: bool  # calibration and imaging run here
    cores: int = 0  # jobs it runs at once, as planned (0: not recorded)


@dataclass(frozen=True)
class SubbandPlan:
    id: str
    did: str
    site: str
    read_from: str  # the RSE whose replica the site reads
    raw_bytes: int


@dataclass(frozen=True)
class Plan:
    sites: tuple[SitePlan, ...]
    subbands: tuple[SubbandPlan, ...]
    predicted: Prediction
    weights: dict[str, float] = field(default_factory=dict)
    optimal: bool = True  # False: the solver's time limit ended the search first
    solver_seconds: float = 0.0
    costs: dict[str, Any] = field(default_factory=dict)  # the stage seconds used, and whence
    strategy: str = "optimal"  # or a placement made without the solver (strategies.py)

    @property
    def processing_site(self) -> SitePlan:
        return next(s for s in self.sites if s.process)

    def to_json(self) -> dict[str, Any]:
        predicted = {**asdict(self.predicted), "bytes_moved": self.predicted.bytes_moved}
        return {
            "format": FORMAT,
            "strategy": self.strategy,
            "optimal": self.optimal,
            "solver_seconds": self.solver_seconds,
            "weights": dict(self.weights),
            "costs": dict(self.costs),
            "predicted": predicted,
            "processing_site": self.processing_site.name,
            "sites": [{**asdict(s), "preprocess": list(s.preprocess)} for s in self.sites],
            "subbands": [asdict(s) for s in self.subbands],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        if data.get("format") != FORMAT:
            raise ValueError(f"not a placement plan: format is {data.get('format')!r}, "
                             f"expected {FORMAT!r}")
        predicted = {k: v for k, v in data["predicted"].items() if k != "bytes_moved"}
        return cls(
            sites=tuple(SitePlan(**{**s, "preprocess": tuple(s["preprocess"])})
                        for s in data["sites"]),
            subbands=tuple(SubbandPlan(**s) for s in data["subbands"]),
            predicted=Prediction(**predicted),
            weights=dict(data.get("weights") or {}),
            optimal=bool(data["optimal"]),
            solver_seconds=float(data.get("solver_seconds") or 0.0),
            costs=dict(data.get("costs") or {}),
            strategy=str(data.get("strategy") or "optimal"),
        )

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"

    def table(self) -> str:
        """The plan for a person: one line per site, then the predictions."""
        rows = [("site", "profile", "rse", "subbands", "processing")]
        for s in self.sites:
            rows.append((s.name, s.profile, s.rse, _subbands(s.preprocess),
                         "yes" if s.process else ""))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                 for r in rows]
        p = self.predicted
        lines += [
            "",
            f"bytes moved: {_gib(p.bytes_moved)} (raw {_gib(p.raw_bytes_moved)}, "
            f"products {_gib(p.product_bytes_moved)})",
            f"makespan: {p.makespan_s:.1f} s" + self._overhead(),
            f"objective: {p.objective:.4g}" + self._how(),
        ]
        return "\n".join(lines)


    def _overhead(self) -> str:
        given = self.costs.get("run_overhead_s") or {}
        seconds = (given.get("preprocess", 0.0) if self.subbands else 0.0) + given.get(
            "process", 0.0)
        return f" (of which the runs' own start-up, staging and storing: {seconds:.0f} s)" \
            if seconds else ""

    def _how(self) -> str:
        if self.strategy != "optimal":
            return f" (strategy {self.strategy}: placed without the solver)"
        if not self.optimal:
            return " (not proven optimal: the solver's time limit ended the search)"
        return ""


def _gib(nbytes: int) -> str:
    return f"{nbytes / GIB:.2f} GiB"


def _subbands(ids: tuple[str, ...]) -> str:
    if len(ids) <= 4:
        return ", ".join(ids) or "-"
    return f"{len(ids)}: {ids[0]} ... {ids[-1]}"
