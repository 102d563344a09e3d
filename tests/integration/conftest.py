"""Fixtures for the storage plugin tests: client environment and fast bulk seeding of files."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from lofar_datalake.datalake.rucio_adapter import Did, RucioAdapter

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


@dataclass(frozen=True)
class Seeded:
    did: Did
    rse: str
    path: Path  # where the replica's bytes are on disk
    data: bytes


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
def seed(testbed, rucio: RucioAdapter) -> Callable[..., list[Seeded]]:
    """Write files straight into an RSE's directory and register them with one bulk
    `add_replicas` (uploading 1,000 files one by one takes minutes)."""
    from rucio.rse import rsemanager

    def make(names: Sequence[str], rse: str, size: int = 256, scope: str = "lofar") -> list[Seeded]:
        info = rucio.rse_info(rse)
        lfns = [{"scope": scope, "name": n} for n in names]
        pfns = rsemanager.lfns2pfns(info, lfns, operation="write", scheme="file")
        out, files = [], []
        for name in names:
            did = Did(scope, name)
            path = Path(pfns[str(did)].removeprefix("file://"))
            path.parent.mkdir(parents=True, exist_ok=True)
            data = os.urandom(size) + name.encode()
            path.write_bytes(data)
            files.append(
                {
                    "scope": scope,
                    "name": name,
                    "bytes": len(data),
                    "adler32": f"{zlib.adler32(data) & 0xFFFFFFFF:08x}",
                }
            )
            out.append(Seeded(did, rse, path, data))
        rucio.add_replicas(rse, files)
        return out

    return make


@pytest.fixture()
def unique() -> str:
    """A fresh name prefix, so tests never see each other's files."""
    return f"tests/{time.time_ns()}"


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
