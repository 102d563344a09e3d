"""What gfal2 needs from the host: Debian's python3-gfal2, and the CAs as a hashed directory.

gfal2 (through davix) trusts the CA certificates in the directory X509_CERT_DIR names, each
under its OpenSSL subject hash (`<hash>.0`), as grid hosts keep /etc/grid-security/certificates;
it takes no CA bundle file. The service makes that directory from its `--ca-bundle`.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

PEM = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n?", re.DOTALL)
INSTALL_HINT = "install Debian's gfal2 with scripts/install-system-deps.sh"


def subject_hash(pem: bytes) -> str:
    return (
        subprocess.run(
            ["openssl", "x509", "-hash", "-noout"], input=pem, capture_output=True, check=True
        )
        .stdout.decode()
        .strip()
    )


def ca_directory(bundle: Path, directory: Path) -> Path:
    """`directory` holding exactly the certificates of `bundle`, named by subject hash."""
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.[0-9]*"):
        old.unlink()
    for pem in PEM.findall(bundle.read_bytes()):
        name = subject_hash(pem)
        index = 0
        while (directory / f"{name}.{index}").exists():  # two CAs with the same subject
            index += 1
        (directory / f"{name}.{index}").write_bytes(pem)
    return directory


def gfal2_problem(python: str) -> str | None:
    """Why `python` cannot run the gfal2 copy helper, or None if it can."""
    probe = "import gfal2; gfal2.creat_context()"
    try:
        result = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=60)
    except OSError as exc:
        return f"{python}: {exc.strerror}; {INSTALL_HINT}"
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["failed"])[-1]
        return f"{python} cannot use gfal2 ({last}); {INSTALL_HINT}"
    return None
