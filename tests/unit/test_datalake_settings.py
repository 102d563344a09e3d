from dataclasses import fields
from pathlib import Path

import pytest

from datalake_core.settings import (
    LinkMode,
    Mount,
    OutputRule,
    ProviderConfig,
    SettingsError,
    StagePolicy,
    parse_metadata,
    parse_mounts,
    parse_output_rules,
)
from snakemake_storage_plugin_datalake import StorageProviderSettings


def test_every_setting_has_help_default_and_env_var_flag():
    for f in fields(StorageProviderSettings):
        if f.name == "max_requests_per_second":
            continue
        assert f.metadata["help"]
        assert "env_var" in f.metadata and "required" in f.metadata
    secrets = {f.name for f in fields(StorageProviderSettings) if f.metadata.get("env_var")}
    assert {"password", "fts_token"} <= secrets


def test_secrets_are_not_in_reprs():
    settings = StorageProviderSettings(password="s3cret", fts_token="t0ken")
    assert "s3cret" not in repr(settings) and "t0ken" not in repr(settings)
    cfg = ProviderConfig.parse({"password": "s3cret", "fts_token": "t0ken"})
    assert "s3cret" not in repr(cfg) and "t0ken" not in repr(cfg)


def test_parse_from_plugin_settings(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    settings = StorageProviderSettings(
        site_rse="SITE_A_DISK", stage_policy="RULE", rule_lifetime=3600,
        mounts="SITE_A_DISK=/mnt/a, https://dav:443/=/mnt/dav/",
        output_rules="2:tier=disk:86400;1:SITE_C_DAV", output_metadata="project=L2, a=b",
        link_mode="hardlink", ca_bundle=ca, max_concurrent_transfers=8)
    cfg = ProviderConfig.parse({f.name: getattr(settings, f.name) for f in fields(settings)})
    assert cfg.stage_policy is StagePolicy.RULE
    assert cfg.link_mode is LinkMode.HARDLINK
    assert cfg.mounts == (Mount("SITE_A_DISK", Path("/mnt/a")),
                          Mount("https://dav:443/", Path("/mnt/dav")))
    assert cfg.output_rules == (OutputRule(2, "tier=disk", 86400), OutputRule(1, "SITE_C_DAV"))
    assert cfg.output_metadata == (("project", "L2"), ("a", "b"))
    assert cfg.tls() == str(ca)
    assert cfg.stage_ahead and cfg.max_concurrent_transfers == 8


def test_tls_verification_is_on_unless_explicitly_disabled():
    assert ProviderConfig.parse({}).tls() is True
    assert ProviderConfig.parse({"insecure_no_tls_verify": True}).tls() is False


@pytest.mark.parametrize(("raw", "message"), [
    ({"stage_policy": "copy"}, "stage-policy"),
    ({"link_mode": "reflink"}, "link-mode"),
    ({"max_concurrent_transfers": 0}, "max-concurrent-transfers"),
    ({"ca_bundle": "/nonexistent/ca.pem"}, "ca-bundle"),
    ({"mounts": "SITE_A_DISK"}, "mounts"),
    ({"mounts": "SITE_A_DISK=relative/dir"}, "absolute"),
    ({"output_rules": "two:SITE_A"}, "output-rules"),
    ({"output_rules": "0:SITE_A"}, "copies >= 1"),
    ({"output_metadata": "novalue"}, "KEY=VALUE"),
])
def test_bad_values_name_the_setting(raw, message):
    with pytest.raises(SettingsError, match=message):
        ProviderConfig.parse(raw)


def test_empty_texts_mean_nothing():
    assert parse_mounts(None) == () and parse_output_rules("") == ()
    assert parse_metadata(" , ") == ()


def test_site_expression_detection():
    assert not ProviderConfig(site_rse="SITE_A_DISK").site_is_expression()
    assert ProviderConfig(site_rse="site=SITE_A").site_is_expression()
