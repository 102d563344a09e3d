"""Fixtures for the storage plugin tests: client environment and Snakemake runs (bulk seeding
of files, `seed`, is shared by all tests: tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


@pytest.fixture()
def client_env(testbed, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for Rucio clients (in this process and in Snakemake subprocesses)."""
    env = {
        "RUCIO_CONFIG": str(testbed.layout.client_config),
        "X509_USER_PROXY": str(testbed.pki.proxy),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return {**os.environ, **env}


@pytest.fixture()
def datalake_args(testbed) -> list[str]:
    """Snakemake options every test run needs to reach the testbed."""
    return [
        "--storage-datalake-rucio-config", str(testbed.layout.client_config),
        "--storage-datalake-ca-bundle", str(testbed.pki.ca_cert),
    ]


@pytest.fixture()
def run_snakemake() -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(workdir: Path, snakefile: Path, args: Sequence[str], env: dict[str, str],
            timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [SNAKEMAKE, "-s", str(snakefile), "-d", str(workdir), "--cores", "2", *args],
            cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout,
        )

    return run
