"""The WLCG bearer token this process presents in token mode (Rucio `auth_type = oidc`): where it
is found, what it says about itself, and one clear error when there is none or it has expired.

Discovery follows the WLCG Bearer Token Discovery order, as Rucio's client does
(`rucio.common.utils.wlcg_token_discovery`): `$BEARER_TOKEN`, the file `$BEARER_TOKEN_FILE`,
`$XDG_RUNTIME_DIR/bt_u<uid>`, `/tmp/bt_u<uid>`; it also says where the token came from, for
messages. The token is read again on every `current()`: an agent (oidc-agent, htgettoken, the
testbed's `lofar-datalake testbed token`) renews the file while a run goes on.

The claims (`exp`, `sub`, `aud`, `iss`) are decoded without verifying the signature, as Rucio's
client does: verifying is the servers' job; here they only explain. A token's value never
appears in a message, a repr or a log line; `redact` removes JWT-shaped strings from text that
came from elsewhere.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import RucioAuthError

TOKEN_ENV = "BEARER_TOKEN"  # noqa: S105  (a variable name)
TOKEN_FILE_ENV = "BEARER_TOKEN_FILE"  # noqa: S105
RENEW = ("get a fresh one from your token agent (oidc-agent: `oidc-token <account>`, or "
         "`htgettoken`; in the testbed `lofar-datalake testbed token`), written where "
         f"${TOKEN_FILE_ENV} points")
_JWT = re.compile(r"eyJ[\w-]*\.[\w-]+\.[\w-]*")


@dataclass(frozen=True)
class BearerToken:
    """A discovered token: its value (never shown), where it was found, and its claims."""

    value: str = field(repr=False)
    source: str  # e.g. `$BEARER_TOKEN_FILE (/run/user/1000/token)`
    expires_at: float | None = None  # `exp`, POSIX seconds; None: not a JWT, or no `exp`
    subject: str | None = None
    audience: tuple[str, ...] = ()
    issuer: str | None = None

    @classmethod
    def parse(cls, value: str, source: str) -> BearerToken:
        claims = claims_of(value)
        exp = claims.get("exp")
        aud = claims.get("aud")
        audience = (aud,) if isinstance(aud, str) else (
            tuple(str(a) for a in aud) if isinstance(aud, list) else ())
        return cls(value, source,
                   float(exp) if isinstance(exp, int | float) else None,
                   str(claims["sub"]) if "sub" in claims else None, audience,
                   str(claims["iss"]) if "iss" in claims else None)

    def seconds_left(self, now: float | None = None) -> float | None:
        if self.expires_at is None:
            return None
        return self.expires_at - (time.time() if now is None else now)

    def expired(self, now: float | None = None) -> bool:
        left = self.seconds_left(now)
        return left is not None and left <= 0

    def describe(self) -> str:
        """Where it was found and who it says it is for whom, until when; never the value."""
        facts = [f"sub {self.subject or '?'}", f"aud {' '.join(self.audience) or '?'}"]
        if self.issuer:
            facts.append(f"iss {self.issuer}")
        if self.expires_at is not None:
            facts.append(f"expires {stamp(self.expires_at)}")
        return f"the bearer token from {self.source} ({', '.join(facts)})"


def claims_of(value: str) -> dict[str, Any]:
    """The JWT's payload, unverified; {} for a token that is not a JWT (an opaque token)."""
    parts = value.split(".")
    if len(parts) != 3:
        return {}
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (binascii.Error, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def places() -> Iterator[tuple[str, Path]]:
    """The files discovery reads, in order, each with the name messages give it."""
    uid = os.geteuid()
    named = os.environ.get(TOKEN_FILE_ENV)
    if named:
        yield f"${TOKEN_FILE_ENV} ({named})", Path(named)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        yield f"$XDG_RUNTIME_DIR/bt_u{uid} ({runtime}/bt_u{uid})", Path(runtime) / f"bt_u{uid}"
    yield f"/tmp/bt_u{uid}", Path(f"/tmp/bt_u{uid}")  # noqa: S108  (the WLCG location)


def discover() -> BearerToken | None:
    """The token Rucio's client would find now (the same order, the same first hit), or None.
    A file that exists but cannot be read ends the search, as in Rucio's client; here it is an
    error naming the file."""
    value = (os.environ.get(TOKEN_ENV) or "").strip()
    if value:
        return BearerToken.parse(value, f"${TOKEN_ENV}")
    for where, path in places():
        try:
            value = path.read_text().strip()
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not text"
            raise RucioAuthError(f"the bearer token file {where} cannot be read ({reason}); "
                                 "check its owner and mode (0600, yours)") from None
        if value:
            return BearerToken.parse(value, where)
    return None


def current(now: float | None = None) -> BearerToken:
    """The token to present now, read again (an agent may have renewed it); RucioAuthError,
    saying where discovery looked or when the token expired and how to renew it, when there is
    none or it has expired."""
    token = discover()
    if token is None:
        looked = [f"${TOKEN_ENV}"] + [where for where, _ in places()]
        raise RucioAuthError(f"token mode (auth type oidc) but no bearer token found: looked in "
                             f"{', '.join(looked)}; {RENEW}")
    if token.expired(now):
        ago = -(token.seconds_left(now) or 0.0)
        raise RucioAuthError(f"{token.describe()} expired {_duration(ago)} ago; {RENEW}")
    return token


def move_out_of_environment() -> None:
    """`$BEARER_TOKEN` holds the token itself, and batch systems copy the submitting process's
    environment into their job records: the token moves to a private file (0600 in a 0700
    directory, removed at exit) that `$BEARER_TOKEN_FILE` names. Discovery, here and in Rucio's
    own clients, finds the same token next."""
    value = os.environ.pop(TOKEN_ENV, "").strip()
    if not value:
        return
    directory = tempfile.mkdtemp(prefix="lofar-datalake-token-")
    atexit.register(shutil.rmtree, directory, True)
    path = Path(directory) / "bearer-token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    os.environ[TOKEN_FILE_ENV] = str(path)


def stamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def redact(text: str) -> str:
    """`text` with anything shaped like a JWT replaced by `***`."""
    return _JWT.sub("***", text)
