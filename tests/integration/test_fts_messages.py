"""FTS's completion messages reach Rucio through the testbed's broker (coilmq), as in production:
the FTS service publishes one message per finished file, Rucio's conveyor-receiver marks the
transfer done from it, the conveyor-poller is only the safety net."""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from secret_search import files_containing

from datalake_core.fts_adapter import FtsAdapter, FtsTransfer
from datalake_core.rucio_adapter import Did
from lofar_datalake_testbed import broker
from lofar_datalake_testbed.components import fts_url

pytestmark = pytest.mark.integration


@contextmanager
def stopped(testbed, name: str) -> Iterator[None]:
    """One of the testbed's processes stopped for the block; `up` starts it again after."""
    [proc] = [p for p in testbed.services() + testbed.daemons() if p.name == name]
    proc.stop()
    try:
        yield
    finally:
        testbed.up()


def _rule_to_site_a(rucio, tmp_path: Path) -> tuple[str, Did]:
    source = tmp_path / "subband.tar"
    source.write_bytes(os.urandom(64 * 1024))
    did = Did("lofar", f"tests/{time.time_ns()}/L1_SB000_uv.MS.tar")
    rucio.upload(source, did, "SITE_B_DISK")
    return rucio.add_rule([did], "SITE_A_DISK"), did


def _one_transfer(testbed, name: str) -> tuple[FtsTransfer, Path]:
    data = os.urandom(2048)
    work = testbed.layout.rse_dir("SITE_A_DISK") / "tests" / f"{time.time_ns()}-{name}"
    work.mkdir(parents=True)
    (work / "src.bin").write_bytes(data)
    dest = work / "dst.bin"
    return FtsTransfer((work / "src.bin").as_uri(), dest.as_uri(), len(data),
                       f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"), dest


def _fts(testbed) -> FtsAdapter:
    return FtsAdapter(fts_url(testbed.layout.ports()), verify=str(testbed.pki.ca_cert),
                      x509_proxy=str(testbed.pki.proxy))


@pytest.mark.timeout(180)
def test_a_rule_completes_through_the_conveyor_receiver_with_the_poller_stopped(
        testbed, rucio, tmp_path):
    with stopped(testbed, "rucio-conveyor-poller"):
        rule, _ = _rule_to_site_a(rucio, tmp_path)
        # With the poller stopped, only the receiver can tell Rucio the transfer is done.
        assert rucio.wait_rule(rule, timeout=60).state == "OK"


def test_the_broker_refuses_a_wrong_password(testbed):
    port = testbed.layout.ports()["broker"]
    logins = broker.logins(testbed.layout)
    assert broker.answers(port, broker.CONSUMER, logins[broker.CONSUMER])
    assert not broker.answers(port, broker.CONSUMER, logins[broker.CONSUMER] + "x")
    assert not broker.answers(port, broker.PUBLISHER, logins[broker.CONSUMER])
    assert not broker.answers(port, "", "")
    # Refused logins are logged by name only; no password is in any log or process argument.
    roots = [testbed.layout.logs, testbed.layout.fts_dir, testbed.layout.run]
    for password in logins.values():
        assert files_containing(password, roots) == []
        assert not any(password in " ".join(p.argv) for p in testbed.services() + testbed.daemons())


def _secrets(testbed) -> list[str]:
    """Every password and client secret the testbed made, and where its credentials lie."""
    found = [str(testbed.layout.pki_dir), str(testbed.layout.etc), "proxy.pem", "PRIVATE KEY"]
    for path in (testbed.layout.etc / "credentials.ini", broker.auth_file(testbed.layout)):
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(path)
        found += [value for section in parser.sections() for value in parser[section].values()]
    return found


# A subscriber in the testbed's server environment (which has stomp.py, as Rucio's receiver
# uses): reads the login from stdin, prints every message body on one line.
SUBSCRIBER = """
import sys, stomp
port, vhost, destination, login = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
class Listener(stomp.ConnectionListener):
    def on_message(self, frame):
        print(frame.body.replace("\\n", " "), flush=True)
connection = stomp.Connection12([("127.0.0.1", int(port))], vhost=vhost)
connection.set_listener("test", Listener())
connection.connect(login, sys.stdin.readline().strip(), wait=True)
connection.subscribe(destination, id="test", ack="auto")
print("SUBSCRIBED", flush=True)
sys.stdin.read()
connection.disconnect()
"""


@pytest.mark.timeout(180)
def test_a_completion_message_carries_no_secret(testbed, rucio, tmp_path):
    port = testbed.layout.ports()["broker"]
    # The receiver stopped, so that this test's subscription gets the message.
    with stopped(testbed, "rucio-conveyor-receiver"):
        subscriber = subprocess.Popen(
            [str(testbed.server_env.python), "-c", SUBSCRIBER, str(port), broker.virtual_host(),
             broker.DESTINATION, broker.CONSUMER],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert subscriber.stdin is not None and subscriber.stdout is not None
        try:
            subscriber.stdin.write(broker.logins(testbed.layout)[broker.CONSUMER] + "\n")
            subscriber.stdin.flush()
            assert subscriber.stdout.readline().strip() == "SUBSCRIBED"
            rule, did = _rule_to_site_a(rucio, tmp_path)
            body = subscriber.stdout.readline()
            while json.loads(body)["file_metadata"].get("name") != did.name:
                body = subscriber.stdout.readline()  # another test's transfer
        finally:
            subscriber.stdin.close()
            subscriber.wait(timeout=10)
    message = json.loads(body)
    assert message["t_final_transfer_state"] == "Ok"
    assert message["job_metadata"]["issuer"] == "rucio"
    assert message["file_metadata"]["dst_rse"] == "SITE_A_DISK"
    assert message["vo"] == broker.VO
    leaked = [secret for secret in _secrets(testbed) if secret and secret in body]
    assert leaked == [], "a completion message carries a secret or a credential path"
    rucio.delete_rule(rule)


@pytest.mark.timeout(180)
def test_the_fts_service_keeps_transferring_when_the_broker_is_down(testbed):
    fts = _fts(testbed)
    log = testbed.layout.fts_dir / "fts.log"
    before = log.read_text().count("not published")
    with stopped(testbed, "message-broker"):
        transfer, dest = _one_transfer(testbed, "broker-down")
        [outcome] = fts.run([transfer], timeout=60)
        assert outcome.ok, outcome.reason
        assert dest.read_bytes() == Path(transfer.source.removeprefix("file://")).read_bytes()
        deadline = time.monotonic() + 10
        while log.read_text().count("not published") == before and time.monotonic() < deadline:
            time.sleep(0.2)
        assert log.read_text().count("not published") == before + 1
    # With the broker back, the next file's message goes out again (a new connection).
    transfer, _ = _one_transfer(testbed, "broker-back")
    [outcome] = fts.run([transfer], timeout=60)
    assert outcome.ok, outcome.reason
    time.sleep(1)
    assert log.read_text().count("not published") == before + 1
