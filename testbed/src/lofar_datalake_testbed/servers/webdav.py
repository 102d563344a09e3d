"""One site's WebDAV endpoint: wsgidav over TLS on loopback, serving the RSE's directory.

Real storage (dCache, EOS, StoRM) creates missing parent collections on PUT; Rucio's client relies
on that and never sends MKCOL, so this server does the same.

Who may do what, as on grid storage where the X.509 identity decides:

- Writing (PUT, DELETE, MKCOL, MOVE, COPY, PROPPATCH, LOCK, UNLOCK and any method not known to
  only read) needs a client certificate issued by the CA given with `--client-ca` (the testbed's
  own). The TLS handshake asks for one without demanding it (CERT_OPTIONAL): a certificate from
  another CA fails the handshake, and a request without one is refused here with 403 and the
  reason. The testbed's writers present its client PEM (X509_USER_PROXY): Rucio's upload client,
  the FTS service, and the compute sites' jobs through their copy of it.
- Reading (GET, HEAD, OPTIONS, PROPFIND) follows the RSE's policy, `--anonymous-read yes|no`
  (default yes, the policy of `layout.SITES` for every RSE not declared private): with `no`, reads
  need the same certificate as writes.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import ssl
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
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PROPFIND"})


def create_parents_on_put(app: WsgiApp, root: Path) -> WsgiApp:
    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "PUT":
            target = local_path(root, environ.get("PATH_INFO", ""))
            if target is not None:
                target.parent.mkdir(parents=True, exist_ok=True)
        return app(environ, start_response)

    return wrapped


def has_verified_client(environ: dict[str, Any]) -> bool:
    """Whether the connection presented a client certificate that the TLS layer verified.

    Cheroot sets SUCCESS only for a certificate that passed verification against `--client-ca`;
    one that failed never gets this far, since the handshake is aborted.
    """
    return environ.get("SSL_CLIENT_VERIFY") == "SUCCESS"


def refusal(method: str, anonymous_read: bool) -> str | None:
    """Why a request without a verified client certificate is refused, or None if it is not."""
    if method.upper() not in READ_METHODS:
        return (
            f"{method} writes to this storage and needs a client certificate issued by the "
            "testbed CA (X509_USER_PROXY)"
        )
    if not anonymous_read:
        return (
            "this storage is private: reading needs a client certificate issued by the "
            "testbed CA (X509_USER_PROXY)"
        )
    return None


def require_certificates(app: WsgiApp, *, anonymous_read: bool) -> WsgiApp:
    """Refuse, with 403 and the reason, what the RSE's policy allows only to certificate holders."""

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        reason = None
        if not has_verified_client(environ):
            reason = refusal(environ.get("REQUEST_METHOD", ""), anonymous_read)
        if reason is None:
            return app(environ, start_response)
        body = (reason + "\n").encode()
        logging.warning(
            "refused %s %s: %s", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"), reason
        )
        start_response(
            "403 Forbidden",
            [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return wrapped


def ssl_adapter(cert: Path, key: Path, client_ca: Path) -> BuiltinSSLAdapter:
    """TLS with the server certificate, asking clients for a certificate from `client_ca`."""
    adapter = BuiltinSSLAdapter(str(cert), str(key), certificate_chain=str(client_ca))
    adapter.context.verify_mode = ssl.CERT_OPTIONAL
    return adapter


def yes_no(text: str) -> bool:
    if text.lower() not in ("yes", "no"):
        raise argparse.ArgumentTypeError(f"expected yes or no, not {text!r}")
    return text.lower() == "yes"


def build_app(root: Path, *, anonymous_read: bool = True) -> WsgiApp:
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
    dav = create_parents_on_put(WsgiDAVApp(config), root.resolve())
    return require_certificates(dav, anonymous_read=anonymous_read)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument(
        "--client-ca",
        type=Path,
        required=True,
        help="CA whose client certificates may write (and read, if private)",
    )
    parser.add_argument(
        "--anonymous-read",
        type=yes_no,
        default=True,
        metavar="yes|no",
        help="whether reading needs no certificate (the RSE's policy; yes)",
    )
    # Enough workers and queue for 64 parallel https readers: the TLS handshake happens on the
    # accepting thread, and a backlog of 5 reset connections under that load.
    parser.add_argument("--threads", type=int, default=64)
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost"):
        parser.error("the testbed serves loopback only")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args.root.mkdir(parents=True, exist_ok=True)

    app = build_app(args.root, anonymous_read=args.anonymous_read)
    server = wsgi.Server(
        (args.host, args.port), app, numthreads=args.threads, request_queue_size=LISTEN_BACKLOG
    )
    server.ssl_adapter = ssl_adapter(args.cert, args.key, args.client_ca)

    def stop(_signum: int, _frame: object) -> None:
        # cheroot's stop() joins its worker threads: called from the signal handler on the
        # serving thread it deadlocks, so it runs on a thread of its own.
        threading.Thread(target=server.stop, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logging.info(
        "WebDAV %s on https://%s:%d/ (pid %d, anonymous read %s, writes need a client "
        "certificate from %s)",
        args.root,
        args.host,
        args.port,
        os.getpid(),
        "yes" if args.anonymous_read else "no",
        args.client_ca,
    )
    server.start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
