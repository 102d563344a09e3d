"""The placement model on small cases whose best placement is worked out by hand."""

from __future__ import annotations

import json

import pulp
import pytest

from lofar_datalake.placement.model import (
    GIB,
    Overhead,
    Problem,
    SharedCores,
    Site,
    Subband,
    Weights,
    predict,
)
from lofar_datalake.placement.plan import Plan
from lofar_datalake.placement.planner import solve

A, B, C = "SITE_A_DISK", "SITE_B_DISK", "SITE_C_DAV"


def site(name: str, rse: str, cores: int = 2, reads: tuple[str, ...] = (A, B, C),
         disk_gib: float | None = None, inbound_gib_s: float | None = None) -> Site:
    return Site(name, f"profiles/{name.lower()}", rse, cores, reads,
                None if disk_gib is None else int(disk_gib * GIB),
                None if inbound_gib_s is None else inbound_gib_s * GIB)


def subbands(rses: list[str], raw_gib: float = 1.0, out_gib: float = 0.25) -> tuple[Subband, ...]:
    return tuple(Subband(f"L700001:{i:03d}", int(raw_gib * GIB), int(out_gib * GIB), (rse,),
                         f"lofar:L700001_SB{i:03d}_uv.MS.tar") for i, rse in enumerate(rses))


def counts(plan: Plan) -> dict[str, int]:
    return {s.name: len(s.preprocess) for s in plan.sites}


def test_all_data_at_one_site_is_all_processed_there() -> None:
    # Moving nothing costs 0 GiB; A's makespan is 4*20/2 + 60/2 = 70 s (objective 0.7). Any
    # subband sent to B moves 1 GiB (objective >= 1): everything stays at A.
    problem = Problem(subbands([A] * 4), (site("SITE_A", A), site("SITE_B", B)), 20.0, 60.0,
                      Weights(per_gib_moved=1.0, per_second=0.01))
    plan = solve(problem)
    assert counts(plan) == {"SITE_A": 4, "SITE_B": 0}
    assert plan.processing_site.name == "SITE_A"
    assert plan.predicted.bytes_moved == 0
    assert plan.predicted.makespan_s == 70.0
    assert plan.optimal


def test_split_data_is_preprocessed_where_it_is_and_processed_where_most_products_are() -> None:
    # Raw moves cost 10 per GiB: each subband stays on its RSE (A: 3, B: 1). Processing at A
    # brings B's 0.25 GiB of products, at B A's 0.75 GiB: A. Makespan: A's 3*20/2 = 30 s
    # then 60/2 = 30 s of processing, 60 s.
    problem = Problem(subbands([A, A, B, A]), (site("SITE_A", A), site("SITE_B", B)), 20.0, 60.0,
                      Weights(per_gib_moved=10.0, per_second=0.001))
    plan = solve(problem)
    assert dict(zip([s.id for s in plan.subbands], [s.site for s in plan.subbands],
                    strict=True)) == {"L700001:000": "SITE_A", "L700001:001": "SITE_A",
                                      "L700001:002": "SITE_B", "L700001:003": "SITE_A"}
    assert plan.processing_site.name == "SITE_A"
    assert plan.predicted.raw_bytes_moved == 0
    assert plan.predicted.product_bytes_moved == GIB // 4
    assert plan.predicted.makespan_s == 60.0


def test_each_stages_run_overhead_adds_once_to_the_makespan_and_leaves_the_optimum() -> None:
    # The same case with 40 s per preprocess run and 25 s for the process run: the three
    # preprocess runs start together, so 40 + 30 + 25 + 30 = 125 s, with the same placement.
    base = Problem(subbands([A, A, B, A]), (site("SITE_A", A), site("SITE_B", B)), 20.0, 60.0,
                   Weights(per_gib_moved=10.0, per_second=0.001))
    slow = Problem(base.subbands, base.sites, 20.0, 60.0, base.weights,
                   overhead=Overhead(preprocess_s=40.0, process_s=25.0))
    plan, plan_slow = solve(base), solve(slow)
    assert plan_slow.predicted.makespan_s == 125.0
    assert [s.site for s in plan_slow.subbands] == [s.site for s in plan.subbands]
    assert plan_slow.processing_site == plan.processing_site
    assert plan_slow.predicted.objective == pytest.approx(plan.predicted.objective + 0.065)
    # With no subband to preprocess, only the process run's overhead counts.
    nothing = Problem((), base.sites, 20.0, 60.0, overhead=Overhead(40.0, 25.0))
    assert predict(nothing, {}, "SITE_A").makespan_s == 60.0 / 2 + 25.0


def test_sites_sharing_a_pool_of_cores_are_as_fast_as_the_pool() -> None:
    # A, B and C hold 2 subbands each and have 2 cores each, but run on one machine of 2
    # cores. Apart, each preprocesses its 2 subbands in 2*20/2 = 20 s; sharing, the 6 take
    # 6*20/2 = 60 s whatever the split. Processing at A: 60/2 = 30 s.
    sites = (site("SITE_A", A), site("SITE_B", B), site("SITE_C", C))
    apart = Problem(subbands([A, A, B, B, C, C]), sites, 20.0, 60.0,
                    Weights(per_gib_moved=10.0, per_second=0.01))
    pool = SharedCores("one machine", 2, ("SITE_A", "SITE_B", "SITE_C"))
    together = Problem(apart.subbands, sites, 20.0, 60.0, apart.weights, shared=(pool,))
    assert solve(apart).predicted.makespan_s == 50.0
    plan = solve(together)
    assert counts(plan) == {"SITE_A": 2, "SITE_B": 2, "SITE_C": 2}  # still moves nothing raw
    assert plan.predicted.makespan_s == 90.0
    # A pool smaller than the processing site's cores slows calibration and imaging too.
    small = Problem(apart.subbands, (site("SITE_A", A, cores=4), *sites[1:]), 20.0, 60.0,
                    apart.weights, shared=(SharedCores("small", 1, ("SITE_A",)),))
    placement = {sb.id: "SITE_B" for sb in small.subbands}
    assert predict(small, placement, "SITE_A").makespan_s == 6 * 20 / 2 + 60.0 / 1


def test_a_pool_of_cores_moves_work_to_a_site_outside_it() -> None:
    # All 4 subbands at A; A and B share 1 core, C (2 cores) is elsewhere. Time weighs most
    # (bytes 0.001): the pool takes 20 s per subband, C 10 s. C 3 and the pool 1: 30 s; C 2
    # and the pool 2: 40 s; C 4: 40 s. Then processing 12 s on C's 2 cores: 6 s.
    sites = (site("SITE_A", A, cores=1), site("SITE_B", B, cores=1), site("SITE_C", C))
    problem = Problem(subbands([A] * 4), sites, 20.0, 12.0,
                      Weights(per_gib_moved=0.001, per_second=1.0),
                      shared=(SharedCores("pool", 1, ("SITE_A", "SITE_B")),))
    plan = solve(problem)
    assert counts(plan)["SITE_C"] == 3 and counts(plan)["SITE_A"] + counts(plan)["SITE_B"] == 1
    assert plan.processing_site.name == "SITE_C"
    assert plan.predicted.makespan_s == 36.0


def test_a_high_makespan_weight_spreads_the_work_over_unequal_cores() -> None:
    # All 8 subbands at A (1 core), B has 3. Preprocessing takes max(30*nA, 30*nB/3): 60 s at
    # nA = 2, nB = 6 (nA = 1: 70 s, nA = 3: 90 s). Processing 12 s takes 4 s on B's cores,
    # 12 on A's: B. Makespan 64 s; the bytes (weight 0.001) cannot change that.
    problem = Problem(subbands([A] * 8), (site("SITE_A", A, cores=1), site("SITE_B", B, cores=3)),
                      30.0, 12.0, Weights(per_gib_moved=0.001, per_second=1.0))
    plan = solve(problem)
    assert counts(plan) == {"SITE_A": 2, "SITE_B": 6}
    assert plan.processing_site.name == "SITE_B"
    assert plan.predicted.makespan_s == 64.0
    assert plan.predicted.raw_bytes_moved == 6 * GIB


def test_data_kept_at_its_site_is_preprocessed_there_though_another_site_is_faster() -> None:
    # Without keep_at_site A's 8 cores would take the work. With it, C preprocesses its 4
    # subbands on 1 core (80 s); the products may leave: processing at A takes 60/8 = 7.5 s
    # against 60 s at C. Makespan 87.5 s.
    sites = (site("SITE_A", A, cores=8), site("SITE_C", C, cores=1))
    free = Problem(subbands([C] * 4), sites, 20.0, 60.0, Weights(per_gib_moved=0.0,
                                                                  per_second=1.0))
    assert counts(solve(free))["SITE_A"] > 0
    kept = Problem(free.subbands, sites, 20.0, 60.0, free.weights, keep_at_site=(C,))
    plan = solve(kept)
    assert counts(plan) == {"SITE_A": 0, "SITE_C": 4}
    assert plan.processing_site.name == "SITE_A"
    assert plan.predicted.makespan_s == 87.5


def test_disk_capacity_forces_a_split() -> None:
    # 4 subbands at A (1.25 GiB each with their products), A's disk 3.9 GiB. Processing at A
    # also holds the products brought in: nA + 1 <= 3.9, so nA = 2, moving 2 + 0.5 GiB. At B,
    # A holds 1.25 nA <= 3.9, so nA = 3, moving 1 GiB raw + 0.75 GiB of products: 1.75 GiB.
    problem = Problem(subbands([A] * 4), (site("SITE_A", A, disk_gib=3.9), site("SITE_B", B)),
                      20.0, 60.0, Weights(per_gib_moved=10.0, per_second=0.001))
    plan = solve(problem)
    assert counts(plan) == {"SITE_A": 3, "SITE_B": 1}
    assert plan.processing_site.name == "SITE_B"
    assert plan.predicted.bytes_moved == int(1.75 * GIB)


def test_a_slow_inbound_link_keeps_work_at_the_data() -> None:
    # B has 4 times A's cores but receives 0.01 GiB/s: a 1 GiB subband there takes 100 s to
    # arrive, longer than A preprocessing all 4 (4*20/1 = 80 s).
    problem = Problem(subbands([A] * 4),
                      (site("SITE_A", A, cores=1), site("SITE_B", B, cores=4, inbound_gib_s=0.01)),
                      20.0, 4.0, Weights(per_gib_moved=0.0, per_second=1.0))
    plan = solve(problem)
    assert counts(plan)["SITE_A"] == 4


def test_the_cheapest_readable_replica_is_read_and_its_link_cost_counts() -> None:
    # The subband is on A and C, B reads both: it reads C's (link cost 0.5, against 3 for A's).
    # 1 GiB at 0.5 per byte-GiB plus (20/2 + 60/2) s at 0.01.
    sb = Subband("L700001:000", GIB, GIB // 4, (A, C))
    problem = Problem((sb,), (site("SITE_A", A, reads=()), site("SITE_B", B)), 20.0, 60.0,
                      link_cost={(A, B): 3.0, (C, B): 0.5})
    b = problem.site("SITE_B")
    assert problem.source(sb, b) == C
    assert predict(problem, {sb.id: "SITE_B"}, "SITE_B").objective == 0.5 + 0.01 * (10 + 30)


def test_the_plan_survives_json_and_names_each_sites_profile_and_rse() -> None:
    problem = Problem(subbands([A, B]), (site("SITE_A", A), site("SITE_B", B)), 20.0, 60.0)
    plan = solve(problem)
    data = json.loads(plan.dumps())
    assert Plan.from_json(data) == plan
    assert {s["name"]: (s["profile"], s["rse"]) for s in data["sites"]} == {
        "SITE_A": ("profiles/site_a", A), "SITE_B": ("profiles/site_b", B)}
    assert data["predicted"]["bytes_moved"] == plan.predicted.bytes_moved
    assert "SITE_A" in plan.table() and "makespan" in plan.table()


class StoppedOnTime(pulp.PULP_CBC_CMD):
    """CBC whose answer is reported as when its time limit ended the search with a placement."""

    def actualSolve(self, lp, **kwargs):
        status = super().actualSolve(lp, **kwargs)
        lp.assignStatus(pulp.LpStatusOptimal, pulp.LpSolutionIntegerFeasible)
        return status


def test_a_placement_found_before_the_time_limit_is_said_not_proven_optimal() -> None:
    problem = Problem(subbands([A, B]), (site("SITE_A", A), site("SITE_B", B)), 20.0, 60.0)
    plan = solve(problem, solver=StoppedOnTime(msg=False))
    assert not plan.optimal
    assert "not proven optimal" in plan.table()
    assert Plan.from_json(plan.to_json()).optimal is False


class Recording(pulp.PULP_CBC_CMD):
    sol_status: int | None = None

    def actualSolve(self, lp, **kwargs):
        status = super().actualSolve(lp, **kwargs)
        Recording.sol_status = lp.sol_status
        return status


def test_a_larger_problem_under_a_time_limit_returns_a_plan_flagged_as_the_solver_says() -> None:
    rses = [A, B, C] * 40
    problem = Problem(subbands(rses), (site("SITE_A", A, cores=3), site("SITE_B", B, cores=5),
                                       site("SITE_C", C, cores=7)), 17.0, 90.0,
                      Weights(per_gib_moved=0.3, per_second=0.5))
    plan = solve(problem, solver=Recording(msg=False, timeLimit=1))
    assert sum(counts(plan).values()) == 120
    assert plan.optimal == (Recording.sol_status == pulp.LpSolutionOptimal)
