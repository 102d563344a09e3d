"""The benchmark summary: README's Performance table is what bench/summary.py renders from the
committed results, and the pieces it is made of (medians with their spread, targets)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import record  # noqa: E402
import summary  # noqa: E402


def test_readme_table_is_what_summary_renders_from_the_committed_results() -> None:
    results = summary.load(summary.RESULTS)
    assert results, "no committed results in bench/results"
    block = summary.readme_block(summary.README.read_text())
    assert block, "README.md has no generated benchmark block"
    assert block == summary.render(results), "run bench/summary.py --write-readme"


def test_every_committed_result_records_machine_load_date_and_commit() -> None:
    for name, data in summary.load(summary.RESULTS).items():
        p = data["provenance"]
        assert p["machine"]["cpu"] and p["machine"]["cores"] and p["machine"]["ram_gib"], name
        assert len(p["load_average_before"]) == 3 and len(p["load_average_after"]) == 3, name
        assert p["date"] and p["git_commit"], name


def test_every_median_in_the_committed_results_is_of_at_least_three_repetitions() -> None:
    def spreads(value: object) -> list[dict[str, object]]:
        if isinstance(value, dict):
            here = [value] if {"median", "n", "min", "max"} <= value.keys() else []
            return here + [s for v in value.values() for s in spreads(v)]
        if isinstance(value, list):
            return [s for v in value for s in spreads(v)]
        return []

    found = [s for data in summary.load(summary.RESULTS).values() for s in spreads(data)]
    assert found
    assert all(int(s["n"]) >= 3 for s in found)  # type: ignore[call-overload]


def test_spread_is_the_median_with_count_min_and_max() -> None:
    assert record.spread([3.0, 1.0, 2.0]) == {"median": 2.0, "n": 3, "min": 1.0, "max": 3.0,
                                              "values": [3.0, 1.0, 2.0]}
    assert record.spread([1.0, 2.0, 3.0, 10.0])["median"] == 2.5


def test_spread_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError):
        record.spread([])


def test_paired_ratios_skip_a_zero_denominator() -> None:
    assert record.paired_ratios([2.0, 3.0, 4.0], [1.0, 0.0, 2.0]) == [2.0, 2.0]


def test_targets_are_judged_in_their_direction() -> None:
    assert record.END_TO_END.met(1.10) is True
    assert record.END_TO_END.met(1.11) is False
    assert record.REMOTE_VS_SERIAL.met(4.0) is True
    assert record.REMOTE_VS_SERIAL.met(3.9) is False
    assert record.ADDED_S_PER_1000.met(None) is None


def test_a_figure_renders_with_its_spread_baseline_and_verdict() -> None:
    data = {"figures": [{
        "figure": "end-to-end", "value": 50.0, "unit": "s", "baseline": 40.0,
        "baseline_name": "local copy", "ratio": 1.25, "ratio_means": "DataLake / local",
        "goal": record.END_TO_END.as_dict(), "met": False, "note": None,
        "spread": {"value": record.spread([49.0, 50.0, 52.0]),
                   "baseline": record.spread([39.0, 40.0, 41.0]),
                   "ratio": record.spread([1.2, 1.25, 1.3])}}]}
    [r] = summary.rows_of(data)
    assert r["value"] == "50 s (3 runs: 49–52)"
    assert r["baseline"] == "40 s (3 runs: 39–41) (local copy)"
    assert r["ratio"] == "1.25x (3 runs: 1.2–1.3) (DataLake / local)"
    assert r["met"] is False
    table = summary.render({"end_to_end": data})
    assert "<= 1.10x local copy: **NOT met**" in table
    assert table.startswith(summary.BEGIN) and table.endswith(summary.END)


def test_a_cell_with_a_pipe_does_not_break_the_table() -> None:
    data = {"figures": [{"figure": "a | b", "value": 1.0, "unit": "", "baseline": None,
                         "ratio": None, "goal": None, "met": None}]}
    assert "a \\| b" in summary.render({"x": data})


def test_a_run_is_loaded_from_half_a_process_per_core() -> None:
    machine = {"cores": 2}
    assert summary.loaded({"machine": machine, "load_average_before": [1.0, 0, 0],
                           "load_average_after": [0.2, 0, 0]})
    assert not summary.loaded({"machine": machine, "load_average_before": [0.5, 0, 0],
                               "load_average_after": [0.9, 0, 0]})


def test_replacing_the_block_keeps_the_text_around_it() -> None:
    text = f"before\n{summary.BEGIN}\nold\n{summary.END}\nafter\n"
    assert summary.replace_block(text, "NEW") == "before\nNEW\nafter\n"


def test_readme_science_table_is_what_bench_science_renders_from_its_committed_result() -> None:
    import bench_science

    result = json.loads((summary.RESULTS / "science_linc.json").read_text())
    assert set(result["skies"]) == {"sky-a", "sky-b"}
    assert bench_science.render_readme(result, check=True) == 0, (
        "run bench/bench_science.py --from-json --write-readme"
    )
