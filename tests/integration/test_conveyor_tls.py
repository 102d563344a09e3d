"""Rucio's conveyor checks the FTS server's certificate (testbed launcher `rucio_daemon`).

Upstream, Rucio's FTS3Transfertool talks to an https FTS with `verify=False`. An impostor on the
FTS port with a certificate from another CA would receive the conveyor's requests (and its
client certificate); through the launcher the daemons run with, the handshake fails first.
Rucio's own transfertool code runs here, in the testbed's server environment, against a real
https server.
"""

from __future__ import annotations

import http.server
import os
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from lofar_datalake_testbed.pki import ensure_pki

pytestmark = pytest.mark.integration

PROBE = """
import sys
from lofar_datalake_testbed.servers import rucio_daemon
if sys.argv[2] == "patched":
    rucio_daemon.verify_fts_tls(sys.argv[3])
from rucio.transfertool.fts3 import FTS3Transfertool
try:
    FTS3Transfertool(sys.argv[1]).version()
    print("ANSWERED")
except Exception as exc:
    print("FAILED", type(exc).__name__, exc)
"""


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _Recorder.hits.append(self.path)
        body = b'{"api": {"major": 3, "minor": 12, "patch": 0}}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def impostor(tmp_path: Path) -> Iterator[str]:
    """An https server on loopback whose certificate comes from a CA the testbed never made."""
    other = ensure_pki(tmp_path / "other-pki")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(other.server_cert, other.server_key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Recorder.hits = []
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _probe(testbed, url: str, mode: str) -> str:
    env = {**os.environ, "RUCIO_CONFIG": str(testbed.layout.server_config)}
    done = subprocess.run(
        [str(testbed.server_env.python), "-c", PROBE, url, mode, str(testbed.pki.ca_cert)],
        env=env, capture_output=True, text=True, timeout=120)
    return done.stdout.strip() + done.stderr[-2000:]


def test_the_conveyor_refuses_an_fts_with_a_foreign_certificate(testbed, impostor):
    answer = _probe(testbed, impostor, "patched")
    assert answer.startswith("FAILED"), answer
    assert "CERTIFICATE_VERIFY_FAILED" in answer or "SSLError" in answer, answer
    assert _Recorder.hits == []  # not one request reached the impostor


def test_upstream_would_have_talked_to_the_impostor(testbed, impostor):
    answer = _probe(testbed, impostor, "unpatched")
    assert answer.startswith("ANSWERED"), answer
    assert _Recorder.hits  # why the launcher exists


def test_the_conveyor_still_reaches_the_testbed_fts(testbed):
    url = f"https://127.0.0.1:{testbed.layout.ports()['fts']}"
    answer = _probe(testbed, url, "patched")
    assert answer.startswith("ANSWERED"), answer
