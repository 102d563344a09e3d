"""Who is calling, and the X.509 delegation handshake of the `fts3` client.

Every request must come with a credential: a client certificate that the TLS layer verified
against the testbed CA (its subject becomes the caller's DN), or a WLCG bearer token that
verifies against the configured issuer (servers/bearer.py; its `sub` becomes the DN, method
`oauth2`). A token is judged alone, whatever certificate comes with it; without an issuer every
token is refused, since an unchecked one would let anyone claim any identity. Delegated proxies
are accepted and only their expiry is kept: certificate users' copies run with the service's own
certificate, token users' with their token (jobs_api.py, worker.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from .. import bearer
from .jobspec import BASE_ID, timestamp

NO_CERTIFICATE = "Authentication required: present a client certificate issued by the testbed CA"
NO_TOKENS = (
    "Bearer tokens are not accepted (no token issuer is configured); "
    "present a client certificate issued by the testbed CA"
)


class Unauthenticated(Exception):
    """The request carries no credential the service accepts; the message says what to send."""


class IssuerUnavailable(Exception):
    """A token came, but the issuer's keys to check it could not be fetched."""


@dataclass(frozen=True)
class Identity:
    user_dn: str
    method: str  # certificate | oauth2
    vo: str
    token: str | None = field(default=None, repr=False, compare=False)  # oauth2: the caller's

    @property
    def delegation_id(self) -> str:
        # FTS's generate_delegation_id: the first 16 hex digits of sha1(dn + fqans).
        return hashlib.sha1(self.user_dn.encode(), usedforsecurity=False).hexdigest()[:16]


def slash_dn(pem: str) -> str:
    """The certificate's subject the way FTS prints DNs: "/O=.../CN=..."."""
    subject = x509.load_pem_x509_certificate(pem.encode()).subject
    return "".join(f"/{a.rfc4514_attribute_name}={a.value!s}" for a in subject)


def identify(environ: dict[str, Any], vo: str, verifier: bearer.Verifier | None = None) -> Identity:
    """The caller named by its bearer token or else its verified client certificate;
    Unauthenticated without either."""
    token = bearer.bearer_token(environ)
    if token is not None:
        return _token_identity(token, vo, verifier)
    # Set by the TLS layer only for a chain it verified against the CA it was given.
    certificate = environ.get("SSL_CLIENT_CERT")
    if environ.get("SSL_CLIENT_VERIFY") != "SUCCESS" or not certificate:
        also = f" or a bearer token from {verifier.issuer}" if verifier else ""
        raise Unauthenticated(NO_CERTIFICATE + also)
    return Identity(slash_dn(certificate), "certificate", vo)


def _token_identity(token: str, vo: str, verifier: bearer.Verifier | None) -> Identity:
    if verifier is None:
        raise Unauthenticated(NO_TOKENS)
    try:
        claims = verifier.verify(token)
    except bearer.InvalidToken as exc:
        raise Unauthenticated(f"Invalid bearer token: {exc}") from None
    except bearer.IssuerUnavailable as exc:
        raise IssuerUnavailable(f"Bearer tokens cannot be checked now: {exc}") from None
    return Identity(str(claims["sub"]), "oauth2", vo, token)


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
