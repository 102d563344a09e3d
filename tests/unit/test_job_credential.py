"""The jobs' credential file: no secret of the submit host's configuration in it, private from
the first byte, found in a job's sandbox by its relative path, refused once expired, and set up
as a Rucio configuration holding only the token."""

from __future__ import annotations

import configparser
import os
import stat
import time
from pathlib import Path

import pytest

from datalake_core import job_credential as jc


def _credential(expires_in: float = 3600) -> jc.JobCredential:
    return jc.JobCredential(
        account="lofar", run_id="run-1", expires_at=time.time() + expires_in,
        rucio_config={"client": {"rucio_host": "http://127.0.0.1:1", "auth_type": "userpass"},
                      "policy": {"lfn2pfn_algorithm_default": "hash"}},
        token="tok-123", x509_proxy="-----BEGIN CERTIFICATE-----\n")  # fmt: skip


def test_public_config_drops_every_secret_option(tmp_path: Path) -> None:
    cfg = tmp_path / "rucio.cfg"
    cfg.write_text("[client]\nrucio_host = http://h\npassword = hunter2\nusername = u\n"
                   "[policy]\nlfn2pfn_algorithm_default = hash\n")
    public = jc.public_config(cfg)
    assert public["client"] == {"rucio_host": "http://h", "username": "u"}
    assert public["policy"] == {"lfn2pfn_algorithm_default": "hash"}
    assert "hunter2" not in repr(public)


def test_the_file_is_private_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "d" / "job-credential.json"
    jc.write(_credential(), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert jc.read(path) == _credential().__class__.from_json(path.read_text())
    assert "tok-123" not in repr(jc.read(path))


def test_a_job_finds_it_in_its_sandbox_by_the_relative_path(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    sandbox = tmp_path / "sandbox"
    jc.write(_credential(), sandbox / jc.DEFAULT_PATH)
    monkeypatch.chdir(sandbox)
    # The submit host's absolute path does not exist on the worker.
    assert jc.read(Path("/nonexistent/submit") / jc.DEFAULT_PATH).run_id == "run-1"
    assert jc.read(jc.DEFAULT_PATH).account == "lofar"


def test_a_missing_or_expired_credential_says_what_to_do(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(jc.JobCredentialError, match="htcondor_transfer_input_files"):
        jc.read(tmp_path / "none.json")
    jc.write(_credential(expires_in=-5), tmp_path / "old.json")
    with pytest.raises(jc.JobCredentialError, match=r"expired at .* resubmit"):
        jc.read(tmp_path / "old.json")


def test_install_gives_rucio_a_configuration_with_only_the_token(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUCIO_CONFIG", raising=False)
    monkeypatch.delenv("X509_USER_PROXY", raising=False)
    config = jc.install(_credential())
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(config)
    token_file = Path(parser["client"]["auth_token_file_path"])
    assert token_file.read_text() == "tok-123"
    assert parser["client"]["password"] == ""
    assert parser["client"]["account"] == "lofar"
    assert parser["policy"]["lfn2pfn_algorithm_default"] == "hash"
    assert os.environ["RUCIO_CONFIG"] == str(config)
    assert Path(os.environ["X509_USER_PROXY"]).read_text().startswith("-----BEGIN")
    for path in (config, token_file, Path(os.environ["X509_USER_PROXY"])):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.parent.stat().st_mode) == 0o700


def test_no_token_without_a_password_or_a_supported_auth_type() -> None:
    with pytest.raises(jc.JobCredentialError, match="no user name and password"):
        jc.request_token("http://127.0.0.1:9", "lofar", "userpass", "lofar", None, None, True, 1)
    with pytest.raises(jc.JobCredentialError, match="job-auth inherit"):
        jc.request_token("http://127.0.0.1:9", "lofar", "oidc", None, None, None, True, 1)


def test_only_a_job_snakemake_started_acts_as_a_job() -> None:
    from snakemake_storage_plugin_datalake.snakemake_internals import running_as_job

    assert running_as_job(["python", "-m", "snakemake", "--target-jobs", "a:", "--mode",
                           "remote"])
    assert running_as_job(["snakemake", "--mode=subprocess"])
    # A run a user starts, even with a credential inherited in its environment, is a run.
    assert not running_as_job(["snakemake", "--profile", "profiles/testbed-slurm"])
    assert not running_as_job(["snakemake", "--mode", "default"])
