"""Every read of Snakemake's internals, in one place.

The storage-plugin interface does not answer everything the plugin and the pipeline tools ask:
which jobs still have to run (stage-ahead), which rule writes an output (provenance), whether
this process is one of a run's jobs (authentication), the executor, deployment method and
`datalake` settings of a run (the pipeline's manifest) and the job times Snakemake records
(compare's report). The answers come from Snakemake's own objects, command line and files;
each function here names the path it follows and the Snakemake version it was checked against
(`CHECKED_AGAINST`), and tests/unit/test_snakemake_internals.py fails when an upgrade moves
one. At run time every reader copes with a path that is gone (None, False or nothing), so an
upgrade degrades these extras instead of failing runs.

Nothing here imports Snakemake: the functions only read the objects they are given. So the
pipeline tools (`lofar_datalake`) use this module too, and the DataLake core, which must not
know Snakemake, gets its answers from the plugin.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

CHECKED_AGAINST = "9.27.1"

# `--mode` values of the command line Snakemake gives each job it spawns or submits
# (snakemake_interface_executor_plugins: RealExecutor.get_job_args, ExecMode.item_to_choice).
JOB_MODES = ("subprocess", "remote")

# FilePersistence._metadata_path, the default `--persistence-backend file`: one JSON
# MetadataRecord per output file.
METADATA_DIR = Path(".snakemake") / "metadata"


def running_as_job(argv: Sequence[str] | None = None) -> bool:
    """Whether this process is a job of a run: Snakemake starts every job (spawned locally or
    on a batch system) with `--mode subprocess` or `--mode remote`; a run a user starts has
    neither. Reads `sys.argv` unless given a command line. Checked against 9.27.1."""
    args = sys.argv if argv is None else argv
    for i, arg in enumerate(args):
        value = arg.partition("=")[2] if arg.startswith("--mode=") else (
            args[i + 1] if arg == "--mode" and i + 1 < len(args) else None)
        if value in JOB_MODES:
            return True
    return False


def dag_of(storage_object: Any) -> Any | None:
    """Snakemake's DAG reached from one of the plugin's storage objects:
    `StorageObject._iofile` (set by snakemake.io._IOFile) `.rule.workflow.dag`.
    Checked against 9.27.1; None if any step is missing."""
    iofile = getattr(storage_object, "_iofile", None)
    return getattr(getattr(getattr(iofile, "rule", None), "workflow", None), "dag", None)


def jobs_to_run(dag: Any) -> Iterable[Any]:
    """`DAG.needrun_jobs()`: the jobs the run still has to execute. Checked against 9.27.1."""
    return dag.needrun_jobs() if dag is not None else ()


def jobs_to_run_in_order(dag: Any) -> list[Any]:
    """The jobs to run in the order Snakemake is likely to start them, which a tape recall
    follows: first `DAG.ready_jobs` in the order of `list(DAG.ready_jobs)` (what the scheduler
    hands its job selector, which among equals tends to keep it), then the others of
    `DAG.needrun_jobs()` by `Job.jobid` (numbered as the DAG was built from the targets).
    Checked against 9.27.1."""
    ready = list(getattr(dag, "ready_jobs", None) or ()) if dag is not None else []
    seen = set(ready)
    rest = sorted((j for j in jobs_to_run(dag) if j not in seen),
                  key=lambda job: getattr(job, "jobid", 0))
    return [*ready, *rest]


def scheduler_name(dag: Any) -> str | None:
    """The run's job selector (`--scheduler`: ilp, greedy or a plugin's name):
    `DAG.workflow.scheduling_settings.scheduler`. Checked against 9.27.1."""
    settings = getattr(getattr(dag, "workflow", None), "scheduling_settings", None)
    name = getattr(settings, "scheduler", None)
    return str(name) if name else None


def all_jobs(dag: Any) -> Iterable[Any]:
    """`DAG.jobs`: every job of the run. Checked against 9.27.1."""
    return dag.jobs if dag is not None else ()


def storage_objects(files: Iterable[Any]) -> Iterator[Any]:
    """The storage objects behind a job's files (`Job.input`, `Job.output`):
    `_IOFile.is_storage` and `_IOFile.storage_object`. Checked against 9.27.1."""
    for f in files:
        if getattr(f, "is_storage", False):
            obj = getattr(f, "storage_object", None)
            if obj is not None:
                yield obj


def job_inputs(job: Any) -> Any:
    """`Job.input` (a list of _IOFile). Checked against 9.27.1."""
    return job.input


def job_outputs(job: Any) -> Any:
    """`Job.output` (a list of _IOFile). Checked against 9.27.1."""
    return job.output


def rule_name(job: Any) -> str:
    """`Job.rule.name`. Checked against 9.27.1."""
    return str(job.rule.name)


def executor_name(workflow: Any) -> str | None:
    """The run's executor: `Workflow.executor_plugin.name`. Checked against 9.27.1."""
    plugin = getattr(workflow, "executor_plugin", None)
    return str(getattr(plugin, "name", "")) or None


def uses_apptainer(workflow: Any) -> bool:
    """Whether jobs run in containers: `Workflow.deployment_settings.deployment_method` (a set
    of DeploymentMethod) holds APPTAINER. Checked against 9.27.1."""
    methods = getattr(getattr(workflow, "deployment_settings", None), "deployment_method", ())
    return any(str(getattr(m, "name", m)).upper() == "APPTAINER" for m in methods or ())


def storage_settings(workflow: Any, prefix: str = "datalake") -> Any | None:
    """A storage plugin's settings for the run:
    `Workflow.storage_provider_settings[prefix].get_settings()` (a TaggedSettings).
    Checked against 9.27.1."""
    tagged = (getattr(workflow, "storage_provider_settings", None) or {}).get(prefix)
    return tagged.get_settings() if tagged is not None else None


def job_records(workdir: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """The metadata records of a run's outputs under `<workdir>/.snakemake/metadata`, as
    `(path, record)`; the fields read are `rule`, `job_hash`, `starttime` and `endtime`
    (snakemake.persistence.MetadataRecord). Unreadable records are skipped.
    Checked against 9.27.1."""
    for path in (workdir / METADATA_DIR).glob("*"):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(record, dict):
            yield path, record
