"""Access tokens for researchers' runs, from the DataLake's OpenID issuer (INDIGO IAM in ESCAPE's
DataLake; the testbed's issuer here).

A researcher may have a token client instead of a Rucio password: an OAuth client the
DataLake's IAM registered for them (the researchers file's `token_client`, its secret in a 0600
file), allowed the WLCG storage scopes they may have and the audiences of Rucio, the FTS service
and the storage. Rucio maps the token's identity (`SUB=<client id>, ISS=<issuer>`) to their
account. For each run the service asks for a token with the client-credentials grant (RFC 6749
§4.4) and exactly what a run needs:

- `openid profile`, which Rucio requires;
- `storage.read:<path>` for every scope they read, `storage.create:<path>` and
  `storage.modify:<path>` for their own (the first), where `<path>` is where the RSEs keep a
  scope's files below the storage's root: Rucio's `hash` lfn2pfn (`rucio.rse.translation`)
  puts `user.alice:f` at `/user/alice/<md5[0:2]>/<md5[2:4]>/f` (the dots of `user.` and
  `group.` scopes become slashes) and `lofar:f` at `/lofar/...`;
- the audiences `serve --token-audience` names.

An issuer silently grants less than was asked for when the client may not have it; the service
checks what came back and fails the submission naming what is missing, rather than let the run
fail later on a refused copy. The token reaches the run in a private file (`RunToken`, what
`BEARER_TOKEN_FILE` names), renewed at half its lifetime while the run lasts; the client's
secret stays with the service and appears in no message.
"""

from __future__ import annotations

import logging
import os
import pwd
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from datalake_core.bearer_token import claims_of

from .model import Researcher

RUCIO_SCOPES = ("openid", "profile")  # Rucio's `[oidc] expected_scope`
DEFAULT_AUDIENCES = ("rucio", "https://wlcg.cern.ch/jwt/v1/any")  # Rucio's, and WLCG's "any"
TIMEOUT_S = 30.0
RETRY_S = 30.0  # after a failed renewal (the token still holds for half its lifetime)
DEFAULT_LIFETIME_S = 3600.0  # when the issuer says nothing of it

log = logging.getLogger("lofar_datalake.service")


class TokenError(Exception):
    """No token: the message names the issuer, the client and what the issuer answered, never
    the secret."""


@dataclass(frozen=True)
class Issuer:
    url: str  # its `iss`, exactly
    token_endpoint: str
    ca_bundle: Path
    audiences: tuple[str, ...]


@dataclass(frozen=True)
class AccessToken:
    value: str = field(repr=False)
    lifetime_s: float


def discover(url: str, ca_bundle: Path, audiences: Sequence[str]) -> Issuer:
    """The issuer at `url`, its token endpoint read from its discovery document (OpenID
    Connect Discovery §4, TLS verified against `ca_bundle`); ValueError saying what is wrong."""
    url = url.rstrip("/")
    if not url.startswith("https://"):
        raise ValueError(f"--oidc-issuer {url}: must be an https:// URL")
    where = f"{url}/.well-known/openid-configuration"
    try:
        answer = requests.get(where, verify=str(ca_bundle), timeout=TIMEOUT_S)
        answer.raise_for_status()
        document = answer.json()
    except (requests.RequestException, ValueError) as exc:
        raise ValueError(f"--oidc-issuer: cannot read the discovery document {where}: "
                         f"{exc}") from None
    named = document.get("issuer") if isinstance(document, dict) else None
    if named != url:  # Discovery §4.3: exactly the URL asked, or the document is not its own
        raise ValueError(f"--oidc-issuer: {where} names another issuer ({named!r})")
    endpoint = document.get("token_endpoint")
    if not isinstance(endpoint, str) or not endpoint.startswith("https://"):
        raise ValueError(f"--oidc-issuer: {where} names no https token_endpoint")
    return Issuer(url, endpoint, ca_bundle, tuple(audiences))


def storage_path(scope: str) -> str:
    """Where an RSE keeps `scope`'s files below the storage's root (Rucio's `hash` lfn2pfn)."""
    if scope.startswith(("user", "group")):
        scope = scope.replace(".", "/")
    return f"/{scope}"


def run_scopes(researcher: Researcher) -> tuple[str, ...]:
    """What a run asks for: Rucio's scopes, reading every scope they read, writing their own."""
    own = storage_path(researcher.scopes[0])
    reads = dict.fromkeys(f"storage.read:{storage_path(s)}" for s in researcher.scopes)
    return (*RUCIO_SCOPES, *reads, f"storage.create:{own}", f"storage.modify:{own}")


def fetch(issuer: Issuer, researcher: Researcher, scopes: Sequence[str]) -> AccessToken:
    """A token for the researcher's client with `scopes` and the issuer's audiences, all of
    them granted; TokenError saying why not."""
    client = researcher.token_client
    if client is None:
        raise TokenError(f"researcher {researcher.name} has no token client")
    secret = Path(client.secret_file).read_text().strip()
    try:
        answer = requests.post(
            issuer.token_endpoint, auth=(client.id, secret), verify=str(issuer.ca_bundle),
            data={"grant_type": "client_credentials", "scope": " ".join(scopes),
                  "audience": " ".join(issuer.audiences)}, timeout=TIMEOUT_S)
    except requests.RequestException as exc:
        raise TokenError(_hidden(f"the token issuer {issuer.url} gave no token for client "
                                 f"{client.id}: {exc}", secret)) from None
    try:
        body = answer.json()
    except ValueError:
        body = None  # an error page, say
    if answer.status_code != 200 or not isinstance(body, dict) or not body.get("access_token"):
        raise TokenError(_hidden(f"the token issuer {issuer.url} refused a token for client "
                                 f"{client.id}: HTTP {answer.status_code} "
                                 f"{_issuer_error(body, answer.text)}", secret))
    value = str(body["access_token"])
    _check_granted(issuer, client.id, value, body, scopes)
    return AccessToken(value, _lifetime(value, body))


def _issuer_error(body: Any, text: str) -> str:
    """The OAuth error (RFC 6749 §5.2) the issuer answered, or the start of what it said."""
    if isinstance(body, dict) and body.get("error"):
        described = body.get("error_description")
        return f"{body['error']}" + (f": {described}" if described else "")
    return " ".join(text.split())[:200] or "(no answer)"


def _check_granted(issuer: Issuer, client: str, value: str, body: dict[str, Any],
                   scopes: Sequence[str]) -> None:
    """Every scope and audience asked for is in the token (an opaque token, which says
    nothing of itself, is taken as asked)."""
    claims = claims_of(value)
    said = body.get("scope", claims.get("scope"))
    granted = set(str(said).split()) if said is not None else set(scopes)
    audience = claims.get("aud", list(issuer.audiences))
    audiences = {audience} if isinstance(audience, str) else set(map(str, audience)) if (
        isinstance(audience, list)) else set()
    missing = [s for s in scopes if s not in granted]
    missing += [f"the audience {a}" for a in issuer.audiences if a not in audiences]
    if missing:
        raise TokenError(f"the token issuer {issuer.url} did not grant client {client} "
                         f"{', '.join(missing)}; the DataLake's IAM must register the client "
                         "with what the researcher's runs do (reading their scopes, writing "
                         "below their own)")


def _lifetime(value: str, body: dict[str, Any]) -> float:
    given = body.get("expires_in")
    if isinstance(given, int | float) and given > 0:
        return float(given)
    exp = claims_of(value).get("exp")
    return float(exp) - time.time() if isinstance(exp, int | float) else DEFAULT_LIFETIME_S


def _hidden(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


class RunToken:
    """A run's access token in a private file (0600, owned by the run's user), renewed by a
    thread of its own at half the token's lifetime while the run lasts (the plugin reads the
    file again before each request), and removed when the run ends. A failed renewal is said
    in the run's log and tried again; the token in the file still holds meanwhile."""

    def __init__(self, issuer: Issuer, researcher: Researcher, path: Path, owner: str | None,
                 run_log: Path | None = None) -> None:
        self.issuer, self.researcher, self.path = issuer, researcher, path
        self.owner, self.run_log = owner, run_log
        self.values: list[str] = []  # every token written, for masking output
        self._next = 0.0  # seconds from the last write to the next renewal
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, daemon=True,
                                        name=f"token-{researcher.name}")

    def __enter__(self) -> RunToken:
        self._next = self.write()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(TIMEOUT_S + 5)
        self.path.unlink(missing_ok=True)

    def write(self) -> float:
        """Fetch a token into the file; the seconds until it is due for renewal."""
        token = fetch(self.issuer, self.researcher, run_scopes(self.researcher))
        self.values.append(token.value)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(token.value)
            if self.owner is not None:
                entry = pwd.getpwnam(self.owner)
                os.chown(tmp, entry.pw_uid, entry.pw_gid)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return token.lifetime_s / 2

    def _renew(self) -> None:
        while not self._stop.wait(self._next):
            try:
                self._next = self.write()
            except (TokenError, OSError) as exc:
                self._next = RETRY_S
                self._say(f"lofar-datalake serve: the run's access token could not be renewed "
                          f"({exc}); trying again in {RETRY_S:.0f} s")

    def _say(self, line: str) -> None:
        log.warning("%s", line)
        if self.run_log is not None:
            with open(self.run_log, "a") as handle:
                handle.write(line + "\n")
