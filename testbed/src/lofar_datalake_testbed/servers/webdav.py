"""One site's WebDAV endpoint: wsgidav over TLS on loopback, serving the RSE's directory.

Real storage (dCache, EOS, StoRM) creates missing parent collections on PUT; Rucio's client relies
on that and never sends MKCOL, so this server does the same.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter
from wsgidav.wsgidav_app import WsgiDAVApp

from .dav_paths import local_path

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


LISTEN_BACKLOG = 256


def create_parents_on_put(app: WsgiApp, root: Path) -> WsgiApp:
    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "PUT":
            target = local_path(root, environ.get("PATH_INFO", ""))
            if target is not None:
                target.parent.mkdir(parents=True, exist_ok=True)
        return app(environ, start_response)

    return wrapped


def build_app(root: Path) -> WsgiApp:
    config = {
        "provider_mapping": {"/": str(root)},
        "simple_dc": {"user_mapping": {"*": True}},
        "http_authenticator": {"domain_controller": None},
        "verbose": 1,
        "logging": {"enable": True, "enable_loggers": []},
        "property_manager": True,
        "lock_storage": True,
        "dir_browser": {"enable": True},  # Rucio HEADs the collection root on connect
    }
    return create_parents_on_put(WsgiDAVApp(config), root.resolve())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    # Enough workers and queue for 64 parallel https readers: the TLS handshake happens on the
    # accepting thread, and a backlog of 5 reset connections under that load.
    parser.add_argument("--threads", type=int, default=64)
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost"):
        parser.error("the testbed serves loopback only")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args.root.mkdir(parents=True, exist_ok=True)

    server = wsgi.Server((args.host, args.port), build_app(args.root), numthreads=args.threads,
                         request_queue_size=LISTEN_BACKLOG)
    server.ssl_adapter = BuiltinSSLAdapter(str(args.cert), str(args.key))

    def stop(_signum: int, _frame: object) -> None:
        # cheroot's stop() joins its worker threads: called from the signal handler on the
        # serving thread it deadlocks, so it runs on a thread of its own.
        threading.Thread(target=server.stop, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logging.info(
        "WebDAV %s on https://%s:%d/ (pid %d)", args.root, args.host, args.port, os.getpid()
    )
    server.start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
