"""The manifest of a run of this project's pipeline, gathered inside Snakemake (the
`provenance` rule runs in the main Snakemake process, which knows the run's settings)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from snakemake_storage_plugin_datalake import snakemake_internals as internals

from . import manifest
from .tools import tool_versions


def write_pipeline_manifest(workflow: Any, config: Mapping[str, Any], *, output: str, log: str,
                            input_dids: Sequence[str], local_inputs: Sequence[str],
                            products: Sequence[str], product_did: Mapping[str, str],
                            started: float) -> None:
    workdir = Path.cwd()
    data = manifest.build(
        config=config, workdir=workdir, input_dids=list(input_dids),
        local_inputs=[Path(p) for p in local_inputs], products=[Path(p) for p in products],
        product_did=product_did, containers=config.get("containers", {}),
        container_deployment=internals.uses_apptainer(workflow),
        storage=manifest.storage_settings(internals.storage_settings(workflow)),
        executor=internals.executor_name(workflow), started=started, tools=tool_versions())
    manifest.write(data, Path(output))
    used = sum(1 for i in data["inputs"] if i.get("replica"))
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    Path(log).write_text(f"{output}: {len(data['inputs'])} DataLake inputs ({used} with the "
                         f"replica used), {len(data['local_inputs'])} local inputs, "
                         f"{len(data['outputs'])} products\n")
