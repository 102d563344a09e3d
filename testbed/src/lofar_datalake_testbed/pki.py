"""A private CA for the testbed: TLS for its servers (Rucio, WebDAV, FTS, the token issuer) and a
client PEM (X509_USER_PROXY): a plain client certificate, the credential the WebDAV storage
requires for writing (and for reading a private RSE) and the FTS service for any request.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=365)


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    proxy: Path


def _write_private(path: Path, data: bytes) -> None:
    """Write a file readable by its owner only, never briefly world-readable."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


def _new_key() -> rsa.RSAPrivateKey:
    # RSA, not EC: the fts3 client (M2Crypto) loads X509_USER_PROXY as an RSA key.
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "lofar-datalake testbed"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _issue(
    subject: str,
    key: rsa.RSAPrivateKey,
    issuer: x509.Name,
    issuer_key: rsa.RSAPrivateKey,
    *,
    ca: bool,
    usage: x509.ObjectIdentifier | None = None,
    hosts: tuple[str, ...] = (),
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if hosts:
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def ensure_pki(pki_dir: Path) -> Pki:
    """Create the CA, the loopback server certificate and the client PEM once; reuse them after."""
    pki = Pki(
        ca_cert=pki_dir / "ca.pem",
        ca_key=pki_dir / "ca.key",
        server_cert=pki_dir / "server.pem",
        server_key=pki_dir / "server.key",
        proxy=pki_dir / "proxy.pem",
    )
    if all(
        p.exists() for p in (pki.ca_cert, pki.ca_key, pki.server_cert, pki.server_key, pki.proxy)
    ):
        return pki
    pki_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(pki_dir, 0o700)

    ca_key = _new_key()
    ca_name = _name("lofar-datalake testbed CA")
    ca_cert = _issue("lofar-datalake testbed CA", ca_key, ca_name, ca_key, ca=True)

    server_key = _new_key()
    server_cert = _issue(
        "localhost",
        server_key,
        ca_name,
        ca_key,
        ca=False,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        hosts=("127.0.0.1", "localhost"),
    )
    client_key = _new_key()
    client_cert = _issue(
        "lofar", client_key, ca_name, ca_key, ca=False, usage=ExtendedKeyUsageOID.CLIENT_AUTH
    )

    pem = serialization.Encoding.PEM
    _write_private(pki.ca_key, _key_pem(ca_key))
    pki.ca_cert.write_bytes(ca_cert.public_bytes(pem))
    _write_private(pki.server_key, _key_pem(server_key))
    pki.server_cert.write_bytes(server_cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    _write_private(pki.proxy, client_cert.public_bytes(pem) + _key_pem(client_key))
    return pki
