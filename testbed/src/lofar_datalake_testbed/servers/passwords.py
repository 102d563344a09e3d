"""Password hashes for the people who log in at the testbed's issuer: PBKDF2-HMAC-SHA256 with a
random salt, as `pbkdf2_sha256$<iterations>$<salt>$<hash>` (base64), the format Django and
passlib use.

The standard library only, because both sides read it: the testbed writes the users file with it
and the issuer (in the server environment, which has no argon2) checks logins with it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SCHEME = "pbkdf2_sha256"
ITERATIONS = 600_000  # OWASP's figure for PBKDF2-HMAC-SHA256
_DUMMY = f"{SCHEME}${ITERATIONS}${'A' * 22}${'A' * 43}"


def hash_password(password: str, iterations: int = ITERATIONS) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"{SCHEME}${iterations}${_b64(salt)}${_b64(digest)}"


def verify_password(stored: str | None, password: str) -> bool:
    """Whether `password` matches `stored`; with no stored hash (an unknown user) a hash is
    computed all the same, so that the answer's timing does not tell which users exist."""
    try:
        scheme, iterations, salt, expected = (stored or _DUMMY).split("$")
        if scheme != SCHEME:
            return False
        digest = hashlib.pbkdf2_hmac("sha256", password.encode(), _unb64(salt), int(iterations))
        return hmac.compare_digest(digest, _unb64(expected)) and bool(stored)
    except ValueError:
        return False


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))
