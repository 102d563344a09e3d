"""What this process presents to storage endpoints and FTS: its X.509 client certificate, or
its WLCG bearer token when it authenticates with tokens.

Every HTTP request the plugin makes to storage (reads, uploads, deletions) takes its credential
from here, so switching the DataLake to tokens changes one place. Token mode is Rucio's: auth
type `oidc` (`--storage-datalake-auth-type`, else $RUCIO_AUTH_TYPE, else the Rucio
configuration); the token is discovered again for every request (`bearer_token.current`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from . import bearer_token
from .rucio_connection import client_x509_proxy, uses_tokens


@dataclass(frozen=True)
class HttpCredential:
    """`cert`: a PEM holding certificate and key (requests' `cert=`); `headers`: e.g. the
    `Authorization: Bearer` header. Neither is ever logged."""

    cert: str | None = None
    headers: dict[str, str] = field(default_factory=dict, repr=False)


def for_storage() -> HttpCredential:
    """The credential for a storage request made now (a token is re-read each time: an agent
    may have renewed it). Token mode without a valid token: RucioAuthError saying why."""
    if uses_tokens():
        return HttpCredential(headers=bearer_header())
    proxy = client_x509_proxy()
    # A proxy named but absent is not presented (requests would fail before connecting).
    return HttpCredential(cert=proxy if proxy and os.path.isfile(proxy) else None)


def bearer_header() -> dict[str, str]:
    return {"Authorization": f"Bearer {bearer_token.current().value}"}


def for_fts(explicit_token: str | None) -> str | Callable[[], str] | None:
    """The token FTS gets: one given explicitly (`--storage-datalake-fts-token`), else in token
    mode the discovered one, read again at each use; None: the X.509 proxy."""
    if explicit_token:
        return explicit_token
    if uses_tokens():
        return lambda: bearer_token.current().value
    return None
