"""What this process presents to storage endpoints and FTS: its X.509 client certificate, or
its WLCG bearer token when it authenticates with tokens.

Every HTTP request the plugin makes to storage (reads, uploads, deletions) takes its credential
from here, so switching the DataLake to tokens changes one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .rucio_connection import client_x509_proxy


@dataclass(frozen=True)
class HttpCredential:
    """`cert`: a PEM holding certificate and key (requests' `cert=`); `headers`: e.g. the
    `Authorization: Bearer` header. Neither is ever logged."""

    cert: str | None = None
    headers: dict[str, str] = field(default_factory=dict, repr=False)


def for_storage() -> HttpCredential:
    """The credential for a storage request made now (a token is re-read each time: an agent
    may have renewed it)."""
    return HttpCredential(cert=client_x509_proxy())
