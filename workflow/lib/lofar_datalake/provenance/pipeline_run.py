"""The manifest of a run of this project's pipeline, gathered inside Snakemake (the
`provenance` rule runs in the main Snakemake process, which knows the run's settings)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import manifest
from .tools import tool_versions


def _executor(workflow: Any) -> str | None:
    plugin = getattr(workflow, "executor_plugin", None)
    return str(getattr(plugin, "name", "")) or None


def _containers_used(workflow: Any) -> bool:
    methods = getattr(getattr(workflow, "deployment_settings", None), "deployment_method", ())
    return any(str(getattr(m, "name", m)).upper() == "APPTAINER" for m in methods or ())


def _storage(workflow: Any) -> Mapping[str, Any]:
    tagged = (getattr(workflow, "storage_provider_settings", None) or {}).get("datalake")
    settings = tagged.get_settings() if tagged is not None else None
    return manifest.storage_settings(settings)


def write_pipeline_manifest(workflow: Any, config: Mapping[str, Any], *, output: str, log: str,
                            input_dids: Sequence[str], local_inputs: Sequence[str],
                            products: Sequence[str], product_did: Mapping[str, str],
                            started: float) -> None:
    workdir = Path.cwd()
    data = manifest.build(
        config=config, workdir=workdir, input_dids=list(input_dids),
        local_inputs=[Path(p) for p in local_inputs], products=[Path(p) for p in products],
        product_did=product_did, containers=config.get("containers", {}),
        container_deployment=_containers_used(workflow), storage=_storage(workflow),
        executor=_executor(workflow), started=started, tools=tool_versions())
    manifest.write(data, Path(output))
    used = sum(1 for i in data["inputs"] if i.get("replica"))
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    Path(log).write_text(f"{output}: {len(data['inputs'])} DataLake inputs ({used} with the "
                         f"replica used), {len(data['local_inputs'])} local inputs, "
                         f"{len(data['outputs'])} products\n")
