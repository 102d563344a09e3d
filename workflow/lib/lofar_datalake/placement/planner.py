"""Solve a placement problem into a plan, or say why none exists."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict

import pulp

from . import infeasible, model
from .model import Problem
from .plan import Plan, SitePlan, SubbandPlan


def solve(problem: Problem, time_limit_s: float | None = 30.0,
          solver: pulp.LpSolver | None = None) -> Plan:
    """The best placement found; `PlanInfeasible` naming the constraint that cannot be met.
    When the time limit ends the search with a placement, the plan says it is not proven
    optimal."""
    infeasible.precheck(problem)
    started = time.monotonic()
    program = model.build(problem)
    result = model.run_solver(program, time_limit_s, solver)
    seconds = time.monotonic() - started
    if not result.feasible:
        raise infeasible.diagnose(problem, time_limit_s)
    if not result.found:
        raise RuntimeError(
            f"the solver found no placement within its time limit of {time_limit_s} s; "
            "allow it more (--time-limit)")
    placement, processing = model.read_placement(program)
    return make_plan(problem, placement, processing, result.optimal, seconds)


def make_plan(problem: Problem, placement: Mapping[str, str], processing: str, optimal: bool,
              solver_seconds: float) -> Plan:
    sites = tuple(
        SitePlan(s.name, s.profile, s.rse,
                 tuple(sb.id for sb in problem.subbands if placement[sb.id] == s.name),
                 s.name == processing, s.cores)
        for s in problem.sites)
    subbands = tuple(
        SubbandPlan(sb.id, sb.did, placement[sb.id],
                    problem.source(sb, problem.site(placement[sb.id])) or "", sb.raw_bytes)
        for sb in problem.subbands)
    return Plan(sites, subbands, model.predict(problem, placement, processing),
                asdict(problem.weights), optimal, round(solver_seconds, 3))
