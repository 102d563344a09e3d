"""Delegate the testbed's client credential to its FTS service, as an FTS deployment's
delegation cron job does for Rucio.

Rucio's FTS3Transfertool presents its certificate but never delegates, and FTS refuses
submissions (419) from a certificate holder without a delegated proxy. The `fts3` client
delegates on its own; Rucio's conveyor relies on this step.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

# A delegation with less time left than this is renewed by the next `testbed up`.
RENEW_BEFORE = dt.timedelta(days=30)
TIMEOUT = 10


def _load(proxy: Path) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    pem = proxy.read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{proxy}: not an RSA key")
    return x509.load_pem_x509_certificate(pem), key


def _sign(request_pem: bytes, cert: x509.Certificate, key: rsa.RSAPrivateKey) -> bytes:
    """The delegated chain: the service's request signed by the client's key, then its cert."""
    request = x509.load_pem_x509_csr(request_pem)
    serial = x509.random_serial_number()
    subject = x509.Name([*cert.subject, x509.NameAttribute(NameOID.COMMON_NAME, str(serial))])
    proxy = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(cert.subject)
        .public_key(request.public_key())
        .serial_number(serial)
        .not_valid_before(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
        .not_valid_after(cert.not_valid_after_utc)
        .sign(key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return proxy.public_bytes(pem) + cert.public_bytes(pem)


def _fresh(stored: dict[str, str] | None) -> bool:
    if not stored or not stored.get("termination_time"):
        return False
    until = dt.datetime.strptime(stored["termination_time"], "%Y-%m-%dT%H:%M:%S")
    return until - dt.datetime.now(dt.UTC).replace(tzinfo=None) > RENEW_BEFORE


def delegate(endpoint: str, proxy: Path, ca_cert: Path) -> None:
    """Ensure the FTS at `endpoint` holds a delegation of `proxy`'s certificate (idempotent)."""
    # Per request, not on a Session: a Session's `verify` loses to REQUESTS_CA_BUNDLE.
    cert, verify = str(proxy), str(ca_cert)

    def get(path: str) -> requests.Response:
        response = requests.get(f"{endpoint}{path}", cert=cert, verify=verify, timeout=TIMEOUT)
        response.raise_for_status()
        return response

    dlg = get("/whoami").json()["delegation_id"]
    if _fresh(get(f"/delegation/{dlg}").json()):
        return
    chain = _sign(get(f"/delegation/{dlg}/request").content, *_load(proxy))
    url = f"{endpoint}/delegation/{dlg}/credential"
    requests.put(url, data=chain, cert=cert, verify=verify, timeout=TIMEOUT).raise_for_status()
