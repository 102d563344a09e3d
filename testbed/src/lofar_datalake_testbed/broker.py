"""The testbed's message broker: how FTS tells Rucio that a transfer ended.

Production FTS publishes one "transfer complete" message per file to a STOMP broker and Rucio's
`rucio-conveyor-receiver` consumes them, so a rule's transfer is marked DONE seconds after FTS
finishes it; the conveyor-poller asking FTS is only the safety net. Here the broker is PyPI
`coilmq` 1.1.0 on 127.0.0.1, with coilmq's simple authenticator: two logins, `fts` (the FTS
service publishes) and `rucio` (the receiver consumes), random passwords made on the first `up`
and kept in `etc/broker/auth.ini` (0600), which coilmq reads itself; the FTS service reads its
login from `etc/broker/fts-publisher.ini` (0600), the receiver from Rucio's server config
(0600). No password is on a command line or in a log.

**No TLS, loopback only.** coilmq 1.1.0 has no TLS: its `ThreadedStompServer` is a plain
`socketserver.TCPServer` and its configuration has no certificate or key option. Rucio 41.5.1's
receiver could not use a TLS broker as production FTS brokers are secured either: with
`use_ssl = True` (its default) it authenticates by client certificate alone, sending no login,
and calls stomp.py's `set_ssl` without `ca_certs`, so stomp.py 8.2.0 connects with
`CERT_NONE` and never checks whose broker it reached. So logins travel in clear on the loopback
interface, where only local processes can see them, and the messages carry no secret (see
`servers/fts/messages.py`).

coilmq answers STOMP 1.2 only when the CONNECT frame's `host` header is its own fully
qualified name, so clients send `socket.getfqdn()` as the virtual host. Messages go to a queue,
not a topic: coilmq keeps a queue's messages while the receiver reconnects.
"""

from __future__ import annotations

import configparser
import secrets
import socket
from pathlib import Path

from .layout import LOOPBACK, Layout
from .rucio_config import write_private_ini

DESTINATION = "/queue/transfer.fts_monitoring_complete"
PUBLISHER = "fts"
CONSUMER = "rucio"
VO = "lofar"  # the VO the FTS service reports (its `--vo`): the receiver reads only its own


def broker_dir(layout: Layout) -> Path:
    return layout.etc / "broker"


def auth_file(layout: Layout) -> Path:
    """coilmq's `[auth]` file: login = password for the publisher and the consumer."""
    return broker_dir(layout) / "auth.ini"


def config_file(layout: Layout) -> Path:
    return broker_dir(layout) / "coilmq.cfg"


def publisher_file(layout: Layout) -> Path:
    """Where the FTS service finds the broker and its login."""
    return broker_dir(layout) / "fts-publisher.ini"


def virtual_host() -> str:
    return socket.getfqdn()


def logins(layout: Layout) -> dict[str, str]:
    """The broker's logins and passwords, made on first use; a missing one is added."""
    path = auth_file(layout)
    parser = configparser.ConfigParser(interpolation=None)
    if path.exists():
        parser.read(path)
    if not parser.has_section("auth"):
        parser["auth"] = {}
    missing = [name for name in (PUBLISHER, CONSUMER) if not parser.has_option("auth", name)]
    for name in missing:
        parser["auth"][name] = secrets.token_urlsafe(24)
    if missing:
        _write_private(path, parser)
    return dict(parser["auth"])


def write_configs(layout: Layout, ports: dict[str, int]) -> None:
    """coilmq's configuration (no secret: it names the auth file) and the publisher's file."""
    passwords = logins(layout)
    broker = configparser.ConfigParser(interpolation=None)
    broker["coilmq"] = {
        "listen_addr": LOOPBACK,
        "listen_port": str(ports["broker"]),
        "qstore.factory": "coilmq.store.memory.MemoryQueue",
        "auth.factory": "coilmq.auth.simple.make_simple",
        "auth.simple.file": str(auth_file(layout)),
    }
    _write_private(config_file(layout), broker)
    publisher = configparser.ConfigParser(interpolation=None)
    publisher["broker"] = {
        "host": LOOPBACK,
        "port": str(ports["broker"]),
        "vhost": virtual_host(),
        "destination": DESTINATION,
        "username": PUBLISHER,
        "password": passwords[PUBLISHER],
    }
    _write_private(publisher_file(layout), publisher)


def receiver_section(layout: Layout, ports: dict[str, int]) -> dict[str, str]:
    """Rucio's `[messaging-fts3]`: where its conveyor-receiver reads FTS's messages."""
    return {
        "brokers": LOOPBACK,
        "port": str(ports["broker"]),
        "broker_virtual_host": virtual_host(),
        "destination": DESTINATION,
        "use_ssl": "False",
        "username": CONSUMER,
        "password": logins(layout)[CONSUMER],
        "voname": VO,
    }


def answers(port: int, login: str, passcode: str, timeout: float = 2.0) -> bool:
    """Whether the broker on `port` accepts this login (a STOMP 1.2 CONNECT, then DISCONNECT)."""
    frame = (f"CONNECT\naccept-version:1.2\nhost:{virtual_host()}\nlogin:{login}\n"
             f"passcode:{passcode}\n\n\0")
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
            sock.sendall(frame.encode())
            reply = sock.recv(4096)
            if reply.startswith(b"CONNECTED"):
                sock.sendall(b"DISCONNECT\n\n\0")
                return True
            return False
    except OSError:
        return False



def _write_private(path: Path, parser: configparser.ConfigParser) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private_ini(path, parser)
