"""Fixtures for the storage plugin tests: client environment and Snakemake runs (bulk seeding
of files, `seed`, is shared by all tests: tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from token_support import Issuer

from lofar_datalake_testbed import pki as testbed_pki

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


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> testbed_pki.Pki:
    """A CA and certificates of their own, for tests that start servers of their own."""
    return testbed_pki.ensure_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory, pki: testbed_pki.Pki) -> Iterator[Issuer]:
    """A real token issuer (servers/issuer.py) trusting nobody but the tests' clients."""
    started = Issuer(tmp_path_factory.mktemp("issuer"), pki).start()
    yield started
    started.stop()
