"""The testbed's token issuer: an OAuth 2.0 / OpenID provider that issues WLCG-profile JWTs.

It plays the part INDIGO IAM plays in ESCAPE's DataLake, for services and scripts rather than
people: the client-credentials grant only (RFC 6749 §4.4), access tokens as RFC 9068 JWTs signed
RS256, with the WLCG JWT profile's claims (`wlcg.ver`, `scope` with `storage.*:/path`
capabilities, `aud`). Built on authlib's authorization server, so client authentication, grant
checks and error answers follow the RFCs; this module only says who the clients are.

Served over TLS on loopback (cheroot, the testbed CA's server certificate) at:
- `/.well-known/openid-configuration`: discovery (what Rucio's pyoidc and the services read);
- `/jwks`: the public signing key;
- `/token`: `grant_type=client_credentials`, client_secret_basic or client_secret_post, with
  optional `scope` (space-separated, each one the client is allowed, path-prefix aware for
  `storage.*:/path`) and `audience` (space-separated, each one the client is allowed).

Clients come from a private JSON file (`--clients`), written by the testbed:
`{"<client_id>": {"secret_sha256": hex, "scopes": [...], "audiences": [...], "lifetime": s}}`.
The signing key is a private PEM file (`--signing-key`), made on the first `up`.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter
from flask import Flask, jsonify, request
from joserfc.jwk import KeySet, RSAKey

WLCG_VERSION = "1.0"
ANY_AUDIENCE = "https://wlcg.cern.ch/jwt/v1/any"  # WLCG profile: accepted by every service


@dataclass(frozen=True)
class Client(ClientMixin):
    client_id: str
    secret_sha256: str
    scopes: tuple[str, ...]
    audiences: tuple[str, ...]
    lifetime: int

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
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        given = hashlib.sha256(client_secret.encode()).hexdigest()
        return hmac.compare_digest(given, self.secret_sha256)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


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
                    tuple(entry["audiences"]), int(entry["lifetime"]))
        for cid, entry in data.items()
    }


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


def build_app(issuer: str, clients: dict[str, Client], keys: KeySet) -> Flask:
    app = Flask(__name__)
    server = AuthorizationServer(app, query_client=clients.get,
                                 save_token=lambda token, req: None)  # tokens are self-contained
    server.register_grant(grants.ClientCredentialsGrant)
    server.register_token_generator("default", WlcgTokens(issuer, keys))

    @app.get("/.well-known/openid-configuration")
    def discovery() -> Any:
        return jsonify({
            "issuer": issuer,
            "token_endpoint": f"{issuer}/token",
            "jwks_uri": f"{issuer}/jwks",
            # No people log in here; the endpoint is named because discovery requires one.
            "authorization_endpoint": f"{issuer}/authorize",
            "grant_types_supported": ["client_credentials"],
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic",
                                                      "client_secret_post"],
            "scopes_supported": sorted({s for c in clients.values() for s in c.scopes}),
        })

    @app.get("/jwks")
    def jwks() -> Any:
        return jsonify(keys.as_dict(private=False))

    @app.post("/token")
    def token() -> Any:
        return server.create_token_response()

    @app.route("/authorize", methods=["GET", "POST"])
    def authorize() -> Any:
        return jsonify({"error": "unsupported_response_type",
                        "error_description": "only the client_credentials grant is offered"}), 400

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--clients", type=Path, required=True)
    parser.add_argument("--signing-key", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost"):
        parser.error("the testbed serves loopback only")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    issuer = f"https://{args.host}:{args.port}"
    app = build_app(issuer, load_clients(args.clients), signing_keys(args.signing_key))
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
