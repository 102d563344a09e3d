"""The placement problem, what a placement costs, and the integer program that finds the best one.

Each subband is preprocessed (fetch, flag, average) at one site; the calibration and imaging of
everything at one site. Bytes move where a site preprocesses a subband its RSE does not hold
(weighted by the link's cost) and where the preprocessed products travel to the processing site.
The makespan is modelled as the slowest site's preprocessing (its jobs spread over its cores,
plus the time its inbound link needs for the raw data it reads remotely; sites that share a pool
of cores are as slow as the pool's jobs spread over it) followed by the
processing (on the processing site's cores, after the products arrive): a barrier between the two
stages, as imaging needs every subband. Each stage's Snakemake run also costs fixed seconds of
its own (start-up, the DAG, staging inputs and storing outputs, `Overhead`). The runs of a stage
start together, so the overhead adds to the makespan once per stage whatever the placement: it
changes the forecast, not which placement is best.

The program is kept linear without big-M terms except one (products moved between two sites):
x[s, j] subband s preprocessed at j, y[k] processing at k, moved[j, k] products from j to k,
`slowest` at least each site's preprocessing time. `predict` computes the same quantities from a
placement directly; plans report those, so they do not depend on how tight the solver's
continuous variables are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulp

from .plan import Prediction

GIB = 1024**3
# The constraint families `infeasible.diagnose` may relax to find which one cannot be met.
FAMILIES = ("disk capacity", "keep_at_site", "readable RSEs")


@dataclass(frozen=True)
class Subband:
    id: str  # observation:subband, e.g. L700001:000
    raw_bytes: int
    out_bytes: int  # its preprocessed (averaged) data, which travels to the processing site
    replicas: tuple[str, ...]  # RSEs holding an AVAILABLE replica
    did: str = ""


@dataclass(frozen=True)
class Site:
    name: str
    profile: str
    rse: str
    cores: int  # jobs it runs at once (cores, or batch slots)
    reads: tuple[str, ...]  # RSEs its jobs may read besides its own
    disk_bytes: int | None = None  # room for this run's data on its RSE; None: unlimited
    inbound_bytes_s: float | None = None  # what its RSE receives per second; None: not limiting

    @property
    def readable(self) -> frozenset[str]:
        return frozenset(self.reads) | {self.rse}


@dataclass(frozen=True)
class SharedCores:
    """Sites whose jobs run on one pool of cores (sites on one cluster, or one machine)."""

    name: str
    cores: int
    sites: tuple[str, ...]


@dataclass(frozen=True)
class Weights:
    per_gib_moved: float = 1.0
    per_second: float = 0.01


@dataclass(frozen=True)
class Overhead:
    """Fixed seconds of one Snakemake run of each stage, beyond its jobs' own."""

    preprocess_s: float = 0.0
    process_s: float = 0.0


@dataclass(frozen=True)
class Problem:
    subbands: tuple[Subband, ...]
    sites: tuple[Site, ...]
    preprocess_s: float  # seconds of one subband's preprocessing jobs
    process_s: float  # seconds of all calibration and imaging jobs
    weights: Weights = Weights()
    keep_at_site: tuple[str, ...] = ()  # RSEs whose data only their own site may preprocess
    # (source RSE, destination RSE) -> cost of a byte on that link; 0 on one RSE, 1 if unknown.
    link_cost: Mapping[tuple[str, str], float] = field(default_factory=dict)
    overhead: Overhead = Overhead()
    shared: tuple[SharedCores, ...] = ()

    def process_cores(self, site: Site) -> int:
        """The cores calibration and imaging get at `site`: its own, or fewer where it
        shares them (the preprocessing is over by then, so nothing else runs on them)."""
        return min([site.cores, *(g.cores for g in self.shared if site.name in g.sites)])

    def cost(self, source: str, destination: str) -> float:
        return 0.0 if source == destination else self.link_cost.get((source, destination), 1.0)

    def site(self, name: str) -> Site:
        return next(s for s in self.sites if s.name == name)

    def source(self, subband: Subband, site: Site) -> str | None:
        """The replica `site` reads: its own RSE's, else the cheapest it may read."""
        if site.rse in subband.replicas:
            return site.rse
        readable = [r for r in subband.replicas if r in site.readable]
        return min(readable, key=lambda r: (self.cost(r, site.rse), r), default=None)

    def raw_moved(self, subband: Subband, site: Site) -> int:
        return 0 if site.rse in subband.replicas else subband.raw_bytes

    def kept_at(self, subband: Subband) -> tuple[Site, ...]:
        """The sites that must preprocess `subband` (none: any that may read it)."""
        kept = set(subband.replicas) & set(self.keep_at_site)
        return tuple(s for s in self.sites if s.rse in kept)

    def allowed(self, subband: Subband, site: Site, relax: frozenset[str] = frozenset()) -> bool:
        if "readable RSEs" not in relax and self.source(subband, site) is None:
            return False
        kept = self.kept_at(subband)
        return "keep_at_site" in relax or not kept or site in kept


def predict(problem: Problem, placement: Mapping[str, str], processing: str) -> Prediction:
    """Bytes moved, makespan and objective of a placement (subband id -> site name)."""
    proc = problem.site(processing)
    raw = weighted = products = 0.0
    load = {s.name: 0.0 for s in problem.sites}
    products_in = 0
    for sb in problem.subbands:
        site = problem.site(placement[sb.id])
        moved = problem.raw_moved(sb, site)
        raw += moved
        weighted += moved * problem.cost(problem.source(sb, site) or "", site.rse)
        load[site.name] += problem.preprocess_s / site.cores + _transfer_s(moved, site)
        if site.name != proc.name:
            products_in += sb.out_bytes
            weighted += sb.out_bytes * problem.cost(site.rse, proc.rse)
    products = float(products_in)
    post = problem.process_s / problem.process_cores(proc) + _transfer_s(products_in, proc)
    pre = max([*load.values(), *_shared_load(problem, placement).values()], default=0.0)
    makespan = pre + post + _overhead_s(problem)
    w = problem.weights
    objective = w.per_gib_moved * weighted / GIB + w.per_second * makespan
    return Prediction(int(raw), int(products), makespan, objective)


def _shared_load(problem: Problem, placement: Mapping[str, str]) -> dict[str, float]:
    """Seconds each pool of shared cores needs for the preprocessing placed on its sites."""
    return {g.name: sum(problem.preprocess_s for sb in problem.subbands
                        if placement[sb.id] in g.sites) / g.cores for g in problem.shared}


def _overhead_s(problem: Problem) -> float:
    """The stages' fixed seconds: the preprocess stage's only where it has subbands."""
    pre = problem.overhead.preprocess_s if problem.subbands else 0.0
    return pre + problem.overhead.process_s


def _transfer_s(nbytes: float, site: Site) -> float:
    return nbytes / site.inbound_bytes_s if site.inbound_bytes_s else 0.0


@dataclass
class Program:
    """The integer program of a problem, with its variables, for solving and reading back."""

    lp: pulp.LpProblem
    x: dict[tuple[str, str], pulp.LpVariable]  # (subband, site): preprocessed there
    y: dict[str, pulp.LpVariable]  # site: calibration and imaging there
    moved: dict[tuple[str, str], pulp.LpVariable]  # (site, site): GiB of products sent
    slowest: pulp.LpVariable  # seconds of the slowest site's preprocessing


def build(problem: Problem, relax: frozenset[str] = frozenset()) -> Program:
    """The program; constraint families named in `relax` are left out (for diagnosis)."""
    lp = pulp.LpProblem("placement", pulp.LpMinimize)
    sites = problem.sites
    p = Program(
        lp,
        {(sb.id, site.name): lp.add_variable(f"x_{i}_{j}", cat=pulp.LpBinary)
         for i, sb in enumerate(problem.subbands) for j, site in enumerate(sites)
         if problem.allowed(sb, site, relax)},
        {site.name: lp.add_variable(f"y_{j}", cat=pulp.LpBinary) for j, site in enumerate(sites)},
        {(a.name, b.name): lp.add_variable(f"moved_{i}_{j}", lowBound=0)
         for i, a in enumerate(sites) for j, b in enumerate(sites) if a is not b},
        lp.add_variable("slowest_preprocessing", lowBound=0),
    )
    _assign_once(problem, p)
    _products_moved(problem, p)
    for j, site in enumerate(sites):
        p.lp += p.slowest >= _preprocessing_s(problem, p, site), f"preprocessing_time_{j}"
    for g, group in enumerate(problem.shared):
        p.lp += p.slowest >= pulp.lpSum(
            x * problem.preprocess_s / group.cores for site in sites if site.name in group.sites
            for _, x in _here(problem, p, site)), f"shared_cores_{g}"
    for j, site in enumerate(sites):
        if site.disk_bytes is not None and "disk capacity" not in relax:
            p.lp += _disk_gib(problem, p, site) <= site.disk_bytes / GIB, f"disk_{j}"
    p.lp.setObjective(_objective(problem, p))
    return p


def _assign_once(problem: Problem, p: Program) -> None:
    for i, sb in enumerate(problem.subbands):
        p.lp += pulp.lpSum(v for (s, _), v in p.x.items() if s == sb.id) == 1, f"one_site_{i}"
    p.lp += pulp.lpSum(p.y.values()) == 1, "one_processing_site"


def _products_moved(problem: Problem, p: Program) -> None:
    """moved[a, b] >= the products preprocessed at a when b processes (0 otherwise)."""
    total = sum(sb.out_bytes for sb in problem.subbands) / GIB
    for (a, b), v in p.moved.items():
        at_a = pulp.lpSum(sb.out_bytes / GIB * p.x[sb.id, a]
                          for sb in problem.subbands if (sb.id, a) in p.x)
        p.lp += v >= at_a - total * (1 - p.y[b]), f"products_{v.name}"


def _here(problem: Problem, p: Program, site: Site) -> list[tuple[Subband, pulp.LpVariable]]:
    return [(sb, p.x[sb.id, site.name]) for sb in problem.subbands if (sb.id, site.name) in p.x]


def _preprocessing_s(problem: Problem, p: Program, site: Site) -> pulp.LpAffineExpression:
    return pulp.lpSum(x * (problem.preprocess_s / site.cores
                           + _transfer_s(problem.raw_moved(sb, site), site))
                      for sb, x in _here(problem, p, site))


def _disk_gib(problem: Problem, p: Program, site: Site) -> pulp.LpAffineExpression:
    """This run's data on the site's RSE: raw and preprocessed data of its subbands, and the
    products brought in when it processes."""
    return (pulp.lpSum(x * (sb.raw_bytes + sb.out_bytes) / GIB for sb, x in _here(problem, p, site))
            + pulp.lpSum(v for (_, b), v in p.moved.items() if b == site.name))


def _objective(problem: Problem, p: Program) -> pulp.LpAffineExpression:
    raw = pulp.lpSum(
        x * problem.raw_moved(sb, site) / GIB
        * problem.cost(problem.source(sb, site) or "", site.rse)
        for site in problem.sites for sb, x in _here(problem, p, site))
    products = pulp.lpSum(v * problem.cost(problem.site(a).rse, problem.site(b).rse)
                          for (a, b), v in p.moved.items())
    processing = pulp.lpSum(
        p.y[s.name] * problem.process_s / problem.process_cores(s) for s in problem.sites
    ) + pulp.lpSum(
        v * _transfer_s(GIB, problem.site(b)) for (_, b), v in p.moved.items())
    w = problem.weights
    return w.per_gib_moved * (raw + products) + w.per_second * (
        p.slowest + processing + _overhead_s(problem))


@dataclass(frozen=True)
class Outcome:
    """What the solver said, in the terms a plan reports."""

    feasible: bool
    found: bool  # a placement is available
    optimal: bool


def outcome(status: int, sol_status: int) -> Outcome:
    """CBC stopped by its time limit with a placement reports status Optimal and solution
    IntegerFeasible: the placement is used and said not to be proven optimal."""
    if status == pulp.LpStatusInfeasible or sol_status == pulp.LpSolutionInfeasible:
        return Outcome(feasible=False, found=False, optimal=False)
    found = sol_status in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible)
    return Outcome(feasible=True, found=found, optimal=sol_status == pulp.LpSolutionOptimal)


def run_solver(program: Program, time_limit_s: float | None,
               solver: pulp.LpSolver | None = None) -> Outcome:
    solver = solver or pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit_s)
    program.lp.solve(solver)
    return outcome(program.lp.status, program.lp.sol_status)


def read_placement(program: Program) -> tuple[dict[str, str], str]:
    """The solver's placement (subband id -> site name) and processing site."""
    placement = {s: j for (s, j), v in program.x.items() if (v.value() or 0.0) > 0.5}
    processing = max(program.y, key=lambda j: program.y[j].value() or 0.0)
    return placement, processing
