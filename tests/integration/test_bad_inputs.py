"""Bad inputs give a clear error, before any job runs where possible, and lose nothing: a
dataset or container named as a file, names built to traverse paths or inject shell commands,
unknown or malformed configuration and plugin settings, wrong credentials, and storage whose TLS
certificate is not trusted. All against the real local DataLake.

(An unknown DID: test_storage_workflow.py::test_unknown_did_fails_before_any_job.)
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from pathlib import Path

import certifi
import pytest
import requests
import yaml
from rucio_accounts import client_config

from datalake_core.rucio_adapter import Did

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "tests" / "workflow" / "storage" / "Snakefile"
PIPELINE = REPO / "Snakefile"
# `MARKER` is replaced by a fresh name per test: a file of that name anywhere means a shell ran it.
UNSAFE = ["x; touch MARKER", "$(touch MARKER)", "`touch MARKER`", "../../etc/passwd"]


def _clean_failure(result) -> str:
    """The run failed, and said so without a Python traceback; returns its output."""
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "Traceback (most recent call last)" not in output, output[-3000:]
    return output


def _marker_created(marker: str, workdir: Path) -> list[Path]:
    """Where a `touch <marker>` would have left its file: anywhere under the working directory,
    or in the directories a shell could have run in (the test's, the temporary directory,
    home). /tmp is not searched recursively: it is shared and large."""
    found = [p for p in workdir.rglob("*") if marker in p.name]
    for place in {Path.cwd(), Path(tempfile.gettempdir()), Path.home(), SNAKEFILE.parent}:
        found += [p for p in place.iterdir() if marker in p.name]
    return found


# -- a dataset or container where a file is expected ----------------------------------------------
def test_a_dataset_or_container_named_as_a_file_fails_before_any_job(
        rucio, seed, unique, datalake_args, run_snakemake, client_env, tmp_path):
    files = seed([f"{unique}/files/f{i}.dat" for i in range(3)], "SITE_B_DISK")
    dataset = Did("lofar", f"{unique}/ds/SB000.dat")
    container = Did("lofar", f"{unique}/ct/SB000.dat")
    rucio.ensure_dataset(dataset)
    rucio.attach(dataset, [f.did for f in files])
    rucio.client.add_container(container.scope, container.name)
    rucio.client.attach_dids(container.scope, container.name, [dataset.as_dict()])
    for kind, did in (("dataset", dataset), ("container", container)):
        workdir = tmp_path / kind
        workdir.mkdir()
        prefix = did.name.removesuffix("/SB000.dat")
        result = run_snakemake(workdir, SNAKEFILE,
                               [*datalake_args, "--config", f"prefix={prefix}", "count=1"],
                               client_env)
        output = _clean_failure(result)
        assert f"{did} is a {kind} of 3 files, not a file" in output
        assert f"datalake://lofar/{unique}/files/f" in output, "the files to name instead"
        assert not (workdir / "checked").exists(), "no job may have run"


# -- names that would traverse paths or inject shell commands -------------------------------------
@pytest.mark.parametrize("unsafe", UNSAFE)
def test_unsafe_query_names_are_refused_while_the_snakefile_is_read(
        unsafe, datalake_args, run_snakemake, client_env, tmp_path):
    marker = f"MARKER_{secrets.token_hex(4)}"
    name = unsafe.replace("MARKER", marker)
    result = run_snakemake(tmp_path, SNAKEFILE,
                           [*datalake_args, "--config", f"prefix={name}", "count=1"], client_env)
    output = _clean_failure(result)
    assert f"query datalake://lofar/{name}/SB{{sb}}.dat is invalid" in output
    reason = "'..' path segment" if ".." in name else "not allowed in a DID name"
    assert reason in output
    assert _marker_created(marker, tmp_path) == []
    assert not (tmp_path / "checked").exists()


def test_unsafe_wildcard_value_is_refused_before_any_job(datalake_args, run_snakemake,
                                                         client_env, unique, tmp_path):
    # The wildcard's value comes from the requested target, not from the Snakefile.
    marker = f"MARKER_{secrets.token_hex(4)}"
    target = f"checked/x; touch {marker}.txt"
    result = run_snakemake(tmp_path, SNAKEFILE, [*datalake_args, "--config", f"prefix={unique}",
                                                 "count=1", "--", target], client_env)
    output = _clean_failure(result)
    assert f"datalake://lofar/{unique}/SBx; touch {marker}.dat" in output
    assert "not allowed in a DID name" in output
    assert _marker_created(marker, tmp_path) == []


def _pipeline_workdir(tmp_path: Path) -> Path:
    (tmp_path / "config").mkdir()
    for name in ("config.yaml", "observations.tsv"):
        shutil.copy(REPO / "config" / name, tmp_path / "config" / name)
    return tmp_path


def test_unsafe_dids_in_the_observation_sheet_are_refused_row_by_row(run_snakemake, client_env,
                                                                     tmp_path):
    workdir = _pipeline_workdir(tmp_path)
    marker = f"MARKER_{secrets.token_hex(4)}"
    dids = [u.replace("MARKER", marker) for u in UNSAFE] + ["lofar:/etc/passwd"]
    rows = ["observation\trole\tsubband\tcalibrator\tpath\tdid"]
    rows += [f"L1\tcalibrator\t{i:03d}\t\tL1_SB{i:03d}.tar\t{did}" for i, did in enumerate(dids)]
    (workdir / "sheet.tsv").write_text("\n".join(rows) + "\n")
    result = run_snakemake(workdir, PIPELINE, ["--config", "input_mode=datalake",
                                               "observations=sheet.tsv"], client_env)
    output = _clean_failure(result)
    assert "invalid observation sheet sheet.tsv" in output
    for row, did in enumerate(dids, start=2):
        assert f"row {row}: column 'did': {did!r} is not a DataLake DID" in output
    assert _marker_created(marker, workdir) == []
    assert not (workdir / "results").exists() and not (workdir / "work").exists()


# -- configuration and plugin settings ------------------------------------------------------------
def test_unknown_and_malformed_config_keys_are_named(run_snakemake, client_env, tmp_path):
    workdir = _pipeline_workdir(tmp_path)
    config = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    config["datalake"]["prodcts"] = "typo/for/products"
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    result = run_snakemake(workdir, PIPELINE, ["--config", "bogus_key=1",
                                               "keep_intermediate=maybe"], client_env)
    output = _clean_failure(result)
    assert "invalid configuration" in output
    assert "unknown key 'bogus_key'" in output
    assert "unknown key 'datalake.prodcts' (allowed: scope, products)" in output
    assert "key 'keep_intermediate': 'maybe' is not of type 'boolean'" in output
    assert "On instance" not in output, "no dump of the whole configuration"


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--storage-datalake-stage-policy", "bogus",
     "--storage-datalake-stage-policy: 'bogus' is not one of rule, fts, download"),
    ("--storage-datalake-mounts", "SITE_C_DAV=relative/dir",
     "--storage-datalake-mounts: 'relative/dir' is not an absolute path"),
])
def test_bad_plugin_setting_is_one_line_naming_the_option(option, value, message, datalake_args,
                                                         run_snakemake, client_env, tmp_path):
    result = run_snakemake(tmp_path, SNAKEFILE, [*datalake_args, option, value, "--config",
                                                 "prefix=x", "count=1"], client_env)
    _clean_failure(result)
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert lines == [f"Error: datalake storage plugin: {message}"]


# -- credentials --------------------------------------------------------------------------------
def _run_as(testbed, run_snakemake, client_env, workdir: Path, config: Path, **env: str):
    args = ["--storage-datalake-rucio-config", str(config),
            "--storage-datalake-ca-bundle", str(testbed.pki.ca_cert),
            "--config", "prefix=tests/credentials", "count=1"]
    return run_snakemake(workdir, SNAKEFILE, args, {**client_env, **env})


def test_wrong_password_names_account_and_auth_type_never_the_password(
        testbed, run_snakemake, client_env, tmp_path):
    config = client_config(testbed, tmp_path / "etc", "lofar")
    wrong = f"S3cr3t-wrong-{secrets.token_hex(8)}"
    workdir = tmp_path / "run"
    workdir.mkdir()
    result = _run_as(testbed, run_snakemake, client_env, workdir, config,
                     SNAKEMAKE_STORAGE_DATALAKE_PASSWORD=wrong)
    output = _clean_failure(result)
    assert "did not authenticate account lofar (auth type userpass)" in output
    assert "SNAKEMAKE_STORAGE_DATALAKE_PASSWORD" in output, "says what to check"
    assert wrong not in output
    assert not [p for p in workdir.rglob("*") if p.is_file() and wrong.encode() in p.read_bytes()]


@pytest.mark.parametrize("proxy", ["missing", "not a certificate"])
def test_bad_x509_proxy_names_account_and_auth_type(proxy, testbed, run_snakemake, client_env,
                                                    tmp_path):
    config = client_config(testbed, tmp_path / "etc", "lofar", auth_type="x509_proxy")
    path = tmp_path / "x509up"
    if proxy != "missing":
        path.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
        path.chmod(0o600)
    result = _run_as(testbed, run_snakemake, client_env, tmp_path, config,
                     X509_USER_PROXY=str(path))
    output = _clean_failure(result)
    assert "did not authenticate account lofar (auth type x509_proxy)" in output
    assert "check the X.509 proxy" in output


# -- TLS ---------------------------------------------------------------------------------------
def test_untrusted_storage_certificate_fails_naming_the_host_and_never_falls_back(
        testbed, seed, unique, run_snakemake, client_env, tmp_path):
    [seeded] = seed([f"{unique}/SB000.dat"], "SITE_C_DAV")
    port = testbed.layout.ports()["dav_SITE_C_DAV"]
    # The endpoint is fine with the testbed's CA; certifi's public CAs do not include it.
    assert requests.get(f"https://127.0.0.1:{port}/", verify=str(testbed.pki.ca_cert),
                        timeout=10).status_code < 500
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"https://127.0.0.1:{port}/", verify=certifi.where(), timeout=10)
    args = ["--storage-datalake-rucio-config", str(testbed.layout.client_config),
            "--storage-datalake-ca-bundle", certifi.where(),
            "--storage-datalake-stage-policy", "download",
            "--config", f"prefix={unique}", "count=1"]
    result = run_snakemake(tmp_path, SNAKEFILE, args, client_env)
    output = _clean_failure(result)
    assert "TLS verification failed" in output and "certificate verify failed" in output
    assert f"127.0.0.1:{port}" in output or f"port={port}" in output, "names the endpoint"
    assert str(seeded.did) in output
    assert not (tmp_path / "checked").exists(), "the job must not have run"
    staged = tmp_path / ".snakemake" / "storage"
    assert not [p for p in staged.rglob("*") if p.is_file()], "no byte fetched, even partly"
