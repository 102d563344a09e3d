"""Settings that protect users: TLS is verified unless the one explicit insecure setting says
otherwise, flags are parsed strictly, and a bad value is refused while Snakemake reads its
command line, with one line naming the option."""

import ast
from dataclasses import fields
from pathlib import Path

import pytest
from snakemake_interface_common.exceptions import ApiError

from datalake_core.settings import (
    DEFAULT_RUCIO_TIMEOUT,
    ProviderConfig,
    SettingsError,
    parse_flag,
)
from snakemake_storage_plugin_datalake import StorageProviderSettings

PLUGIN = Path(__file__).resolve().parents[2] / "plugin" / "src"
PRODUCTION = [PLUGIN / "datalake_core", PLUGIN / "snakemake_storage_plugin_datalake"]


def test_tls_is_verified_by_default():
    assert ProviderConfig().tls_verify is True
    assert ProviderConfig().tls() is True
    assert ProviderConfig.parse({}).tls() is True
    assert StorageProviderSettings().config().tls() is True
    defaults = {f.name: f.default for f in fields(StorageProviderSettings)}
    assert defaults["insecure_no_tls_verify"] is False


def test_a_ca_bundle_narrows_trust_and_never_disables_it(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    assert ProviderConfig.parse({"ca_bundle": str(ca)}).tls() == str(ca)


def _every_other_setting(tmp_path: Path) -> dict[str, object]:
    """A valid, non-default value for every plugin setting except the insecure one."""
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    cfg = tmp_path / "rucio.cfg"
    cfg.write_text("[client]\n")
    values: dict[str, object] = {
        "rucio_config": cfg, "account": "a", "auth_type": "userpass", "username": "u",
        "password": "p", "site_rse": "SITE_A", "stage_policy": "fts", "rule_lifetime": 3600,
        "recall_lifetime": 7200, "recall_files_per_request": 10, "recall_files_in_flight": 20,
        "recall_bytes_in_flight": 10**9,
        "fts_endpoint": "https://fts:8446", "fts_token": "t", "max_concurrent_transfers": 2,
        "output_rse": "SITE_A", "output_dataset": "lofar:ds", "output_rules": "1:SITE_B",
        "output_lifetime": 3600,
        "output_metadata": "a=b", "mounts": "SITE_A=/mnt/a", "link_mode": "copy",
        "ca_bundle": ca, "stage_timeout": 10, "http_timeout": 10, "rucio_timeout": 10,
        "fts_attempts": 2, "fts_retry_backoff": 1, "verify_site_replicas": "size",
        "no_stage_ahead": True, "prefetch_limit": 5, "local_copy": tmp_path,
        "max_requests_per_second": 1.0, "job_auth": "inherit",
        "job_credential": tmp_path / "job-credential.json",
    }
    names = {f.name for f in fields(StorageProviderSettings)} - {"insecure_no_tls_verify"}
    assert names == set(values), "a new setting needs a value here"
    return values


def test_only_the_explicit_insecure_setting_disables_tls(tmp_path):
    others = _every_other_setting(tmp_path)
    assert ProviderConfig.parse(others).tls() == str(tmp_path / "ca.pem")
    for value in (False, None, "false", "no", "0", ""):
        assert ProviderConfig.parse({"insecure_no_tls_verify": value}).tls() is True, value
    assert ProviderConfig.parse({"insecure_no_tls_verify": True}).tls() is False
    assert StorageProviderSettings(insecure_no_tls_verify=True).config().tls() is False


@pytest.mark.parametrize("value", ["maybe", "off?", 2])
def test_flags_are_parsed_strictly(value):
    with pytest.raises(SettingsError, match="insecure-no-tls-verify"):
        ProviderConfig.parse({"insecure_no_tls_verify": value})
    assert parse_flag("x", "TRUE") is True and parse_flag("x", " no ") is False


def _verify_false_calls(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.keyword) and node.arg in ("verify", "tls_verify"):
            if isinstance(node.value, ast.Constant) and node.value.value is False:
                found.append(f"{path.name}:{node.value.lineno}")
    return found


def test_no_production_call_turns_tls_verification_off():
    sources = [p for d in PRODUCTION for p in sorted(d.glob("*.py"))]
    assert sources
    assert [hit for p in sources for hit in _verify_false_calls(p)] == []


def test_rucio_timeout_setting():
    assert ProviderConfig().rucio_timeout == DEFAULT_RUCIO_TIMEOUT < 600
    assert ProviderConfig.parse({"rucio_timeout": "7"}).rucio_timeout == 7
    with pytest.raises(SettingsError, match="rucio-timeout"):
        ProviderConfig.parse({"rucio_timeout": 0})
    help_text = {f.name: f.metadata["help"] for f in fields(StorageProviderSettings)}
    assert "Rucio server" in help_text["rucio_timeout"]


@pytest.mark.parametrize(("kwargs", "option"), [
    ({"stage_policy": "bogus"}, "--storage-datalake-stage-policy: 'bogus' is not one of"),
    ({"mounts": "SITE_A=rel/dir"}, "--storage-datalake-mounts: 'rel/dir' is not an absolute"),
    ({"ca_bundle": Path("/nonexistent/ca.pem")}, "--storage-datalake-ca-bundle:"),
    ({"rucio_config": Path("/nonexistent/rucio.cfg")}, "--storage-datalake-rucio-config:"),
    ({"rule_lifetime": 1}, "--storage-datalake-rule-lifetime: must be at least 60"),
])
def test_plugin_settings_are_checked_when_snakemake_reads_them(kwargs, option):
    with pytest.raises(ApiError) as caught:
        StorageProviderSettings(**kwargs)
    message = str(caught.value)
    assert option in message and "\n" not in message


def test_secrets_stay_off_the_fields_snakemake_passes_to_spawned_jobs():
    # Snakemake exports every env-var setting it finds on the settings object into the command
    # line of spawned jobs; the provider still gets them.
    settings = StorageProviderSettings(password="s3cret", fts_token="t0ken")
    assert settings.password is None and settings.fts_token is None
    cfg = settings.config()
    assert cfg.password == "s3cret" and cfg.fts_token == "t0ken"
