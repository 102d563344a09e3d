"""Tokens in the testbed: the issuer's clients, Rucio's trust in the issuer, the pipeline's
identity there, and the pipeline's current access token.

A production DataLake (ESCAPE's, with INDIGO IAM) gives a user a token through an agent
(oidc-agent, htgettoken) that keeps a file fresh; clients find it by WLCG bearer-token discovery
(`BEARER_TOKEN_FILE`). Here `lofar-datalake testbed token` plays that agent: it asks the
testbed's issuer (client-credentials grant, the pipeline's client secret) for a token and
writes it, 0600, where `BEARER_TOKEN_FILE` points in token mode.

The auth mode (`testbed up --auth userpass|token`, kept in the state file) is the one setting
that switches the testbed's clients: which Rucio client configuration `testbed env`, the demo
and the site profiles use, and whether a bearer token is kept. The services accept both at all
times, as a DataLake in transition does.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from .layout import LOOPBACK, SITES, Layout
from .rucio_config import ISSUER_ID, RUCIO_AUDIENCE, Credentials, credentials

AUTH_MODES = ("userpass", "token")
PIPELINE_CLIENT = "lofar-pipeline"  # the token's `sub`, mapped to the `lofar` account
RUCIO_CLIENT = "rucio-server"  # Rucio's own registration at the issuer (pyoidc needs one)
ANY_AUDIENCE = "https://wlcg.cern.ch/jwt/v1/any"
# Rucio requires "openid profile" (its default `[oidc] expected_scope`); the storage.* scopes
# are the WLCG capabilities storage and FTS check, here over every RSE's whole namespace.
PIPELINE_SCOPES = ("openid", "profile", "storage.read:/", "storage.create:/", "storage.modify:/")
TOKEN_LIFETIME = 3600  # seconds; IAM's default for access tokens


def issuer_url(ports: dict[str, int]) -> str:
    """The `iss` of every token, exactly (no trailing slash)."""
    return f"https://{LOOPBACK}:{ports['issuer']}"


def identity(ports: dict[str, int]) -> str:
    """The pipeline's OIDC identity as Rucio spells it."""
    return f"SUB={PIPELINE_CLIENT}, ISS={issuer_url(ports)}"


def clients_file(layout: Layout) -> Path:
    return layout.issuer_dir / "clients.json"


def users_file(layout: Layout) -> Path:
    """The people who log in at the issuer (issuer_accounts.py adds them)."""
    return layout.issuer_dir / "users.json"


def signing_key(layout: Layout) -> Path:
    return layout.issuer_dir / "signing-key.pem"


def idpsecrets_file(layout: Layout) -> Path:
    return layout.issuer_dir / "rucio-idpsecrets.json"  # named in the server's [oidc] too


def service_audiences(ports: dict[str, int]) -> list[str]:
    """Each service's own audience: its base URL (the WLCG profile's recommendation)."""
    urls = [f"https://{LOOPBACK}:{ports['fts']}"]
    urls += [f"https://{LOOPBACK}:{ports[site.https_port]}" for site in SITES]
    return urls


def write_issuer_files(layout: Layout, ports: dict[str, int]) -> None:
    """The issuer's clients (secrets as sha256 only) and Rucio's idpsecrets, both 0600. The
    web services' clients registered since (issuer_accounts.py) are kept, as are the users."""
    creds = credentials(layout)
    with issuer_files_locked(layout):
        _write_issuer_files(layout, ports, creds)


@contextlib.contextmanager
def issuer_files_locked(layout: Layout) -> Iterator[None]:
    """One writer of the issuer's files at a time (the testbed's `up`, a test adding a user)."""
    fd = os.open(layout.issuer_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_issuer_files(layout: Layout, ports: dict[str, int], creds: Credentials) -> None:
    clients = registered_clients(layout) | {
        PIPELINE_CLIENT: {
            "secret_sha256": _sha256(creds.lofar_token_secret),
            "scopes": list(PIPELINE_SCOPES),
            "audiences": [RUCIO_AUDIENCE, ANY_AUDIENCE, *service_audiences(ports)],
            "lifetime": TOKEN_LIFETIME,
        },
        RUCIO_CLIENT: {
            "secret_sha256": _sha256(creds.rucio_token_secret),
            "scopes": ["openid", "profile"],
            "audiences": [RUCIO_AUDIENCE],
            "lifetime": TOKEN_LIFETIME,
        },
    }
    registration = {"client_id": RUCIO_CLIENT, "client_secret": creds.rucio_token_secret}
    idpsecrets = {
        ISSUER_ID: {
            **registration,
            "issuer": issuer_url(ports),
            "redirect_uris": [],
            "SCIM": registration,  # Rucio reads an admin registration too; the same client
        }
    }
    write_private(clients_file(layout), json.dumps(clients, indent=2))
    write_private(idpsecrets_file(layout), json.dumps(idpsecrets, indent=2))
    if not users_file(layout).exists():
        write_private(users_file(layout), "{}")


def registered_clients(layout: Layout) -> dict[str, dict[str, object]]:
    """The clients registered since: web services logging people in (with redirect URIs) and
    researchers' token clients (`register_token_client`); not the testbed's own."""
    path = clients_file(layout)
    found = json.loads(path.read_text()) if path.exists() else {}
    return {cid: entry for cid, entry in found.items()
            if cid not in (PIPELINE_CLIENT, RUCIO_CLIENT)}


def register_token_client(layout: Layout, client_id: str, secret: str, *, scopes: list[str],
                          audiences: list[str], lifetime: int = TOKEN_LIFETIME) -> None:
    """Register (or replace) a researcher's client at the running issuer, as the DataLake's IAM
    registers one for a user: the client-credentials grant, the WLCG storage scopes they may
    have (`storage.read:/user/alice`, ...) and the audiences of the services; the issuer reads
    its clients file again when it changes. Rucio maps `SUB=<client_id>, ISS=<issuer>` to an
    account only once an operator adds that identity."""
    if client_id in (PIPELINE_CLIENT, RUCIO_CLIENT):
        raise ValueError(f"client {client_id} is the testbed's own; choose another id")
    entry = {"secret_sha256": _sha256(secret), "scopes": scopes, "audiences": audiences,
             "lifetime": lifetime}
    with issuer_files_locked(layout):
        clients = json.loads(clients_file(layout).read_text())
        write_private(clients_file(layout), json.dumps(clients | {client_id: entry}, indent=2))


def fetch_token(layout: Layout, ca_bundle: Path, *, scopes: tuple[str, ...] = PIPELINE_SCOPES,
                audiences: tuple[str, ...] = (RUCIO_AUDIENCE, ANY_AUDIENCE)) -> tuple[str, int]:
    """A fresh access token for the pipeline and its lifetime in seconds."""
    import requests

    answer = requests.post(
        f"{issuer_url(layout.ports())}/token",
        data={"grant_type": "client_credentials", "scope": " ".join(scopes),
              "audience": " ".join(audiences)},
        auth=(PIPELINE_CLIENT, credentials(layout).lofar_token_secret),
        verify=str(ca_bundle), timeout=30)
    if answer.status_code != 200:
        raise RuntimeError(f"the testbed's token issuer refused a token for {PIPELINE_CLIENT}: "
                           f"HTTP {answer.status_code} {answer.text[:200]}")
    body = answer.json()
    return str(body["access_token"]), int(body.get("expires_in", TOKEN_LIFETIME))


def refresh_bearer_token(layout: Layout, ca_bundle: Path) -> tuple[Path, float]:
    """Write a fresh token where `BEARER_TOKEN_FILE` points; returns the file and expiry."""
    token, lifetime = fetch_token(layout, ca_bundle)
    write_private(layout.bearer_token, token)
    return layout.bearer_token, time.time() + lifetime


def auth_mode(layout: Layout) -> str:
    return str(layout.load_state().get("auth", "userpass"))


def set_auth_mode(layout: Layout, mode: str) -> None:
    if mode not in AUTH_MODES:
        raise ValueError(f"auth mode {mode!r}: expected one of {', '.join(AUTH_MODES)}")
    state = layout.load_state()
    state["auth"] = mode
    layout.save_state(state)


def client_config(layout: Layout) -> Path:
    """The Rucio client configuration the testbed's clients use in its auth mode."""
    return layout.token_client_config if auth_mode(layout) == "token" else layout.client_config


def client_env(layout: Layout) -> dict[str, str]:
    """Environment for a client of the testbed in its auth mode (paths only, no secret)."""
    env = {"RUCIO_CONFIG": str(client_config(layout))}
    if auth_mode(layout) == "token":
        env["BEARER_TOKEN_FILE"] = str(layout.bearer_token)
    return env


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def write_private(path: Path, text: str) -> None:
    """Atomically, 0600 from the first byte (a reader never sees half a token)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)
