"""The chain's provenance manifest, kept in the DataLake next to its products.

Each run of a chain stores its own manifest; this one ties them together: the plan, every run
(site, profile, RSE, stage, subbands, its products and its manifest's DID), the raw inputs, the
preprocessed intermediates and the products. It holds nothing that changes when a finished
chain is run again (no wall times, no local paths), because Rucio files are immutable: the same
chain resumed stores the same bytes, which the storage plugin recognises and leaves as they are.
Stored as `<scope>:<chain>/provenance.json` on the processing site's output RSE, the way the
runs' own products are (the storage plugin's `Outputs`, with its verification).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

FORMAT = "lofar-datalake-chain-provenance/1"
RUN_KEYS = ("site", "profile", "rse", "stage", "subbands", "products")


def manifest(record: Mapping[str, Any]) -> dict[str, Any]:
    """The stable part of a chain's record (chain.json)."""
    return {
        "format": FORMAT,
        "chain": record["chain"],
        "plan": record["plan"],
        "runs": [{**{k: run[k] for k in RUN_KEYS}, "provenance": run["provenance"]["did"]}
                 for run in record["runs"]],
        "inputs": list(record["inputs"]),
        "preprocessed": list(record["preprocessed"]),
        "products": list(record["products"]),
    }


def store(record: Mapping[str, Any], out: Path, settings: Mapping[str, Any],
          scope: str) -> str:
    """Write `<out>/provenance.json` and store it; returns its DID."""
    from datalake_core.outputs import Outputs
    from datalake_core.rucio_adapter import Did
    from datalake_core.settings import ProviderConfig

    from ..compare.make_mirror import lazy_rucio

    path = out / "provenance.json"
    path.write_text(json.dumps(manifest(record), indent=2, sort_keys=True) + "\n")
    did = Did(scope, f"{record['chain']}/provenance.json")
    cfg = ProviderConfig.parse(dict(settings))
    outputs = Outputs(cfg, lazy_rucio(cfg), logging.getLogger("lofar_datalake.chain"),
                      run_id=str(record["chain"]), workflow="lofar-datalake-chain")
    outputs.store(did, path, {})
    return str(did)
