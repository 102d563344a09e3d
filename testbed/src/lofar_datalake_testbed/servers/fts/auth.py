"""Who is calling, and the X.509 delegation handshake of the `fts3` client.

Over plain http nobody can present a certificate, so callers are either token holders (an
`Authorization: Bearer` header, read but not validated: the testbed trusts loopback) or
anonymous, which is how Rucio's transfertool talks to an http endpoint. Delegated proxies are
accepted and only their expiry is kept: the copies here never act with the user's credential.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from .jobspec import BASE_ID, timestamp

ANONYMOUS_DN = "/CN=anonymous"


@dataclass(frozen=True)
class Identity:
    user_dn: str
    method: str  # oauth2 | certificate | unauthenticated
    vo: str

    @property
    def delegation_id(self) -> str:
        # FTS's generate_delegation_id: the first 16 hex digits of sha1(dn + fqans).
        return hashlib.sha1(self.user_dn.encode(), usedforsecurity=False).hexdigest()[:16]


def _token_subject(token: str) -> str | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return None
    subject = claims.get("sub") if isinstance(claims, dict) else None
    return str(subject) if subject else None


def identify(environ: dict[str, Any], vo: str) -> Identity:
    header = environ.get("HTTP_AUTHORIZATION", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() == "bearer" and credential.strip():
        subject = _token_subject(credential.strip()) or "anonymous"
        return Identity(f"token:{subject}", "oauth2", vo)
    client_dn = environ.get("SSL_CLIENT_S_DN")  # only behind a TLS server that verified a cert
    if client_dn:
        return Identity(client_dn, "certificate", vo)
    return Identity(ANONYMOUS_DN, "unauthenticated", vo)


def whoami(identity: Identity) -> dict[str, Any]:
    return {
        "dn": [identity.user_dn],
        "user_dn": identity.user_dn,
        "vos": [identity.vo],
        "vos_id": [str(uuid.uuid5(BASE_ID, identity.vo))],
        "roles": [],
        "voms_cred": [],
        "delegation_id": identity.delegation_id,
        "base_id": str(BASE_ID),
        "method": identity.method,
        "is_root": False,
        "level": {"transfer": "vo", "deleg": "all", "config": "none", "datamanagement": "vo"},
    }


def delegation_request() -> str:
    """A fresh certificate request for the client to sign into a proxy (PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "proxy")])
    request = (
        x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM).decode()


def proxy_expiry(pem: bytes) -> str:
    """When the delegated chain stops being valid; ValueError if it is not a PEM chain."""
    certificates = x509.load_pem_x509_certificates(pem)
    return timestamp(min(c.not_valid_after_utc for c in certificates).replace(tzinfo=None))


def delegation_usable(termination_time: str | None, now: dt.datetime) -> str | None:
    """None if a delegation can be used to submit, else the 419 message FTS gives."""
    if termination_time is None:
        return "No delegation found"
    remaining = dt.datetime.strptime(termination_time, "%Y-%m-%dT%H:%M:%S") - now
    if remaining <= dt.timedelta(0):
        return "The delegated credentials expired"
    if remaining < dt.timedelta(hours=1):
        return "The delegated credentials has less than one hour left"
    return None
