"""People and web-service clients at the testbed's issuer, added to (and removed from) a running
testbed: what an IAM administrator, and a service's operator registering its client, do there.

The issuer reads its users and clients files again when they change, so an addition counts from
the issuer's next request on. Passwords are kept as PBKDF2 hashes and client secrets as sha256,
never in clear; both files stay 0600. The testbed ships no user and no web client: whoever needs
one (a test, a person trying `lofar-datalake serve`) adds it with a secret of their own.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .layout import Layout
from .servers.passwords import hash_password
from .tokens import (
    PIPELINE_CLIENT,
    RUCIO_CLIENT,
    TOKEN_LIFETIME,
    clients_file,
    issuer_files_locked,
    users_file,
    write_private,
)

WEB_SCOPES = ("openid", "profile", "email")


def add_user(layout: Layout, username: str, password: str, *, email: str = "",
             name: str = "") -> str:
    """A person who may log in at the issuer; returns their `sub` (new, opaque, stable)."""
    sub = str(uuid.uuid4())
    entry = {"sub": sub, "password_hash": hash_password(password), "email": email,
             "name": name or username}
    _update(layout, users_file(layout), lambda users: users | {username: entry})
    return sub


def remove_user(layout: Layout, username: str) -> None:
    _update(layout, users_file(layout),
            lambda users: {k: v for k, v in users.items() if k != username})


def add_client(layout: Layout, client_id: str, secret: str, redirect_uris: Sequence[str], *,
               scopes: Sequence[str] = WEB_SCOPES, audiences: Sequence[str] = (),
               lifetime: int = TOKEN_LIFETIME) -> None:
    """A confidential web client logging people in: the authorization-code grant, to exactly
    these redirect URIs; its access tokens are for `audiences` (default: its client id)."""
    if not redirect_uris or not all(u.startswith("https://") for u in redirect_uris):
        raise ValueError(f"client {client_id}: redirect URIs must be https:// URLs, got "
                         f"{list(redirect_uris)}")
    _not_the_testbeds(client_id)
    entry = {"secret_sha256": hashlib.sha256(secret.encode()).hexdigest(),
             "scopes": list(scopes), "audiences": list(audiences or (client_id,)),
             "lifetime": lifetime, "redirect_uris": list(redirect_uris)}
    _update(layout, clients_file(layout), lambda clients: clients | {client_id: entry})


def remove_client(layout: Layout, client_id: str) -> None:
    _not_the_testbeds(client_id)
    _update(layout, clients_file(layout),
            lambda clients: {k: v for k, v in clients.items() if k != client_id})


def _not_the_testbeds(client_id: str) -> None:
    if client_id in (PIPELINE_CLIENT, RUCIO_CLIENT):
        raise ValueError(f"client {client_id} is the testbed's own; choose another id")


def _update(layout: Layout, path: Path,
            change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    with issuer_files_locked(layout):
        current = json.loads(path.read_text()) if path.exists() else {}
        write_private(path, json.dumps(change(current), indent=2))
