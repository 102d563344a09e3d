"""Storing a product costs at most 3 Rucio requests (with one extra replication rule), counted
against the real testbed: registration, replica, metadata and dataset in one request, the rule
keeping it on the output RSE and the extra rule. What a run costs once (the dataset, the RSE's
protocols, the bulk pass that saw the outputs missing) is told apart by storing 2 and then 6
products."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from datalake_core.request_counter import ENV_VAR, read_counts
from datalake_core.rucio_adapter import Did

pytestmark = pytest.mark.integration

SNAKEFILE = Path(__file__).parents[1] / "workflow" / "products" / "Snakefile"


def test_each_stored_product_costs_at_most_3_rucio_requests(
        rucio, unique, datalake_args, run_snakemake, client_env, tmp_path):
    requests: dict[int, list[str]] = {}
    for count in (2, 6):
        workdir = tmp_path / f"run{count}"
        workdir.mkdir()
        counts = workdir / "requests.txt"
        args = [*datalake_args, "--storage-datalake-output-rse", "SITE_B_DISK",
                "--storage-datalake-output-dataset", f"lofar:{unique}/run{count}",
                "--storage-datalake-output-rules", "1:SITE_C_DAV:3600",
                "--storage-datalake-output-metadata", "lofar_cycle=21",
                "--config", f"out={unique}/run{count}", f"count={count}"]
        result = run_snakemake(workdir, SNAKEFILE, args, {**client_env, ENV_VAR: str(counts)})
        assert result.returncode == 0, result.stderr[-3000:]
        requests[count] = [r for r in read_counts(counts) if " /auth" not in r]

    per_product = (len(requests[6]) - len(requests[2])) / 4
    once = len(requests[2]) - 2 * per_product
    print(f"{per_product:g} Rucio requests per product, {once:g} once per run; "
          f"6 products: {sorted(Counter(_kind(r) for r in requests[6]).items())}")
    assert per_product <= 3, requests[6]

    for i in range(6):  # each product complete: replica, rules, dataset, metadata
        did = Did("lofar", f"{unique}/run6/p{i:03d}.txt")
        [replica] = rucio.list_replicas([did])
        assert replica["states"].get("SITE_B_DISK") == "AVAILABLE"
        rules = {r["rse_expression"] for r in rucio.list_did_rules(did)}
        assert rules == {"SITE_B_DISK", "SITE_C_DAV"}
        [parent] = rucio.client.list_parent_dids(did.scope, did.name)
        assert parent["name"] == f"{unique}/run6"
        meta = rucio.client.get_metadata(did.scope, did.name, plugin="JSON")
        assert meta["lofar_cycle"] == "21" and meta["snakemake_rule"] == "product"


def _kind(request: str) -> str:
    """`POST /dids/lofar/x/dids` -> `POST /dids/.../dids`: the endpoint, not the DID."""
    method, path = request.split(" ", 1)
    parts = path.strip("/").split("/")
    return f"{method} /{parts[0]}/.../{parts[-1]}" if len(parts) > 2 else request
