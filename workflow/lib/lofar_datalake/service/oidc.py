"""Researchers log in through an OpenID Connect issuer (INDIGO IAM in ESCAPE's DataLake, the
testbed's issuer here), beside the service's own password accounts.

`serve --oidc-issuer URL --oidc-client-id ID --oidc-client-secret-file PATH` makes the service a
confidential client of the issuer; the secret comes from a private file, never a command line.
The login page then offers "Log in with <issuer>". authlib's Starlette client does the protocol:
it sends the browser to the issuer with an authorization-code request (PKCE S256, a `state` and
a `nonce` kept in the signed session cookie), and on the way back (CALLBACK) checks the state,
exchanges the code once, and verifies the `id_token`: signed RS256 by a key of the issuer's
JWKS, `iss` the issuer, `aud` this client, unexpired, and the `nonce` sent. The issuer's TLS
certificate is checked against `--ca-bundle` (discovery, keys and token endpoint alike).

The token's `sub` maps the person to the researchers file's entry naming it (`oidc_subject`):
their Rucio account, scopes and limits. A person no entry names is told so and gets no session.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from authlib.integrations.base_client import OAuthError
from authlib.integrations.starlette_client import OAuth
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from joserfc.errors import JoseError

from .model import Researcher

LOGIN = "/login/oidc"
CALLBACK = "/login/oidc/callback"  # the redirect URI to register: the service's URL + this
LEEWAY_S = 60  # clock skew tolerated on the id_token's exp and iat


@dataclass(frozen=True)
class Provider:
    """The issuer and the service's registration there."""

    issuer: str  # exactly as the tokens' `iss` spells it
    client_id: str
    client_secret: str = field(repr=False)
    ca_bundle: Path = Path()

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_bundle))

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer.rstrip('/')}/.well-known/openid-configuration"


def configure(issuer: str, client_id: str, secret_file: Path | None,
              ca_bundle: Path) -> Provider:
    """The provider from `serve`'s options, checked against the issuer's discovery document
    now, so that a wrong URL, CA or issuer name stops the start, not a researcher's login."""
    if not issuer:
        raise ValueError("--oidc-issuer: the issuer's URL is needed with --oidc-client-id and "
                         "--oidc-client-secret-file")
    if not issuer.startswith("https://"):
        raise ValueError(f"--oidc-issuer {issuer}: must be an https:// URL")
    if not client_id:
        raise ValueError("--oidc-client-id: the service's client id at the issuer is needed")
    if secret_file is None:
        raise ValueError("--oidc-client-secret-file: the file holding the service's client "
                         "secret at the issuer is needed")
    provider = Provider(issuer, client_id, read_secret(secret_file), ca_bundle)
    discover(provider)
    return provider


def read_secret(path: Path) -> str:
    try:
        mode = path.stat().st_mode
        secret = path.read_text().strip()
    except OSError as exc:
        raise ValueError(f"--oidc-client-secret-file: cannot read {path}: "
                         f"{exc.strerror}") from None
    if mode & 0o077:
        raise ValueError(f"--oidc-client-secret-file: {path} is readable by others (mode "
                         f"{oct(mode & 0o777)}); make it 0600")
    if not secret:
        raise ValueError(f"--oidc-client-secret-file: {path} is empty")
    return secret


def discover(provider: Provider) -> dict[str, Any]:
    """The issuer's discovery document, if it names this issuer and offers what the login
    needs (the code flow, PKCE with S256)."""
    url = provider.discovery_url
    try:
        answer = httpx2.get(url, verify=provider.tls(), timeout=30)
        answer.raise_for_status()
        metadata = dict(answer.json())
    except (httpx2.HTTPError, ValueError) as exc:
        raise ValueError(f"--oidc-issuer: cannot read {url}: {exc}") from None
    if metadata.get("issuer") != provider.issuer:
        raise ValueError(f"--oidc-issuer {provider.issuer}: {url} names the issuer "
                         f"{metadata.get('issuer')!r}; give exactly that")
    for key, wanted in (("response_types_supported", "code"),
                        ("code_challenge_methods_supported", "S256")):
        if wanted not in metadata.get(key, []):
            raise ValueError(f"--oidc-issuer {provider.issuer}: its {key} lacks {wanted!r}")
    return metadata


def claims_options(provider: Provider) -> dict[str, Any]:
    """What the id_token must say beyond its signature and nonce: authlib checks `iss` against
    discovery and `aud` only through `azp` unless told, so both are named here."""
    return {"iss": {"essential": True, "values": [provider.issuer]},
            "aud": {"essential": True, "values": [provider.client_id]},
            "sub": {"essential": True}, "exp": {"essential": True},
            "iat": {"essential": True}}


def client(provider: Provider) -> Any:
    """authlib's client of the issuer: the code flow with PKCE S256, the secret sent with
    HTTP Basic, the issuer's TLS checked against the CA bundle."""
    return OAuth().register(
        "issuer", client_id=provider.client_id, client_secret=provider.client_secret,
        server_metadata_url=provider.discovery_url,
        client_kwargs={"scope": "openid", "code_challenge_method": "S256",
                       "token_endpoint_auth_method": "client_secret_basic",
                       "verify": provider.tls(), "timeout": 30})


def add_routes(app: FastAPI, provider: Provider, researchers: Mapping[str, Researcher],
               render: Callable[..., HTMLResponse]) -> None:
    """LOGIN (to the issuer) and CALLBACK (back from it) on the service's app."""
    issuer = client(provider)
    by_subject = {r.oidc_subject: r for r in researchers.values() if r.oidc_subject}

    def refused(request: Request, message: str, status: int, hint: str = "") -> HTMLResponse:
        """No new login; a session already there stays (a forged link cannot log one out)."""
        return render(request, "oidc_refused.html", status, message=message, hint=hint,
                      issuer=provider.issuer)

    @app.get(LOGIN)
    async def oidc_login(request: Request) -> Response:
        try:
            return await issuer.authorize_redirect(request, str(request.url_for("oidc_back")))
        except httpx2.HTTPError as exc:
            return refused(request, f"the issuer {provider.issuer} cannot be reached: {exc}",
                           502)

    @app.get(CALLBACK, name="oidc_back")
    async def oidc_back(request: Request) -> Response:
        try:
            token = await issuer.authorize_access_token(
                request, claims_options=claims_options(provider), leeway=LEEWAY_S)
        except OAuthError as exc:
            return refused(request, f"the login through {provider.issuer} was refused: "
                                    f"{exc.error}: {exc.description or ''}".rstrip(": "), 400,
                           "Log in again from the start.")
        except JoseError as exc:
            return refused(request, f"the id_token from {provider.issuer} is not valid: "
                                    f"{exc.error}: {exc.description or ''}".rstrip(": "), 400)
        except httpx2.HTTPError as exc:
            return refused(request, f"the issuer {provider.issuer} cannot be reached: {exc}",
                           502)
        claims = token.get("userinfo")  # set only once the id_token was verified
        if not claims:
            return refused(request, f"{provider.issuer} answered without an id_token", 400)
        subject = str(claims["sub"])
        researcher = by_subject.get(subject)
        if researcher is None:  # someone else signed in at the issuer: no session of anyone's
            request.session.clear()
            return refused(request, f"You signed in at {provider.issuer} as {subject}, which "
                                    "no researcher entry names.", 403,
                           "Ask the service's operator to add it to your entry in the "
                           f"researchers file (oidc_subject: {subject}).")
        request.session.clear()
        request.session["user"] = researcher.name
        return RedirectResponse("/", 303)
