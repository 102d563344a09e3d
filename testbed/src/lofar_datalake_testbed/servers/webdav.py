"""One site's WebDAV endpoint: wsgidav over TLS on loopback, serving the RSE's directory.

Real storage (dCache, EOS, StoRM) creates missing parent collections on PUT; Rucio's client relies
on that and never sends MKCOL, so this server does the same. Like them it reports a file's
adler32 or md5 when asked with `Want-Digest` (dav_digest.py), which is how gfal2 (and so FTS)
verifies checksums on https storage.

Who may do what, as on grid storage where the X.509 identity or the WLCG token decides:

- A request with `Authorization: Bearer` is judged by its token alone (servers/bearer.py): one
  that does not verify against `--token-issuer` (signature, issuer, lifetime, an audience given
  with `--token-audience`) is refused with 401 and `WWW-Authenticate: Bearer
  error="invalid_token"`; one whose `storage.*:/path` scopes do not cover the request is refused
  with 403 naming the scope it needs. Without `--token-issuer` every token is refused (401).
- Otherwise writing (PUT, DELETE, MKCOL, MOVE, COPY, PROPPATCH, LOCK, UNLOCK and any method not
  known to only read) needs a client certificate issued by the CA given with `--client-ca` (the
  testbed's own). The TLS handshake asks for one without demanding it (CERT_OPTIONAL): a
  certificate from another CA fails the handshake, and a request without one is refused here with
  403 and the reason. The testbed's writers present its client PEM (X509_USER_PROXY): Rucio's
  upload client, the FTS service, and the compute sites' jobs through their copy of it.
- Reading (GET, HEAD, OPTIONS, PROPFIND) follows the RSE's policy, `--anonymous-read yes|no`
  (default yes, the policy of `layout.SITES` for every RSE not declared private): with `no`, reads
  need the same certificate as writes (or a token).

With `--nearline yes` the endpoint is a tape storage area (servers/tape.py): reading a file's
bytes is refused (503, with the reason) unless a pin holds it online.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter
from wsgidav.wsgidav_app import WsgiDAVApp

from . import bearer, tape
from .dav_digest import report_digests
from .dav_paths import local_path

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


LISTEN_BACKLOG = 256
READ_METHODS = bearer.READ_METHODS
NO_TOKENS = (
    "bearer tokens are not accepted here (this storage trusts no token issuer); present a "
    "client certificate issued by the testbed CA (X509_USER_PROXY)"
)


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


@dataclass(frozen=True)
class Refusal:
    status: str
    reason: str
    challenge: str | None = None  # WWW-Authenticate


def _header_text(text: str) -> str:
    """`text` made safe inside a quoted header parameter (printable ASCII, no quotes)."""
    return "".join(c for c in text if " " <= c <= "~" and c not in '"\\')[:300]


def _bearer_refusal(error: str, reason: str, **params: str) -> Refusal:
    status = "401 Unauthorized" if error == "invalid_token" else "403 Forbidden"
    extra = "".join(f', {k}="{_header_text(v)}"' for k, v in params.items())
    challenge = f'Bearer error="{error}", error_description="{_header_text(reason)}"{extra}'
    return Refusal(status, reason, challenge)


def _request_path(environ: dict[str, Any]) -> str | None:
    """The request's path as wsgidav sees it (WSGI's latin-1 re-read as UTF-8), normalised."""
    raw = environ.get("PATH_INFO", "")
    try:
        raw = raw.encode("latin-1").decode("utf-8")
    except UnicodeError:
        pass
    return bearer.normalise(raw)


def judge_token(
    environ: dict[str, Any], token: str, root: Path, verifier: bearer.Verifier | None
) -> Refusal | None:
    """Why a request carrying a bearer token is refused, or None if its token allows it."""
    if verifier is None:
        return _bearer_refusal("invalid_token", NO_TOKENS)
    try:
        claims = verifier.verify(token)
    except bearer.InvalidToken as exc:
        return _bearer_refusal("invalid_token", f"invalid token: {exc}")
    except bearer.IssuerUnavailable as exc:
        return Refusal("503 Service Unavailable", f"tokens cannot be checked now: {exc}")
    method = environ.get("REQUEST_METHOD", "").upper()
    path = _request_path(environ)
    header = environ.get("HTTP_DESTINATION")
    destination = bearer.destination_path(header) if header else None
    if path is None or (header and destination is None):
        return Refusal("400 Bad Request", "the path leads out of the storage")
    exists = method == "PUT" and root.joinpath(*path.split("/")).exists()
    wanted = bearer.needs(method, path, exists=exists, destination=destination)
    need = bearer.missing_scope(str(claims.get("scope", "")), wanted)
    if need is None:
        return None
    reason = f"the token's scopes do not allow {method} {path}: it needs {need}"
    return _bearer_refusal("insufficient_scope", reason, scope=str(need).split(" or ")[0])


def judge_certificate(environ: dict[str, Any], anonymous_read: bool) -> Refusal | None:
    if has_verified_client(environ):
        return None
    reason = refusal(environ.get("REQUEST_METHOD", ""), anonymous_read)
    return None if reason is None else Refusal("403 Forbidden", reason)


def authorise(
    app: WsgiApp, root: Path, *, anonymous_read: bool, verifier: bearer.Verifier | None
) -> WsgiApp:
    """Refuse, with the status and the reason, what the token or the RSE's policy does not allow."""

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        token = bearer.bearer_token(environ)
        if token is not None:
            refused = judge_token(environ, token, root, verifier)
        else:
            refused = judge_certificate(environ, anonymous_read)
        if refused is None:
            return app(environ, start_response)
        body = (refused.reason + "\n").encode()
        logging.warning(
            "refused %s %s: %s",
            environ.get("REQUEST_METHOD"),
            environ.get("PATH_INFO"),
            refused.reason,
        )
        headers = [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
        ]
        if refused.challenge:
            headers.append(("WWW-Authenticate", refused.challenge))
        start_response(refused.status, headers)
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


def build_app(
    root: Path,
    *,
    anonymous_read: bool = True,
    verifier: bearer.Verifier | None = None,
    nearline: bool = False,
) -> WsgiApp:
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
    dav = report_digests(create_parents_on_put(WsgiDAVApp(config), root.resolve()), root.resolve())
    if nearline:
        dav = tape.nearline_reads(dav, root)
    return authorise(dav, root.resolve(), anonymous_read=anonymous_read, verifier=verifier)


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
    parser.add_argument(
        "--nearline",
        type=yes_no,
        default=False,
        metavar="yes|no",
        help="a tape storage area: files are read only while pinned online (no)",
    )
    bearer.add_arguments(parser, "storage")
    parser.add_argument("--ca-bundle", type=Path, help="CA certificates for reaching the issuer")
    # Enough workers and queue for 64 parallel https readers: the TLS handshake happens on the
    # accepting thread, and a backlog of 5 reset connections under that load.
    parser.add_argument("--threads", type=int, default=64)
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost"):
        parser.error("the testbed serves loopback only")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args.root.mkdir(parents=True, exist_ok=True)
    verifier = bearer.verifier_from_args(parser, args)
    app = build_app(
        args.root, anonymous_read=args.anonymous_read, verifier=verifier, nearline=args.nearline
    )
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
        "certificate from %s or a token from %s)",
        args.root,
        args.host,
        args.port,
        os.getpid(),
        "yes" if args.anonymous_read else "no",
        args.client_ca,
        args.token_issuer or "no issuer",
    )
    server.start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
