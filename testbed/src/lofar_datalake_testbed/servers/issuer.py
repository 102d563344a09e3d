"""The testbed's token issuer: an OAuth 2.0 / OpenID provider that issues WLCG-profile JWTs.

It plays the part INDIGO IAM plays in ESCAPE's DataLake: for services and scripts the
client-credentials grant (RFC 6749 §4.4), for people logging in to a web service OpenID
Connect's authorization-code flow with PKCE (issuer_login.py). Access tokens are RFC 9068 JWTs
signed RS256, with the WLCG JWT profile's claims (`wlcg.ver`, `scope` with `storage.*:/path`
capabilities, `aud`). Built on authlib's authorization server, so client authentication, grant
checks and error answers follow the RFCs; this module only says who the clients are.

Served over TLS on loopback (cheroot, the testbed CA's server certificate) at:
- `/.well-known/openid-configuration`: discovery (what Rucio's pyoidc and the services read);
- `/jwks`: the public signing key;
- `/token`: `grant_type=client_credentials`, client_secret_basic or client_secret_post, with
  optional `scope` (space-separated, each one the client is allowed, path-prefix aware for
  `storage.*:/path`) and `audience` (space-separated, each one the client is allowed); or
  `grant_type=authorization_code` for a client with registered redirect URIs;
- `/authorize`, `/userinfo`: the people's part (issuer_login.py).

Clients come from a private JSON file (`--clients`), written by the testbed:
`{"<client_id>": {"secret_sha256": hex, "scopes": [...], "audiences": [...], "lifetime": s}}`,
plus `"redirect_uris": [...]` for a web service's client (which then has the authorization-code
grant only); people from another (`--users`, issuer_login.py). Both are read again whenever they
changed (checked on each request, a `stat`): a client or user the testbed adds counts from the
next request on, with no signal to send and no moment when the issuer has half of it.
The signing key is a private PEM file (`--signing-key`), made on the first `up`.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import logging
import os
import secrets
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter
from flask import Flask, jsonify, request
from joserfc.jwk import KeySet, RSAKey

from . import issuer_login

WLCG_VERSION = "1.0"
ANY_AUDIENCE = "https://wlcg.cern.ch/jwt/v1/any"  # WLCG profile: accepted by every service


@dataclass(frozen=True)
class Client(ClientMixin):
    client_id: str
    secret_sha256: str
    scopes: tuple[str, ...]
    audiences: tuple[str, ...]
    lifetime: int
    redirect_uris: tuple[str, ...] = ()  # a web service's: it logs people in, nothing else

    @property
    def client_metadata(self) -> dict[str, Any]:
        return {}  # nothing registered beyond the above (userinfo unsigned, as JSON)

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        """The requested scopes this client may have (all of its own when none is asked for)."""
        if not scope:
            return " ".join(self.scopes)
        return " ".join(s for s in scope.split() if scope_allowed(s, self.scopes))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris  # exactly as registered

    def check_client_secret(self, client_secret: str) -> bool:
        given = hashlib.sha256(client_secret.encode()).hexdigest()
        return hmac.compare_digest(given, self.secret_sha256)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and bool(self.redirect_uris)

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == ("authorization_code" if self.redirect_uris
                              else "client_credentials")


def scope_allowed(wanted: str, granted: tuple[str, ...]) -> bool:
    """`storage.read:/data/x` is within `storage.read:/data`; other scopes match exactly."""
    for have in granted:
        if wanted == have:
            return True
        name, sep, path = have.partition(":")
        wanted_name, wanted_sep, wanted_path = wanted.partition(":")
        if sep and wanted_sep and name == wanted_name and name.startswith("storage."):
            base = path.rstrip("/") + "/"
            if (wanted_path.rstrip("/") + "/").startswith(base):
                return True
    return False


def load_clients(path: Path) -> dict[str, Client]:
    data = json.loads(path.read_text())
    return {
        cid: Client(cid, entry["secret_sha256"], tuple(entry["scopes"]),
                    tuple(entry["audiences"]), int(entry["lifetime"]),
                    tuple(entry.get("redirect_uris", ())))
        for cid, entry in data.items()
    }


T = TypeVar("T")


class Reloaded(Generic[T]):
    """A file's parsed content, parsed again when the file changed (another inode, as an atomic
    replace makes, or another size or time); no file (yet) is an empty registry."""

    def __init__(self, path: Path | None, parse: Callable[[Path], dict[str, T]]) -> None:
        self.path, self.parse = path, parse
        self._seen: tuple[int, int, int] | None = None
        self._value: dict[str, T] = {}
        self._lock = threading.Lock()

    def __call__(self) -> dict[str, T]:
        path = self.path
        try:
            info = path.stat() if path is not None else None
        except FileNotFoundError:
            info = None
        if path is None or info is None:
            return {}
        seen = (info.st_ino, info.st_size, info.st_mtime_ns)
        with self._lock:
            if seen != self._seen:
                self._seen = seen
                try:
                    self._value = self.parse(path)
                    logging.info("read %s: %d entries", path, len(self._value))
                except (ValueError, KeyError, TypeError) as exc:  # a hand edit gone wrong
                    logging.error("%s not read (%s): keeping what it said before", path,
                                  type(exc).__name__)
            return self._value


def signing_keys(path: Path) -> KeySet:
    """The issuer's RSA key, made on first use (private, 0600), with a stable `kid`."""
    if not path.exists():
        key = RSAKey.generate_key(2048, private=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key.as_pem(private=True).decode())
    key = RSAKey.import_key(path.read_bytes())
    key.ensure_kid()
    return KeySet([key])


class WlcgTokens(JWTBearerTokenGenerator):
    """RFC 9068 access tokens with the WLCG profile's version claim and requested audiences."""

    def __init__(self, issuer: str, keys: KeySet) -> None:
        super().__init__(issuer, alg="RS256", expires_generator=lambda client, _grant: (
            client.lifetime))
        self._keys = keys

    def get_jwks(self) -> KeySet:
        return self._keys

    def get_extra_claims(self, client: Client, grant_type: str, user: Any,
                         scope: str) -> dict[str, Any]:
        return {"wlcg.ver": WLCG_VERSION}

    def get_audiences(self, client: Client, user: Any, scope: str) -> list[str]:
        asked = (request.form.get("audience") or "").split()
        return [a for a in asked if a in client.audiences] or list(client.audiences)


def build_app(issuer: str, clients: Callable[[], dict[str, Client]], keys: KeySet,
              users: Callable[[], dict[str, issuer_login.User]] = dict) -> Flask:
    app = Flask(__name__)
    # The login form's CSRF token lives in Flask's signed session; the key is the process's own.
    app.config.update(SECRET_KEY=secrets.token_bytes(32), SESSION_COOKIE_SECURE=True,
                      SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_NAME=issuer_login.COOKIE)
    server = AuthorizationServer(app, query_client=lambda cid: clients().get(cid),
                                 save_token=lambda token, req: None)  # tokens are self-contained
    server.register_grant(grants.ClientCredentialsGrant)
    server.register_token_generator("default", WlcgTokens(issuer, keys))
    issuer_login.register(app, server, issuer, keys, clients, users)

    @app.get("/.well-known/openid-configuration")
    def discovery() -> Any:
        return jsonify({
            "issuer": issuer,
            "token_endpoint": f"{issuer}/token",
            "jwks_uri": f"{issuer}/jwks",
            "authorization_endpoint": f"{issuer}/authorize",
            "userinfo_endpoint": f"{issuer}/userinfo",
            "grant_types_supported": ["authorization_code", "client_credentials"],
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "code_challenge_methods_supported": ["S256"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic",
                                                      "client_secret_post"],
            "scopes_supported": sorted({s for c in clients().values() for s in c.scopes}),
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce",
                                 "name", "preferred_username", "email", "email_verified"],
        })

    @app.get("/jwks")
    def jwks() -> Any:
        return jsonify(keys.as_dict(private=False))

    @app.post("/token")
    def token() -> Any:
        return server.create_token_response()

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--clients", type=Path, required=True)
    parser.add_argument("--users", type=Path,
                        help="the people who may log in (JSON, issuer_login.py); none without")
    parser.add_argument("--signing-key", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost"):
        parser.error("the testbed serves loopback only")
    if not args.clients.is_file():
        parser.error(f"--clients: no file {args.clients}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    issuer = f"https://{args.host}:{args.port}"
    app = build_app(issuer, Reloaded(args.clients, load_clients), signing_keys(args.signing_key),
                    Reloaded(args.users, issuer_login.load_users))
    server = wsgi.Server((args.host, args.port), app, numthreads=8)
    server.ssl_adapter = BuiltinSSLAdapter(str(args.cert), str(args.key))

    def stop(_signum: int, _frame: object) -> None:
        threading.Thread(target=server.stop, daemon=True).start()  # see webdav.py

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logging.info("token issuer %s (pid %d)", issuer, os.getpid())
    server.start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
