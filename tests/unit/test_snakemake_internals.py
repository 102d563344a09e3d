"""The Snakemake internals that snakemake_internals reads are where it expects them in the
installed Snakemake: after an upgrade this test names every path that moved."""

from __future__ import annotations

import dataclasses
import inspect
import re

import snakemake
import snakemake.api  # first: Snakemake's own modules import each other in a cycle
from snakemake.dag import DAG
from snakemake.io import _IOFile
from snakemake.jobs import Job
from snakemake.persistence import MetadataRecord
from snakemake.persistence.file import FilePersistence
from snakemake.rules import Rule
from snakemake.settings.types import DeploymentSettings, SchedulingSettings
from snakemake.workflow import Workflow
from snakemake_interface_common.plugin_registry.plugin import TaggedSettings
from snakemake_interface_executor_plugins.executors.real import RealExecutor
from snakemake_interface_executor_plugins.registry.plugin import Plugin as ExecutorPlugin
from snakemake_interface_executor_plugins.settings import DeploymentMethod, ExecMode

from snakemake_storage_plugin_datalake import snakemake_internals as internals


def _field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()


def test_snakemake_internals_are_where_the_seam_reads_them() -> None:
    io_new = inspect.getsource(_IOFile.__new__)
    checks = {
        # running_as_job
        "RealExecutor gives jobs --mode <exec mode>":
            '"--mode", self.get_exec_mode().item_to_choice()' in inspect.getsource(RealExecutor),
        "ExecMode SUBPROCESS/REMOTE are the job modes":
            {ExecMode.SUBPROCESS.item_to_choice(), ExecMode.REMOTE.item_to_choice()}
            == set(internals.JOB_MODES),
        # dag_of
        "_IOFile sets storage_object._iofile": "storage_object._iofile = obj" in io_new,
        "_IOFile.rule": "obj.rule = rule" in io_new,
        "Rule.workflow":
            re.search(r"self\.workflow\b[^=\n]*= workflow\b", inspect.getsource(Rule.__init__)),
        "Workflow.dag": isinstance(inspect.getattr_static(Workflow, "dag", None), property),
        # jobs_to_run, all_jobs
        "DAG.needrun_jobs()": callable(getattr(DAG, "needrun_jobs", None)),
        "DAG.jobs": isinstance(inspect.getattr_static(DAG, "jobs", None), property),
        # storage_objects, job_inputs, job_outputs, rule_name
        "_IOFile.is_storage": hasattr(_IOFile, "is_storage"),
        "_IOFile.storage_object": hasattr(_IOFile, "storage_object"),
        "Job.input": hasattr(Job, "input"),
        "Job.output": hasattr(Job, "output"),
        "Job.rule": "rule" in Job.__slots__,
        # jobs_to_run_in_order
        "Job.jobid": "jobid" in Job.__slots__ or hasattr(Job, "jobid"),
        "DAG.ready_jobs": isinstance(inspect.getattr_static(DAG, "ready_jobs", None), property),
        "Rule.name": isinstance(inspect.getattr_static(Rule, "name", None), property),
        # scheduler_name
        "DAG.workflow": re.search(r"self\.workflow\b[^=\n]*= workflow\b",
                                  inspect.getsource(DAG.__init__)),
        "Workflow.scheduling_settings": "scheduling_settings" in _field_names(Workflow),
        "SchedulingSettings.scheduler": "scheduler" in _field_names(SchedulingSettings),
        # executor_name
        "Workflow.executor_plugin":
            isinstance(inspect.getattr_static(Workflow, "executor_plugin", None), property),
        "executor Plugin.name": hasattr(ExecutorPlugin, "name"),
        # uses_apptainer
        "Workflow.deployment_settings": "deployment_settings" in _field_names(Workflow),
        "DeploymentSettings.deployment_method":
            "deployment_method" in _field_names(DeploymentSettings),
        "DeploymentMethod.APPTAINER": hasattr(DeploymentMethod, "APPTAINER"),
        # storage_settings
        "Workflow.storage_provider_settings":
            "storage_provider_settings" in _field_names(Workflow),
        "TaggedSettings.get_settings()": callable(getattr(TaggedSettings, "get_settings", None)),
        # job_records
        "FilePersistence keeps records in .snakemake/metadata":
            'os.path.join(self.path, "metadata")' in inspect.getsource(FilePersistence.__init__),
        "MetadataRecord has rule, job_hash, starttime, endtime":
            {"rule", "job_hash", "starttime", "endtime"} <= set(MetadataRecord.model_fields),
    }
    moved = [name for name, present in checks.items() if not present]
    assert not moved, (
        f"Snakemake {snakemake.__version__} moved internals that "
        f"snakemake_storage_plugin_datalake/snakemake_internals.py reads (checked against "
        f"{internals.CHECKED_AGAINST}): {', '.join(moved)}"
    )
