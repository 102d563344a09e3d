"""The site templates have what a Slurm site and an HTCondor pool need, and the testbed's ready
profiles are derived from them: every key of a template is in its testbed profile (except what
the testbed provides otherwise, named below), with the settings that make DataLake mode work at
such a site. The testbed profiles themselves run in tests/sites/test_compare_at_sites.py."""

from __future__ import annotations

from typing import Any

import yaml
from site_run import REPO

APPTAINER_KEYS = ("software-deployment-method", "apptainer-prefix", "apptainer-args")


def _profile(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((REPO / "profiles" / name / "config.yaml").read_text()))


def test_the_slurm_template_has_what_a_slurm_site_needs() -> None:
    template = _profile("slurm-site")
    assert template["executor"] == "slurm"
    # Without accounting, sacct fails and the executor would wait forever.
    assert template["slurm-status-command"] == "squeue"
    assert template["default-resources"]["slurm_partition"]
    assert set(APPTAINER_KEYS) <= set(template), "jobs run in containers with the site's binds"
    assert template["software-deployment-method"] == "apptainer"
    assert template["apptainer-args"].strip(), "an empty apptainer-args breaks Snakemake 9.27"
    assert template["storage-datalake-stage-policy"] in ("rule", "fts")


def test_the_htcondor_template_has_what_a_pool_without_shared_storage_needs() -> None:
    template = _profile("htcondor-site")
    assert template["executor"] == "htcondor" and template["shared-fs-usage"] == "none"
    prefixes = template["htcondor-shared-fs-prefixes"].split(",")
    assert ".." in prefixes, "else the executor transfers the rules' ../scripts paths"
    assert ".snakemake/storage" in prefixes, "else it transfers DataLake files the jobs handle"
    assert "keep_intermediate=True" in template["config"], "the executor moves no temp() output"
    resources = template["default-resources"]
    assert (REPO / "profiles" / "htcondor-site" / "job-wrapper.sh").stat().st_mode & 0o111
    assert ".snakemake/datalake-credential" in resources["htcondor_transfer_input_files"]
    assert ".snakemake/datalake" in resources["htcondor_transfer_output_files"].split(",")
    assert "SNAKEMAKE_STORAGE_DATALAKE_JOB_CREDENTIAL=" in resources["environment"]
    assert template["storage-datalake-stage-policy"] == "download"


def test_the_testbed_profiles_are_the_templates_with_the_testbeds_values() -> None:
    for template_name, derived_name, provided_otherwise in (
        # APPTAINER_BIND (the site's environment) binds the storage.
        ("slurm-site", "testbed-slurm", {"apptainer-args"}),
        # The pool runs the shared software, no containers.
        ("htcondor-site", "testbed-htcondor", set(APPTAINER_KEYS)),
    ):
        template, derived = _profile(template_name), _profile(derived_name)
        missing = set(template) - set(derived) - provided_otherwise
        assert not missing, f"{derived_name} lacks {missing} of {template_name}"
        assert set(template["default-resources"]) <= set(derived["default-resources"])
        for key in ("executor", "shared-fs-usage", "slurm-status-command",
                    "storage-datalake-stage-policy", "remote-job-local-storage-prefix"):
            assert template.get(key) == derived.get(key), (derived_name, key)
        assert (REPO / "profiles" / derived_name / "testbed-site").read_text().strip() in (
            derived_name.removeprefix("testbed-"),)
