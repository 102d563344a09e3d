"""Workflow outputs in the DataLake: uploaded to the output RSE, attached to the run's dataset,
replicated by the configured rules, with provenance metadata; immutable afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest

from datalake_core.rucio_adapter import Did

pytestmark = pytest.mark.integration

SNAKEFILE = Path(__file__).parents[1] / "workflow" / "storage" / "Snakefile"


def test_output_upload_rules_dataset_metadata_and_immutability(
        rucio, seed, unique, datalake_args, run_snakemake, client_env, tmp_path):
    seed([f"{unique}/SB{i:03d}.dat" for i in range(3)], "SITE_B_DISK")
    out = Did("lofar", f"{unique}/out/summary.txt")
    dataset = Did("lofar", f"{unique}/run")

    def run(count: int, *extra: str):
        args = [*datalake_args, "--storage-datalake-output-rse", "SITE_B_DISK",
                "--storage-datalake-output-dataset", f"lofar:{unique}/run",
                "--storage-datalake-output-rules", "1:SITE_C_DAV:3600",
                "--storage-datalake-output-metadata", "lofar_cycle=21", *extra,
                "--config", f"prefix={unique}", f"count={count}", f"out={unique}/out"]
        return run_snakemake(tmp_path, SNAKEFILE, args, client_env)

    first = run(3)
    assert first.returncode == 0, first.stderr[-3000:]
    assert f"{out} uploaded to SITE_B_DISK" in first.stderr
    [replica] = rucio.list_replicas([out])
    assert replica["states"].get("SITE_B_DISK") == "AVAILABLE"
    assert replica["bytes"] == (tmp_path / "summary.txt").stat().st_size
    rules = {r["rse_expression"]: r for r in rucio.list_did_rules(out)}
    assert set(rules) == {"SITE_B_DISK", "SITE_C_DAV"}
    assert rules["SITE_C_DAV"]["expires_at"] is not None
    parents = list(rucio.client.list_parent_dids(out.scope, out.name))
    assert [(p["scope"], p["name"]) for p in parents] == [(dataset.scope, dataset.name)]
    meta = rucio.client.get_metadata(out.scope, out.name, plugin="JSON")
    assert meta["snakemake_rule"] == "publish" and meta["lofar_cycle"] == "21"
    assert meta["created_by"] == "snakemake-storage-plugin-datalake"

    same = run(3, "--forcerun", "publish")
    assert same.returncode == 0, same.stderr[-3000:]
    assert "same adler32; not uploaded again" in same.stderr

    different = run(2, "--forcerun", "publish")
    assert different.returncode != 0
    assert "immutable" in different.stderr and str(out) in different.stderr
