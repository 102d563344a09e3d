"""Shared fixtures. The local DataLake is started once per test session, in a private state
directory, and stopped at the end: the tests talk to real Rucio, PostgreSQL, WebDAV and FTS."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lofar_datalake.testbed.layout import Layout
from lofar_datalake.testbed.orchestrator import Testbed


@pytest.fixture(scope="session")
def testbed_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testbed]:
    root = Path(os.environ.get("LOFAR_DATALAKE_TEST_TESTBED") or tmp_path_factory.mktemp("tb"))
    bed = Testbed(Layout(root))
    bed.up()
    yield bed
    bed.down()


@pytest.fixture()
def testbed(testbed_session: Testbed) -> Testbed:
    """The session's testbed, brought back up if an earlier test stopped part of it."""
    testbed_session.up()
    return testbed_session


@pytest.fixture()
def rucio(testbed: Testbed, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """A Rucio client adapter for the pipeline account of the session's testbed."""
    from lofar_datalake.datalake.rucio_adapter import RucioAdapter

    monkeypatch.setenv("RUCIO_CONFIG", str(testbed.layout.client_config))
    monkeypatch.setenv("X509_USER_PROXY", str(testbed.pki.proxy))
    return RucioAdapter()
