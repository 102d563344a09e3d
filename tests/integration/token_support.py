"""A real token issuer for the tests (servers/issuer.py in the server environment, over TLS with
a test PKI's server certificate), its clients, and tokens it would never sign."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests
from fts_support import free_port, server_python, wait_for
from joserfc import jwt
from joserfc.jwk import RSAKey

ANY_AUDIENCE = "https://wlcg.cern.ch/jwt/v1/any"
ELSEWHERE = "https://storage.elsewhere.example"  # an audience no test service accepts
ALL_STORAGE = ["storage.read:/", "storage.create:/", "storage.modify:/"]

# client id -> (scopes it may have, audiences it may ask for, token lifetime in seconds)
CLIENTS: dict[str, tuple[list[str], list[str], int]] = {
    "writer": (ALL_STORAGE, [ANY_AUDIENCE, ELSEWHERE], 600),
    "reader": (["storage.read:/"], [ANY_AUDIENCE], 600),
    "brief": (ALL_STORAGE, [ANY_AUDIENCE], 2),
}


def secret_of(client: str) -> str:
    return f"secret-of-{client}"


def _part(token: str, index: int) -> dict[str, Any]:
    text = token.split(".")[index]
    return dict(json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))))


def claims_of(token: str) -> dict[str, Any]:
    """A token's claims, read without checking anything (to copy them into forgeries)."""
    return _part(token, 1)


def kid_of(token: str) -> str:
    return str(_part(token, 0)["kid"])


class Issuer:
    """`python -m lofar_datalake_testbed.servers.issuer` with the CLIENTS above."""

    def __init__(self, base: Path, pki) -> None:
        self.base, self.pki = base, pki
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> Issuer:
        clients = self.base / "clients.json"
        clients.write_text(
            json.dumps(
                {
                    cid: {
                        "secret_sha256": hashlib.sha256(secret_of(cid).encode()).hexdigest(),
                        "scopes": scopes,
                        "audiences": audiences,
                        "lifetime": lifetime,
                    }
                    for cid, (scopes, audiences, lifetime) in CLIENTS.items()
                }
            )
        )
        clients.chmod(0o600)
        args = ["--port", str(self.port), "--clients", str(clients)]
        args += ["--cert", str(self.pki.server_cert), "--key", str(self.pki.server_key)]
        args += ["--signing-key", str(self.base / "signing-key.pem")]
        log = open(self.base / "issuer.out", "ab")
        self.process = subprocess.Popen(
            [*server_python(), "-m", "lofar_datalake_testbed.servers.issuer", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

        def up() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError((self.base / "issuer.out").read_text())
            try:
                return requests.get(f"{self.url}/jwks", verify=str(self.pki.ca_cert), timeout=1).ok
            except requests.ConnectionError:
                return False

        wait_for(up, what=f"the token issuer at {self.url}")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def token(self, client: str, *, scope: str | None = None, audience: str | None = None) -> str:
        """An access token for `client` (client-credentials grant, client_secret_basic)."""
        form = {"grant_type": "client_credentials"}
        if scope:
            form["scope"] = scope
        if audience:
            form["audience"] = audience
        reply = requests.post(
            f"{self.url}/token",
            data=form,
            auth=(client, secret_of(client)),
            verify=str(self.pki.ca_cert),
            timeout=10,
        )
        assert reply.status_code == 200, reply.text
        return str(reply.json()["access_token"])


def signed_by_a_stranger(claims: dict[str, Any], *, kid: str | None = None) -> str:
    """The same claims signed RS256 with a fresh key (its own kid, or one it pretends to have)."""
    key = RSAKey.generate_key(2048, private=True)
    key.ensure_kid()
    return jwt.encode({"alg": "RS256", "typ": "at+jwt", "kid": kid or key.kid}, claims, key)


def unsigned(claims: dict[str, Any]) -> str:
    """`alg: none`: the claims with no signature at all."""

    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'at+jwt'})}.{part(claims)}."


def expired_token(issuer: Issuer) -> str:
    """A token of the 2-second client, once it has expired."""
    token = issuer.token("brief")
    wait_for(lambda: time.time() > claims_of(token)["exp"] + 1, timeout=10, what="expiry")
    return token


def token_options(issuer: Issuer, own_url: str) -> list[str]:
    """What the testbed gives a service (components.token_options), with no clock-skew leeway
    so that the 2-second tokens expire promptly."""
    return [
        "--token-issuer", issuer.url,
        "--token-audience", own_url,
        "--token-audience", ANY_AUDIENCE,
        "--ca-bundle", str(issuer.pki.ca_cert),
        "--token-leeway", "0",
    ]  # fmt: skip


@contextlib.contextmanager
def token_webdav(root: Path, pki, issuer: Issuer, *, anonymous_read: bool) -> Iterator[str]:
    """One WebDAV server on `root` accepting `pki`'s client certificate and `issuer`'s tokens."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    args = ["--root", str(root), "--port", str(port), "--client-ca", str(pki.ca_cert)]
    args += ["--cert", str(pki.server_cert), "--key", str(pki.server_key)]
    args += ["--anonymous-read", "yes" if anonymous_read else "no", *token_options(issuer, url)]
    log = open(root.parent / f"webdav-{port}.out", "ab")
    process = subprocess.Popen(
        [*server_python(), "-m", "lofar_datalake_testbed.servers.webdav", *args],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()

    def up() -> bool:
        try:
            return requests.get(f"{url}/", verify=str(pki.ca_cert), timeout=1).status_code < 500
        except requests.ConnectionError:
            return False

    try:
        wait_for(up, what=f"WebDAV at {url}")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
