"""Placements made without the solver (everything at one site, round-robin), costed by the same
model as the optimal plan, so that the three compare like with like."""

from __future__ import annotations

import pytest
from test_placement_model import A, B, C, site, subbands

from lofar_datalake.placement.infeasible import PlanInfeasible
from lofar_datalake.placement.model import GIB, Problem, Weights
from lofar_datalake.placement.plan import Plan
from lofar_datalake.placement.planner import solve
from lofar_datalake.placement.strategies import fixed_plan


def _problem() -> Problem:
    # Uneven: 3 subbands at A, 2 at B, 1 at C; 1 GiB raw, 0.25 GiB preprocessed each.
    return Problem(subbands([A, A, A, B, B, C]),
                   (site("SITE_A", A), site("SITE_B", B), site("SITE_C", C)), 20.0, 60.0,
                   Weights(per_gib_moved=1.0, per_second=0.01))


def test_everything_at_one_site_moves_all_other_raw_data_there() -> None:
    plan = fixed_plan(_problem(), "site:SITE_A")
    assert {s.name: len(s.preprocess) for s in plan.sites} == {"SITE_A": 6, "SITE_B": 0,
                                                               "SITE_C": 0}
    assert plan.predicted.raw_bytes_moved == 3 * GIB and plan.predicted.product_bytes_moved == 0
    assert plan.predicted.makespan_s == 6 * 20 / 2 + 60 / 2
    assert plan.strategy == "site:SITE_A" and "placed without the solver" in plan.table()


def test_round_robin_deals_subbands_to_the_sites_in_turn() -> None:
    plan = fixed_plan(_problem(), "round-robin")
    assert [s.site for s in plan.subbands] == ["SITE_A", "SITE_B", "SITE_C"] * 2
    assert plan.processing_site.name == "SITE_A"
    # Subband (its RSE) -> site: 000 (A) A, 001 (A) B, 002 (A) C, 003 (B) A, 004 (B) B,
    # 005 (C) C: 001, 002 and 003 move, 3 GiB raw; B's and C's 4 preprocessed subbands
    # (0.25 GiB each) go to A.
    assert plan.predicted.raw_bytes_moved == 3 * GIB
    assert plan.predicted.product_bytes_moved == GIB


def test_the_optimal_plan_costs_no_more_than_either_and_round_trips_as_json() -> None:
    problem = _problem()
    best = solve(problem)
    for strategy in ("round-robin", "site:SITE_A", "site:SITE_B", "site:SITE_C"):
        other = fixed_plan(problem, strategy)
        assert best.predicted.objective <= other.predicted.objective + 1e-9, strategy
        assert Plan.from_json(other.to_json()) == other


def test_a_strategy_breaking_a_constraint_or_unknown_is_refused_naming_it() -> None:
    problem = Problem(subbands([A, C]), (site("SITE_A", A, reads=(A,)), site("SITE_C", C)),
                      20.0, 60.0, Weights())
    with pytest.raises(PlanInfeasible, match=r"SITE_A may read none of L700001:001's replicas"):
        fixed_plan(problem, "site:SITE_A")
    with pytest.raises(ValueError, match=r"expected one of optimal, round-robin, site:SITE_A"):
        fixed_plan(problem, "site:NOWHERE")
