"""The placement benchmark's pure parts: the uneven seed, and its rows from chain records (each
strategy against all at one site, paired per repetition; predictions against what was
measured), in the figures format bench/summary.py renders."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import bench_placement as bp  # noqa: E402
import summary  # noqa: E402

MIB = 1024**2
STRATEGIES = ["optimal", "site:SITE_B", "round-robin"]


def _record(makespan: float, moved_mib: float, predicted_s: float, predicted_mib: float,
            processing: str = "SITE_B") -> dict[str, Any]:
    """A chain.json as `lofar-datalake run --plan` writes it, reduced to what is read."""
    return {
        "chain": "bench/placement-x/01", "out": "/tmp/chain", "complete": True,
        "plan": {"optimal": True, "processing_site": processing,
                 "costs": {"preprocess_s": 20.0, "process_s": 60.0, "source": "stage_seconds"},
                 "sites": [{"name": "SITE_A", "preprocess": ["L1:000"]},
                           {"name": "SITE_B", "preprocess": ["L1:001", "L2:000"]},
                           {"name": "SITE_C", "preprocess": []}]},
        "predicted": {"makespan_s": predicted_s, "bytes_moved": int(predicted_mib * MIB),
                      "raw_bytes_moved": int(predicted_mib * MIB), "product_bytes_moved": 0},
        "actual": {"makespan_s": makespan, "bytes_moved": int(moved_mib * MIB),
                   "raw_bytes_moved": int(moved_mib * MIB), "product_bytes_moved": 0,
                   "bytes_source": "journals"},
    }


def _reps() -> list[dict[str, Any]]:
    """Three repetitions: optimal twice as fast as all at SITE_B and moving a quarter."""
    reps = []
    for base_s in (100.0, 120.0, 110.0):
        reps.append({
            "optimal": bp.summarise(_record(base_s / 2, 30, base_s / 4, 30), "optimal"),
            "site:SITE_B": bp.summarise(_record(base_s, 120, base_s / 2, 240), "site:SITE_B"),
            "round-robin": bp.summarise(_record(base_s, 240, base_s, 240, "SITE_A"),
                                        "round-robin"),
        })
    return reps


def test_the_seed_puts_half_at_site_b_a_third_at_site_c_and_the_rest_at_site_a() -> None:
    assert Counter(bp.uneven_rses(3)) == {"SITE_B_DISK": 3, "SITE_C_DAV": 2, "SITE_A_DISK": 1}
    assert Counter(bp.uneven_rses(2)) == {"SITE_B_DISK": 2, "SITE_C_DAV": 1, "SITE_A_DISK": 1}


def test_the_seed_spreads_each_beam_over_more_than_one_site() -> None:
    rses = bp.uneven_rses(3)
    calibrator, target = rses[:3], rses[3:]
    assert len(set(calibrator)) > 1 and len(set(target)) > 1


def test_all_at_one_site_is_the_site_holding_the_most_data() -> None:
    assert bp.site_holding_most(bp.uneven_rses(3)) == "SITE_B"


def test_each_strategy_is_compared_with_all_at_one_site_per_repetition() -> None:
    rows = {r["figure"].strip().split(" (")[0]: r for r in bp.figures(_reps(), STRATEGIES, "x")}
    makespan = rows["makespan, optimal"]
    assert makespan["value"] == 55.0 and makespan["baseline"] == 110.0
    assert makespan["ratio"] == 0.5 and makespan["spread"]["ratio"]["n"] == 3
    assert makespan["ratio_means"] == "optimal / site:SITE_B"
    moved = rows["bytes moved, optimal"]
    assert moved["unit"] == "MiB" and moved["value"] == 30.0 and moved["ratio"] == 0.25
    assert rows["bytes moved, round-robin"]["ratio"] == 2.0
    assert "ratio" not in rows["makespan, site:SITE_B"]  # the baseline itself


def test_predicted_against_actual_is_the_ratio_actual_over_predicted() -> None:
    rows = {r["figure"].strip(): r for r in bp.figures(_reps(), STRATEGIES, "x")}
    assert rows["makespan predicted vs actual, optimal"]["ratio"] == 2.0
    assert rows["makespan predicted vs actual, site:SITE_B"]["baseline"] == 55.0
    assert rows["bytes moved predicted vs actual, site:SITE_B"]["ratio"] == 0.5
    assert rows["bytes moved predicted vs actual, round-robin"]["ratio"] == 1.0


def test_no_row_has_a_target_and_the_optimal_plan_is_named() -> None:
    rows = bp.figures(_reps(), STRATEGIES, "x")
    assert all(r["goal"] is None and r["met"] is None for r in rows)
    assert "preprocessing at SITE_A 1, SITE_B 2; processing at SITE_B (3 of 3)" in rows[0]["note"]


def test_a_row_no_chain_measured_is_left_out() -> None:
    reps = _reps()
    for rep in reps:
        rep["optimal"]["actual"]["bytes_moved"] = None
    names = [r["figure"].strip() for r in bp.figures(reps, STRATEGIES, "x")]
    assert "bytes moved, optimal" not in names and "makespan, optimal (x)" in names
    assert "bytes moved, round-robin" in names


def test_summary_renders_every_row_with_its_spread() -> None:
    rows = summary.from_figures({"figures": bp.figures(_reps(), STRATEGIES, "x")})
    assert len(rows) == 12
    assert rows[0]["value"].startswith("55 s (3 runs: 50–60)")
    assert rows[0]["ratio"] == "0.5x (3 runs: 0.5–0.5) (optimal / site:SITE_B)"
    assert rows[0]["target"] == "-" and rows[0]["met"] is None


@pytest.mark.parametrize("subbands", [2, 3, 5])
def test_the_setup_text_names_where_the_archives_lie(subbands: int) -> None:
    text = bp.setup_text(subbands)
    counts = Counter(bp.uneven_rses(subbands))
    assert f"{counts['SITE_B_DISK']} at SITE_B_DISK" in text and "per GiB moved" in text
