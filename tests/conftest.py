"""Shared fixtures. The local DataLake is started once per test session, in a private state
directory, and stopped at the end: the tests talk to real Rucio, PostgreSQL, WebDAV and FTS."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from datalake_core.rucio_adapter import Did, RucioAdapter
from lofar_datalake_testbed.layout import Layout, default_dir
from lofar_datalake_testbed.orchestrator import Testbed
from lofar_datalake_testbed.server_env import ENV_VAR as SERVER_ENV_VAR

# The tests' private testbeds share one server environment with the demo's (installed once).
os.environ.setdefault(SERVER_ENV_VAR, str(default_dir() / "server-env"))


@pytest.fixture(scope="session", autouse=True)
def _no_unreachable_slurm(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Snakemake imports its Slurm executor plugin on every start, and the plugin runs
    `scontrol show config`; with Slurm installed but no controller reachable that costs 10 s per
    Snakemake process. Point Slurm's commands at a controller that refuses at once instead.
    The Slurm site tests set SLURM_CONF to their own cluster explicitly."""
    if "SLURM_CONF" in os.environ:
        return
    conf = tmp_path_factory.mktemp("noslurm") / "slurm.conf"
    conf.write_text(
        "ClusterName=none\nSlurmctldHost=localhost(127.0.0.1)\nSlurmctldPort=9\nMessageTimeout=1\n"
        "NodeName=localhost CPUs=1\nPartitionName=none Nodes=localhost\n"
    )
    os.environ["SLURM_CONF"] = str(conf)


@pytest.fixture(scope="session", autouse=True)
def _no_htcondor_warning() -> None:
    """The htcondor bindings (for the HTCondor site test) warn on every Snakemake start where
    no HTCondor configuration exists; the HTCondor test gives its pool's config explicitly."""
    os.environ.setdefault("CONDOR_CONFIG", "/dev/null")


@pytest.fixture(scope="session")
def testbed_session() -> Iterator[Testbed]:
    # Not under pytest's tmp dir: pytest keeps that private (0700), and the embedded PostgreSQL
    # runs as its own system user that must be able to reach its data directory.
    keep = os.environ.get("LOFAR_DATALAKE_TEST_TESTBED")
    root = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="lofar-datalake-tb-"))
    bed = Testbed(Layout(root))
    try:
        bed.up()
        yield bed
    finally:
        bed.down()
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture()
def testbed(testbed_session: Testbed) -> Testbed:
    """The session's testbed, brought back up if an earlier test stopped part of it."""
    testbed_session.up()
    return testbed_session


@pytest.fixture()
def rucio(testbed: Testbed, monkeypatch: pytest.MonkeyPatch):
    """A Rucio client adapter for the pipeline account of the session's testbed."""
    from rucio.common.config import clean_cached_config

    from datalake_core.rucio_adapter import RucioAdapter

    monkeypatch.setenv("RUCIO_CONFIG", str(testbed.layout.client_config))
    clean_cached_config()  # Rucio keeps the first configuration a process read
    monkeypatch.setenv("X509_USER_PROXY", str(testbed.pki.proxy))
    return RucioAdapter()


@dataclass(frozen=True)
class Seeded:
    did: Did
    rse: str
    path: Path  # where the replica's bytes are on disk
    data: bytes


@pytest.fixture()
def seed(testbed, rucio: RucioAdapter) -> Callable[..., list[Seeded]]:
    """Write files straight into an RSE's directory and register them with one bulk
    `add_replicas` (uploading 1,000 files one by one takes minutes)."""
    from rucio.rse import rsemanager

    def make(names: Sequence[str], rse: str, size: int = 256, scope: str = "lofar",
             data: bytes | None = None) -> list[Seeded]:
        """`data` for every name (a second replica of files seeded before), else random."""
        info = rucio.rse_info(rse)
        lfns = [{"scope": scope, "name": n} for n in names]
        pfns = rsemanager.lfns2pfns(info, lfns, operation="write", scheme="file")
        out, files = [], []
        for name in names:
            did = Did(scope, name)
            path = Path(pfns[str(did)].removeprefix("file://"))
            path.parent.mkdir(parents=True, exist_ok=True)
            content = data if data is not None else os.urandom(size) + name.encode()
            path.write_bytes(content)
            files.append(
                {
                    "scope": scope,
                    "name": name,
                    "bytes": len(content),
                    "adler32": f"{zlib.adler32(content) & 0xFFFFFFFF:08x}",
                }
            )
            out.append(Seeded(did, rse, path, content))
        rucio.add_replicas(rse, files)
        return out

    return make


@pytest.fixture()
def unique() -> str:
    """A fresh name prefix, so tests never see each other's files."""
    return f"tests/{time.time_ns()}"
