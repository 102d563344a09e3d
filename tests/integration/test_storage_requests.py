"""Building the DAG of a workflow whose 1,000 DataLake inputs belong to an intermediate rule
takes a small, constant number of Rucio requests (bulk resolution), not one per file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from datalake_core.request_counter import ENV_VAR, read_counts

pytestmark = pytest.mark.integration

SNAKEFILE = Path(__file__).parents[1] / "workflow" / "storage" / "Snakefile"
N = 1000


def test_dry_run_of_1000_intermediate_inputs_makes_few_requests(
        seed, unique, datalake_args, run_snakemake, client_env, tmp_path):
    seed([f"{unique}/SB{i:03d}.dat" for i in range(N)], "SITE_A_DISK", size=64)
    counts = tmp_path / "requests.txt"
    env = {**client_env, ENV_VAR: str(counts)}
    args = [*datalake_args, "-n", "--config", f"prefix={unique}", f"count={N}"]
    result = run_snakemake(tmp_path, SNAKEFILE, args, env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(rf"check\s+{N}\b", result.stdout + result.stderr), "all jobs in the DAG"

    requests = read_counts(counts)
    auth = [r for r in requests if " /auth" in r]
    other = [r for r in requests if " /auth" not in r]
    print(f"{len(other)} requests + {len(auth)} authentication for {N} inputs: {requests}")
    assert len(other) <= 3, requests
    assert len(auth) <= 1, requests


def test_missing_and_present_inputs_are_resolved_in_the_same_pass(
        seed, unique, datalake_args, run_snakemake, client_env, tmp_path):
    # 5 of 6 inputs exist: the dry run fails on the sixth, still after one bulk pass.
    seed([f"{unique}/SB{i:03d}.dat" for i in range(5)], "SITE_B_DISK")
    counts = tmp_path / "requests.txt"
    env = {**client_env, ENV_VAR: str(counts)}
    args = [*datalake_args, "-n", "--config", f"prefix={unique}", "count=6"]
    result = run_snakemake(tmp_path, SNAKEFILE, args, env)
    assert result.returncode != 0
    assert f"datalake://lofar/{unique}/SB005.dat" in result.stdout + result.stderr
    assert len([r for r in read_counts(counts) if " /auth" not in r]) <= 3
