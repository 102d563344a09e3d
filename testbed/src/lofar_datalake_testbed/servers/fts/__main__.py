"""Run the FTS3-REST stand-in (in the testbed's server environment):
`python -m lofar_datalake_testbed.servers.fts --state-dir D --port P --cert C --key K
--client-ca CA --storage-root DIR... [--tape URL=DIR... --recall-seconds S --tape-drives N]
[--token-issuer URL --token-audience A...]`.

It serves https only and answers only callers whose client certificate the `--client-ca`
issued or whose WLCG bearer token `--token-issuer` signed for one of the `--token-audience`s;
`file://` URLs are confined to the `--storage-root` directories. Bytes are moved by gfal2, one
helper process per copy run with `--gfal-python` (Debian's python3 with python3-gfal2). Files
on a `--tape` endpoint are brought online before they are copied (staging.py)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import ssl
import sys
import threading
from functools import partial
from pathlib import Path
from urllib.parse import unquote_to_bytes

from cheroot import server as cheroot_server
from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

from .. import bearer
from . import confine, messages, mover, trust
from .app import App
from .staging import Library, Stager, TapeArea, release_source_pin
from .store import Store
from .worker import Engine

LOOPBACK = ("127.0.0.1", "localhost")
# Cheroot's default listen backlog (5) overflows when many clients connect at once (each `fts3`
# client call opens a new connection), and the kernel then resets some of them.
LISTEN_BACKLOG = 256


class _Request(cheroot_server.HTTPRequest):
    """Accepts "//jobs": Rucio joins an `fts` attribute ending in "/" with "/jobs".

    Cheroot reads a target starting with "//" as an authority ("jobs") and refuses it in
    strict mode, so strict parsing is off and the path is rebuilt from the raw target.
    """

    def __init__(
        self, server: object, conn: object, proxy_mode: bool = False, strict_mode: bool = True
    ) -> None:
        super().__init__(server, conn, proxy_mode, strict_mode=False)

    def read_request_line(self) -> bool:
        if not super().read_request_line():
            return False
        if self.uri.startswith(b"//"):
            target, _, query = self.uri.partition(b"?")
            self.path = b"/" + unquote_to_bytes(target.lstrip(b"/"))
            self.qs = query
        return True


class _Connection(cheroot_server.HTTPConnection):
    RequestHandlerClass = _Request


def tls_adapter(cert: Path, key: Path, client_ca: Path) -> BuiltinSSLAdapter:
    """TLS that asks for a client certificate and trusts only `client_ca` to have issued it.

    Optional at the TLS level, so that a caller without one gets a 401 naming what to send
    rather than a failed handshake; the application refuses such callers on every endpoint.
    Not the adapter's own context: that one also trusts the system's CAs for client
    certificates.
    """
    adapter = BuiltinSSLAdapter(str(cert), str(key))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    context.load_verify_locations(cafile=str(client_ca))
    context.verify_mode = ssl.CERT_OPTIONAL
    adapter.context = context
    return adapter


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m lofar_datalake_testbed.servers.fts", description=__doc__
    )
    parser.add_argument("--state-dir", type=Path, required=True, help="jobs database and log")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1", help="loopback only")
    parser.add_argument("--cert", type=Path, required=True, help="server certificate (PEM)")
    parser.add_argument("--key", type=Path, required=True, help="server private key (PEM)")
    parser.add_argument(
        "--client-ca", type=Path, required=True, help="CA that issues the clients' certificates"
    )
    parser.add_argument(
        "--storage-root",
        type=Path,
        action="append",
        default=[],
        help="directory file:// sources and destinations must be under (repeatable)",
    )
    parser.add_argument(
        "--ca-bundle", type=Path, help="CA certificates for https storage and the token issuer"
    )
    parser.add_argument(
        "--tape",
        type=TapeArea.parse,
        action="append",
        default=[],
        metavar="URL=DIR",
        help="a tape endpoint (https://host:port) and the directory it serves (repeatable)",
    )
    parser.add_argument(
        "--recall-seconds", type=float, default=2.0, help="time one drive takes to recall a file"
    )
    parser.add_argument("--tape-drives", type=int, default=2, help="files recalled at once")
    bearer.add_arguments(parser, "service")
    parser.add_argument("--max-active", type=int, default=4, help="concurrent transfers")
    parser.add_argument(
        "--gfal-python",
        default=mover.DEBIAN_PYTHON,
        help="the interpreter Debian's python3-gfal2 is installed for, which runs each copy",
    )
    parser.add_argument("--vo", default="lofar", help="VO reported by /whoami")
    parser.add_argument(
        "--messages",
        type=Path,
        help="the broker FTS publishes transfer-completion messages to, and its login (file)",
    )
    parser.add_argument("--threads", type=int, default=16, help="HTTP worker threads")
    args = parser.parse_args(argv)
    if args.host not in LOOPBACK:
        parser.error("the testbed FTS serves loopback (127.0.0.1) only")
    if args.max_active < 1:
        parser.error("--max-active must be at least 1")
    if args.tape_drives < 1 or args.recall_seconds < 0:
        parser.error("--tape-drives must be at least 1 and --recall-seconds not negative")
    for option in ("ca_bundle", "cert", "key", "client_ca"):
        path = getattr(args, option)
        if path is not None and not path.is_file():
            parser.error(f"--{option.replace('_', '-')} {path} does not exist")
    for root in args.storage_root:
        if not root.is_dir():
            parser.error(f"--storage-root {root} is not a directory")
    problem = trust.gfal2_problem(args.gfal_python)
    if problem:
        parser.error(problem)
    args.verifier = bearer.verifier_from_args(parser, args)
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    args.state_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        handlers=[logging.StreamHandler(), logging.FileHandler(args.state_dir / "fts.log")],
    )
    store = Store(args.state_dir / "fts.sqlite")
    ca_dir = None
    if args.ca_bundle:
        ca_dir = str(trust.ca_directory(args.ca_bundle, args.state_dir / "certificates"))
    gfal = mover.Gfal(
        roots=confine.resolve_roots(args.storage_root), ca_dir=ca_dir, python=args.gfal_python
    )
    library = Library(tuple(args.tape), args.recall_seconds, args.tape_drives)
    engine = Engine(
        store, gfal, max_active=args.max_active, on_copied=partial(release_source_pin, library)
    )
    stager = Stager(
        store,
        library,
        on_online=engine.wake,
        on_file_changed=lambda job_id, file_id: messages.file_ended(store, job_id, file_id),
    )
    server = wsgi.Server(
        ("127.0.0.1", args.port),
        App(
            store,
            engine,
            vo=args.vo,
            storage_roots=args.storage_root,
            verifier=args.verifier,
        ),
        numthreads=args.threads,
        request_queue_size=LISTEN_BACKLOG,
    )
    server.ConnectionClass = _Connection
    server.ssl_adapter = tls_adapter(args.cert, args.key, args.client_ca)

    def stop(_signum: int, _frame: object) -> None:
        # Not server.stop() here: the handler runs on the main thread inside cheroot's
        # connection loop, and stopping from there deadlocks on the loop's own locks.
        threading.Thread(target=server.stop, name="fts-stop").start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.messages:
        messages.start(args.messages, f"https://127.0.0.1:{args.port}")
    engine.start()
    stager.start()
    logging.info(
        "FTS3 REST stand-in on https://127.0.0.1:%d/ (pid %d, state %s, max %d active, "
        "storage roots %s, tape %s, %d drives, %.1f s per recall, tokens from %s)",
        args.port,
        os.getpid(),
        args.state_dir,
        args.max_active,
        ", ".join(str(r) for r in args.storage_root) or "none",
        ", ".join(f"{a.url}={a.root}" for a in args.tape) or "none",
        args.tape_drives,
        args.recall_seconds,
        args.token_issuer or "no issuer",
    )
    try:
        server.start()
    finally:
        stager.stop()
        engine.stop()
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
