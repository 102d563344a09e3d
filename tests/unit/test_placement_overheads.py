"""Each stage's run overhead is learnt from earlier chains: a run's wall time less its jobs'
benchmarked seconds over its site's cores, the median per stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lofar_datalake.placement import overheads
from lofar_datalake.placement.model import Overhead, SharedCores

FALLBACK = Overhead(30.0, 30.0)


def job(run: Path, rule: str, name: str, seconds: float) -> None:
    path = run / "benchmarks" / rule / f"{name}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"s\th:m:s\n{seconds}\t0:00:01\n")


def chain(root: Path, walls: dict[str, float], exit_codes: dict[str, int] | None = None,
          cores: dict[str, int] | None = None, later: bool = False) -> Path:
    """A chain at root: A preprocesses 2 subbands (jobs 8+4+6+2 s), B 1 (6 s), A processes
    (jobs 10+20 s, plus a per-product store job, 99 s, that is overhead)."""
    cores = cores if cores is not None else {"SITE_A": 2, "SITE_B": 1}
    runs = [("SITE_A", "preprocess"), ("SITE_B", "preprocess"), ("SITE_A", "process")]
    for site, stage in runs:
        (root / f"{site}-{stage}").mkdir(parents=True)
    for i, (fetch, flag) in enumerate([(8.0, 4.0), (6.0, 2.0)]):
        job(root / "SITE_A-preprocess", "fetch", f"L1_SB00{i}", fetch)
        job(root / "SITE_A-preprocess", "flag", f"L1_SB00{i}", flag)
    job(root / "SITE_B-preprocess", "average", "L1_SB002", 6.0)
    job(root / "SITE_A-process", "calibrate", "L1_SB000", 10.0)
    job(root / "SITE_A-process", "image", "L1", 20.0)
    job(root / "SITE_A-process", "store", "L1_image.fits", 99.0)
    codes = exit_codes or {}
    first = {f"{s}-{t}": {"wall_s": walls[f"{s}-{t}"], "exit_code": codes.get(f"{s}-{t}", 0)}
             for s, t in runs}
    invocations = [{"makespan_s": 0.0, "runs": first}]
    if later:  # a rerun with nothing to do
        invocations.append({"makespan_s": 3.0, "runs": {k: {"wall_s": 1.0, "exit_code": 0}
                                                        for k in first}})
    record = {
        "format": "lofar-datalake-chain/1",
        "plan": {"sites": [{"name": s, "cores": c} for s, c in cores.items()]},
        "runs": [{"site": s, "stage": t, "directory": str(root / f"{s}-{t}"),
                  "wall_s": 1.0} for s, t in runs],
        "invocations": invocations,
    }
    (root / "chain.json").write_text(json.dumps(record))
    return root


WALLS = {"SITE_A-preprocess": 50.0, "SITE_B-preprocess": 26.0, "SITE_A-process": 45.0}


def test_a_runs_overhead_is_its_wall_time_less_its_jobs_over_its_cores(tmp_path: Path) -> None:
    # A: 50 - 20/2 = 40; B: 26 - 6/1 = 20; process: 45 - 30/2 = 30 (store counts as overhead).
    learnt = overheads.learn([chain(tmp_path / "c", WALLS, later=True)], {}, FALLBACK)
    assert learnt.samples == {"preprocess": [40.0, 20.0], "process": [30.0]}
    assert learnt.overhead == Overhead(30.0, 30.0)
    assert learnt.source == ("preprocess: median of 2 run(s) of 1 chain(s); "
                             "process: median of 1 run(s) of 1 chain(s)")


def test_a_chain_whose_first_invocation_failed_teaches_nothing(tmp_path: Path) -> None:
    failed = chain(tmp_path / "c", WALLS, exit_codes={"SITE_B-preprocess": 1})
    learnt = overheads.learn([failed], {}, FALLBACK)
    assert learnt.overhead == FALLBACK
    assert learnt.source == "preprocess: run_overhead_s; process: run_overhead_s"


def test_cores_missing_from_an_older_plan_come_from_the_sites_file(tmp_path: Path) -> None:
    older = chain(tmp_path / "c", WALLS, cores={"SITE_A": 0, "SITE_B": 0})
    learnt = overheads.learn([older], {"SITE_A": 1, "SITE_B": 1}, FALLBACK)
    # A: 50 - 20 = 30; B: 26 - 6 = 20; process: 45 - 30 = 15.
    assert learnt.samples == {"preprocess": [30.0, 20.0], "process": [15.0]}
    assert learnt.overhead == Overhead(25.0, 15.0)


def test_a_run_faster_than_its_jobs_has_no_overhead(tmp_path: Path) -> None:
    walls = {**WALLS, "SITE_B-preprocess": 2.0}
    learnt = overheads.learn([chain(tmp_path / "c", walls)], {}, FALLBACK)
    assert learnt.samples["preprocess"] == [40.0, 0.0]


def test_a_chain_directory_stands_for_its_runs(tmp_path: Path) -> None:
    done = chain(tmp_path / "c", WALLS)
    plain = tmp_path / "run"
    runs, chains = overheads.split_runs([done, plain])
    assert chains == [done]
    assert runs == [done / "SITE_A-preprocess", done / "SITE_B-preprocess",
                    done / "SITE_A-process", plain]


def test_a_file_that_is_not_a_chain_record_is_named(tmp_path: Path) -> None:
    (tmp_path / "chain.json").write_text('{"format": "lofar-datalake-plan/1"}')
    with pytest.raises(ValueError, match=rf"^{tmp_path}/chain.json: not a chain record"):
        overheads.split_runs([tmp_path])
    (tmp_path / "chain.json").write_text("{")
    with pytest.raises(ValueError, match=rf"^{tmp_path}/chain.json: not JSON"):
        overheads.split_runs([tmp_path])


def test_runs_on_a_shared_pool_had_their_share_of_its_cores(tmp_path: Path) -> None:
    # A and B's preprocess runs ran together on a pool of 2 cores: 1 core each. A: 50 - 20/1
    # = 30; B: 26 - 6/1 = 20 (its own 1 core already); process alone on the pool: 45 - 30/2.
    pool = (SharedCores("host", 2, ("SITE_A", "SITE_B")),)
    learnt = overheads.learn([chain(tmp_path / "c", WALLS)], {}, FALLBACK, pool)
    assert learnt.samples == {"preprocess": [30.0, 20.0], "process": [30.0]}
