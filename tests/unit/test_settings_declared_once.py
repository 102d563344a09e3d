"""Each plugin setting is declared once (`datalake_core.settings.SETTINGS`): the plugin's settings
class, ProviderConfig, the settings `compare` reads and the README's table must all agree with
that declaration, so that none of them can drift."""

from dataclasses import MISSING, fields
from pathlib import Path

import pytest
from snakemake_interface_storage_plugins.registry import StoragePluginRegistry
from snakemake_interface_storage_plugins.settings import StorageProviderSettingsBase

from datalake_core.resolver import Resolver
from datalake_core.settings import BY_NAME, SETTINGS, ProviderConfig
from lofar_datalake.compare.make_mirror import provider_settings
from snakemake_storage_plugin_datalake import StorageProviderSettings
from snakemake_storage_plugin_datalake.settings_table import END, START, markdown

README = Path(__file__).resolve().parents[2] / "plugin" / "README.md"
BASE = {f.name for f in fields(StorageProviderSettingsBase)}  # Snakemake's own


def _plugin_fields():
    return {f.name: f for f in fields(StorageProviderSettings) if f.name not in BASE}


def test_the_readme_table_is_the_generated_one():
    text = README.read_text()
    assert START in text and END in text
    table = text.split(START, 1)[1].split(END, 1)[0].strip("\n") + "\n"
    assert table == markdown(), (
        "plugin/README.md is out of date: run "
        "`python -m snakemake_storage_plugin_datalake.settings_table plugin/README.md`")


def test_the_plugin_class_has_exactly_the_declared_settings():
    plugin = _plugin_fields()
    assert list(plugin) == [s.name for s in SETTINGS]
    for setting in SETTINGS:
        f = plugin[setting.name]
        assert f.default == setting.default and f.default_factory is MISSING, setting.name
        assert f.metadata["help"] == setting.help
        assert f.metadata["env_var"] is setting.env_var
        assert f.metadata["required"] is setting.required
        assert f.repr is not setting.secret
    assert issubclass(StorageProviderSettings, StorageProviderSettingsBase)


def test_option_and_variable_names_are_snakemakes():
    plugin = StoragePluginRegistry().get_plugin("datalake")
    assert plugin.settings_cls is StorageProviderSettings
    for setting in SETTINGS:
        assert plugin.get_cli_arg(setting.name) == setting.option
        if setting.env_var:
            assert plugin.get_envvar(setting.name) == setting.env_name


def test_secrets_come_only_from_the_environment():
    secrets = {s.name for s in SETTINGS if s.secret}
    assert secrets == {"password", "fts_token"}
    assert all(BY_NAME[name].env_var for name in secrets)


def test_provider_config_defaults_are_the_declared_ones():
    config_fields = {f.name for f in fields(ProviderConfig)}
    assert config_fields == {s.config_name for s in SETTINGS}
    assert ProviderConfig() == ProviderConfig.parse({}) == StorageProviderSettings().config()
    assert ProviderConfig().prefetch_limit == BY_NAME["prefetch_limit"].default
    assert Resolver(lambda: None).prefetch_limit == BY_NAME["prefetch_limit"].default  # type: ignore[arg-type, return-value]
    shown = repr(ProviderConfig(password="s3cret", fts_token="t0ken"))
    assert "s3cret" not in shown and "t0ken" not in shown


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
def test_every_declared_default_parses(setting):
    assert setting.parse(None) == setting.parse(setting.default)


def test_compare_reads_the_declared_environment_variables(tmp_path, monkeypatch):
    for setting in SETTINGS:
        if setting.env_name:
            monkeypatch.delenv(setting.env_name, raising=False)
    monkeypatch.setenv("SNAKEMAKE_STORAGE_DATALAKE_FTS_TOKEN", "t")
    monkeypatch.setenv("SNAKEMAKE_STORAGE_DATALAKE_CA_BUNDLE", "/env/ca.pem")
    # Set by a submitting Snakemake for its jobs: a run compare starts is not one of them.
    monkeypatch.setenv("SNAKEMAKE_STORAGE_DATALAKE_JOB_CREDENTIAL", "/x/job-credential.json")
    assert provider_settings(None, ["--storage-datalake-insecure-no-tls-verify"]) == {
        "fts_token": "t", "ca_bundle": "/env/ca.pem", "insecure_no_tls_verify": True}
    given = provider_settings(None, ["--storage-datalake-ca-bundle", "/arg/ca.pem"])
    assert given["ca_bundle"] == "/arg/ca.pem"
