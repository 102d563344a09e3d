"""Placements made without the solver, to compare the optimal plan with what sites do without
one: everything at one site, or subbands dealt round-robin. Each is costed by the same model
(`model.predict`), so predicted bytes and makespan compare like with like; a placement that
breaks a constraint (a site that may not read a subband's replicas) is refused, naming it.
"""

from __future__ import annotations

from dataclasses import replace

from .infeasible import PlanInfeasible
from .model import Problem
from .plan import Plan
from .planner import make_plan

ROUND_ROBIN = "round-robin"
SITE_PREFIX = "site:"


def choices(problem: Problem) -> list[str]:
    return ["optimal", ROUND_ROBIN, *(f"{SITE_PREFIX}{s.name}" for s in problem.sites)]


def fixed_plan(problem: Problem, strategy: str) -> Plan:
    """The plan of a strategy other than `optimal`: `site:<NAME>` (all there) or round-robin
    (subband i to the i-th site in the sites file's order, processing at the first site)."""
    names = [s.name for s in problem.sites]
    if strategy == ROUND_ROBIN:
        placement = {sb.id: names[i % len(names)] for i, sb in enumerate(problem.subbands)}
        processing = names[0]
    elif strategy.startswith(SITE_PREFIX) and strategy[len(SITE_PREFIX):] in names:
        processing = strategy[len(SITE_PREFIX):]
        placement = {sb.id: processing for sb in problem.subbands}
    else:
        raise ValueError(f"--strategy {strategy!r}: expected one of {', '.join(choices(problem))}")
    for sb in problem.subbands:
        site = problem.site(placement[sb.id])
        if problem.source(sb, site) is None:
            raise PlanInfeasible(
                f"strategy {strategy}: {site.name} may read none of {sb.id}'s replicas "
                f"({', '.join(sb.replicas)}); it reads {', '.join(sorted(site.readable))}")
    plan = make_plan(problem, placement, processing, optimal=False, solver_seconds=0.0)
    return replace(plan, strategy=strategy)
