"""People logging in at the testbed's issuer: OpenID Connect's authorization-code flow (Core
§3.1), as INDIGO IAM offers it to the web services of ESCAPE's DataLake.

- `/authorize` checks the request (a registered client, a redirect URI it registered, exactly;
  `response_type=code`; a `nonce`; PKCE with S256, RFC 7636, whatever the client), shows a login
  form, and on the right password redirects back with a code. A wrong password stays here, with
  the error. The form carries a token bound to the browser's issuer cookie (CSRF), a cookie
  named apart from the services' ones: cookies ignore ports, and every testbed service is on
  127.0.0.1.
- `/token` with `grant_type=authorization_code` (the confidential client's secret, the code
  verifier) answers an access token and an `id_token` (authlib's `OpenIDCode`), both RS256 with
  the issuer's key. Codes live in memory, once: the first exchange, right or wrong, uses a code
  up, and after CODE_LIFETIME it is gone anyway.
- `/userinfo` answers the claims of the access token's user (authlib's `UserInfoEndpoint`).

Users come from a private JSON file (`--users`), written by the testbed (issuer_accounts.py):
`{"<username>": {"sub": ..., "password_hash": "pbkdf2_sha256$...", "email": ..., "name": ...}}`.
There is no single sign-on session: each authorization asks for the password.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2.rfc6749 import InvalidRequestError, OAuth2Error
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import OpenIDCode, UserInfo, UserInfoEndpoint
from flask import Flask, render_template_string, request, session
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from .passwords import verify_password

CODE_LIFETIME = 60  # seconds; RFC 6749 §4.1.2 recommends at most 10 minutes
ID_TOKEN_LIFETIME = 300
COOKIE = "testbed_issuer_session"

LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in · testbed issuer</title>
<style>body{font-family:system-ui,sans-serif;margin:2em;color:#1a1a1a;background:#fff}
.error{background:#fde8e8;color:#9b1c1c;padding:.6em;border-left:4px solid #9b1c1c}
label{display:block;margin-top:.6em;font-weight:600}
input,button{display:block;font:inherit}
button{margin-top:1em;background:#1f3a5f;color:#fff;border:0;padding:.5em 1.2em}</style>
</head><body><h1>Sign in to the testbed's issuer</h1>
<p>{{ client }} asks who you are.</p>
{% if error %}<p class="error" role="alert" id="error">{{ error }}</p>{% endif %}
<form method="post">
<input type="hidden" name="csrf" value="{{ csrf }}">
<label for="username">Username</label>
<input type="text" id="username" name="username" autocomplete="username" required>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form></body></html>"""


@dataclass(frozen=True)
class User:
    username: str
    sub: str  # the subject every token names, stable and opaque, as IAM's are
    password_hash: str
    email: str = ""
    name: str = ""

    def get_user_id(self) -> str:
        return self.sub

    def claims(self, scope: str) -> UserInfo:
        """The claims `scope` lets a client see (OpenID Connect Core §5.4)."""
        wanted = scope.split()
        info = UserInfo(sub=self.sub)
        if "profile" in wanted:
            info.update(name=self.name, preferred_username=self.username)
        if "email" in wanted and self.email:
            info.update(email=self.email, email_verified=True)
        return info


def load_users(path: Path) -> dict[str, User]:
    data = json.loads(path.read_text())
    return {name: User(name, str(entry.get("sub") or name), str(entry["password_hash"]),
                       str(entry.get("email", "")), str(entry.get("name", "")))
            for name, entry in data.items()}


@dataclass(frozen=True)
class Code:
    """An authorization code's grant, as authlib's AuthorizationCodeMixin reads it."""

    client_id: str
    redirect_uri: str
    scope: str
    username: str
    nonce: str
    code_challenge: str
    code_challenge_method: str
    auth_time: int
    expires_at: float

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> list[str]:
        return ["pwd"]


class Codes:
    """Authorization codes in memory; taking one removes it, so it is used once."""

    def __init__(self) -> None:
        self._codes: dict[str, Code] = {}
        self._lock = threading.Lock()

    def put(self, code: str, grant: Code) -> None:
        with self._lock:
            now = time.time()
            self._codes = {k: v for k, v in self._codes.items() if v.expires_at > now}
            self._codes[code] = grant

    def take(self, code: str, client_id: str) -> Code | None:
        with self._lock:
            found = self._codes.pop(code, None)
        if found is None or found.client_id != client_id or found.expires_at < time.time():
            return None
        return found

    def nonce_used(self, client_id: str, nonce: str) -> bool:
        with self._lock:
            return any(c.client_id == client_id and c.nonce == nonce
                       for c in self._codes.values())


class S256Challenge(CodeChallenge):
    """PKCE for every client, confidential ones too (OAuth 2.1), and S256 only."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]  # noqa: RUF012 (authlib's class attribute)

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge") or data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("PKCE is required: give 'code_challenge' with "
                                      "'code_challenge_method=S256'", redirect_uri=redirect_uri)
        super().validate_code_challenge(grant, redirect_uri)


def register(app: Flask, server: AuthorizationServer, issuer: str, keys: KeySet,
             clients: Callable[[], dict[str, Any]], users: Callable[[], dict[str, User]]) -> None:
    """The authorization-code grant, `/authorize` and `/userinfo` on the issuer's app."""
    codes = Codes()
    key = keys.keys[0]

    class PeopleCodes(AuthorizationCodeGrant):
        def save_authorization_code(self, code: str, req: Any) -> None:
            data = req.payload.data
            codes.put(code, Code(
                req.client.get_client_id(), req.payload.redirect_uri, req.scope,
                req.user.username, data.get("nonce", ""), data["code_challenge"],
                data["code_challenge_method"], int(time.time()), time.time() + CODE_LIFETIME))

        def query_authorization_code(self, code: str, client: Any) -> Code | None:
            return codes.take(code, client.get_client_id())

        def delete_authorization_code(self, authorization_code: Code) -> None:
            pass  # taken when it was queried

        def authenticate_user(self, authorization_code: Code) -> User | None:
            return users().get(authorization_code.username)

    class IdTokens(OpenIDCode):
        def exists_nonce(self, nonce: str, req: Any) -> bool:
            return codes.nonce_used(req.payload.client_id, nonce)

        def resolve_client_private_key(self, client: Any) -> Any:
            return key

        def get_client_algorithm(self, client: Any) -> str:
            return "RS256"

        def get_encode_header(self, client: Any) -> dict[str, str]:
            return {"alg": "RS256", "kid": str(key.kid)}

        def get_client_claims(self, client: Any) -> dict[str, Any]:
            return {"iss": issuer, "aud": [client.get_client_id()],
                    "exp": int(time.time()) + ID_TOKEN_LIFETIME}

        def generate_user_info(self, user: User, scope: str) -> UserInfo:
            return user.claims(scope)

    server.register_grant(PeopleCodes, [IdTokens(require_nonce=True), S256Challenge()])
    protector = ResourceProtector()
    protector.register_token_validator(_AccessTokens(issuer, keys, clients, users))

    class Claims(UserInfoEndpoint):
        def get_issuer(self) -> str:
            return issuer

        def generate_user_info(self, user: User, scope: str) -> UserInfo:
            return user.claims(scope)

    server.register_endpoint(Claims(resource_protector=protector))
    app.add_url_rule("/authorize", "authorize", lambda: _authorize(server, users),
                     methods=["GET", "POST"])
    app.add_url_rule("/userinfo", "userinfo",
                     lambda: server.create_endpoint_response("userinfo"), methods=["GET", "POST"])


def _authorize(server: AuthorizationServer, users: Callable[[], dict[str, User]]) -> Any:
    """The login form for a valid authorization request; its answer redirects with a code."""
    try:
        grant = server.get_consent_grant(end_user=None)
    except OAuth2Error as error:  # redirected back when the redirect URI was checked, else 400
        return server.handle_error_response(None, error)
    client = grant.request.client.get_client_id()
    if request.method == "GET":
        return _form(client)
    if not secrets.compare_digest(request.form.get("csrf", ""), str(session.get("csrf", "-"))):
        return _form(client, "The form is stale: sign in again.", 400)
    user = users().get(request.form.get("username", ""))
    if not verify_password(user.password_hash if user else None,
                           request.form.get("password", "")) or user is None:
        return _form(client, "Unknown username or wrong password.", 401)
    session.pop("csrf", None)
    return server.create_authorization_response(grant_user=user, grant=grant)


def _form(client: str, error: str = "", status: int = 200) -> Any:
    token = session.setdefault("csrf", secrets.token_urlsafe(32))
    page = render_template_string(LOGIN_PAGE, client=client, error=error, csrf=token)
    return page, status, {"Cache-Control": "no-store", "X-Frame-Options": "DENY"}


@dataclass
class AccessToken:
    """A valid access token of a user, as authlib's resource protector reads it."""

    scope: str
    client: Any
    user: User

    def get_scope(self) -> str:
        return self.scope

    def get_client(self) -> Any:
        return self.client

    def get_user(self) -> User:
        return self.user

    def is_expired(self) -> bool:
        return False  # `exp` was checked when it was decoded

    def is_revoked(self) -> bool:
        return False


class _AccessTokens(BearerTokenValidator):
    """The issuer's own JWT access tokens, signed by its key, unexpired, naming a user and a
    client it knows (client-credentials tokens name no user, and get no user's claims)."""

    def __init__(self, issuer: str, keys: KeySet, clients: Callable[[], dict[str, Any]],
                 users: Callable[[], dict[str, User]]) -> None:
        super().__init__()
        self.issuer, self.keys, self.clients, self.users = issuer, keys, clients, users

    def authenticate_token(self, token_string: str) -> AccessToken | None:
        try:
            decoded = jwt.decode(token_string, self.keys, algorithms=["RS256"])
            jwt.JWTClaimsRegistry(iss={"essential": True, "value": self.issuer},
                                  exp={"essential": True}, sub={"essential": True}
                                  ).validate(decoded.claims)
        except (JoseError, ValueError):
            return None
        claims = decoded.claims
        user = next((u for u in self.users().values() if u.sub == claims["sub"]), None)
        client = self.clients().get(str(claims.get("client_id")))
        if user is None or client is None:
            return None
        return AccessToken(str(claims.get("scope", "")), client, user)
