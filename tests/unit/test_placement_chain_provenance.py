"""The chain's provenance manifest holds nothing that changes when a finished chain is run
again (Rucio files are immutable: a resumed chain must store the same bytes)."""

from __future__ import annotations

from lofar_datalake.placement.chain_provenance import manifest


def _record(wall_s: float, started: str) -> dict:
    run = {"site": "SITE_A", "profile": "profiles/local", "rse": "SITE_A_DISK",
           "stage": "preprocess", "subbands": ["L1:000"], "products": "lofar:c/SITE_A-preprocess",
           "provenance": {"path": "/somewhere/results/provenance.json",
                          "did": "lofar:c/SITE_A-preprocess/provenance.json"},
           "directory": "/somewhere", "wall_s": wall_s, "exit_code": 0, "bytes_moved": 7}
    return {"chain": "c", "plan": {"format": "lofar-datalake-plan/1"}, "runs": [run],
            "inputs": ["lofar:L1_SB000_uv.MS.tar"], "preprocessed": ["lofar:c/preprocessed/x"],
            "products": ["lofar:c/process/image.fits"], "out": "/somewhere",
            "invocations": [{"started": started, "makespan_s": wall_s}],
            "actual": {"makespan_s": wall_s}}


def test_the_manifest_ties_the_runs_together_and_is_the_same_for_a_resumed_chain() -> None:
    first, resumed = manifest(_record(70.0, "t0")), manifest(_record(1.3, "t1"))
    assert first == resumed
    assert first["runs"] == [{"site": "SITE_A", "profile": "profiles/local", "rse": "SITE_A_DISK",
                              "stage": "preprocess", "subbands": ["L1:000"],
                              "products": "lofar:c/SITE_A-preprocess",
                              "provenance": "lofar:c/SITE_A-preprocess/provenance.json"}]
    assert "/somewhere" not in str(first)
