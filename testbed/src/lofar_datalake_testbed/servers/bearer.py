"""WLCG bearer tokens on the server side: who signed a token, and what its scopes let it do.

`Verifier` checks a token the way a WLCG resource server must (WLCG Common JWT Profiles 1.0):
the signature with the issuer's published keys (discovery, then JWKS, over verified TLS, cached
and fetched again once for an unknown `kid`), RS256 only, `iss` exactly, `exp`/`nbf`/`iat` with
a small leeway, an `aud` this service accepts (`https://wlcg.cern.ch/jwt/v1/any` only when it is
configured as one) and `wlcg.ver`. It answers the claims, or `InvalidToken` with a reason that
never repeats the token.

`missing_scope` is the storage side: which `storage.*:<path>` capability a WebDAV request needs
(reads `storage.read`; a new file or collection `storage.create` or `storage.modify`; anything
that changes what exists `storage.modify`), with `<path>` a prefix of the request's path relative
to the storage's root, matched on whole segments after normalisation.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

import requests
from joserfc import jws, jwt
from joserfc.errors import ExpiredTokenError, JoseError, MissingClaimError
from joserfc.jwk import Key, KeySet
from joserfc.jwt import JWTClaimsRegistry

ANY_AUDIENCE = "https://wlcg.cern.ch/jwt/v1/any"
ALGORITHM = "RS256"
LEEWAY_SECONDS = 30
FETCH_TIMEOUT = 10.0
REFETCH_AFTER = 5.0  # at most one key refetch this often: unknown `kid`s cannot flood the issuer
ACCESS_TOKEN_TYPES = (None, "JWT", "at+jwt", "application/at+jwt")

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PROPFIND"})
READ, CREATE, MODIFY = "storage.read", "storage.create", "storage.modify"


class InvalidToken(Exception):
    """The token is not one this service accepts; the message says why (never the token)."""


class IssuerUnavailable(Exception):
    """The issuer's discovery document or keys could not be fetched: nothing can be checked."""


@dataclass
class _Keys:
    keys: KeySet | None = None
    jwks_uri: str | None = None
    fetched: float = 0.0


class Verifier:
    def __init__(
        self,
        issuer: str,
        audiences: Sequence[str],
        *,
        ca_bundle: str | None = None,
        leeway: int = LEEWAY_SECONDS,
    ) -> None:
        if not issuer.startswith("https://") or issuer.endswith("/"):
            raise ValueError(
                f"the token issuer must be an https URL without a trailing /: {issuer}"
            )
        if not audiences:
            raise ValueError("at least one accepted token audience is needed")
        self.issuer = issuer
        self.audiences = frozenset(audiences)
        self._verify_tls: str | bool = ca_bundle or True
        self._leeway = leeway
        self._cache = _Keys()
        self._lock = threading.Lock()

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims once signature and claims check out; InvalidToken otherwise."""
        header = _header(token)
        key = self._key(header.get("kid"))
        try:
            claims = jwt.decode(token, key, algorithms=[ALGORITHM]).claims
        except JoseError:
            raise InvalidToken("the signature does not verify with the issuer's key") from None
        self._check(claims)
        return claims

    def _check(self, claims: dict[str, Any]) -> None:
        registry = JWTClaimsRegistry(
            leeway=self._leeway,
            iss={"essential": True, "value": self.issuer},
            sub={"essential": True},
            exp={"essential": True},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise InvalidToken("the token has expired") from None
        except MissingClaimError as exc:
            raise InvalidToken(f"the token lacks the claim(s) {exc.claim}") from None
        except JoseError as exc:
            raise InvalidToken(
                f"the token's claims are not acceptable ({exc.description})"
            ) from None
        audience = claims.get("aud")
        given = [audience] if isinstance(audience, str) else audience
        if not isinstance(given, list) or not self.audiences.intersection(given):
            raise InvalidToken(
                f"the token is not meant for this service (audience accepted: "
                f"{', '.join(sorted(self.audiences))})"
            )
        if not isinstance(claims.get("wlcg.ver"), str):
            raise InvalidToken("the token is not a WLCG token (no wlcg.ver claim)")
        if not isinstance(claims.get("scope", ""), str):
            raise InvalidToken("the token's scope claim is not a string")

    def _key(self, kid: object) -> Key:
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("the token's kid is not a string")
        with self._lock:
            if self._cache.keys is None:
                self._fetch()
            found = _find(self._cache.keys, kid)
            if found is None and time.monotonic() - self._cache.fetched >= REFETCH_AFTER:
                self._fetch()  # the issuer may have rotated its keys
                found = _find(self._cache.keys, kid)
        if found is None:
            raise InvalidToken(f"the token is signed with a key {self.issuer} does not publish")
        return found

    def _fetch(self) -> None:
        if self._cache.jwks_uri is None:
            discovery = self._get_json(f"{self.issuer}/.well-known/openid-configuration")
            if discovery.get("issuer") != self.issuer:
                raise IssuerUnavailable(f"{self.issuer}'s discovery document names another issuer")
            jwks_uri = discovery.get("jwks_uri")
            if not isinstance(jwks_uri, str) or not jwks_uri.startswith("https://"):
                raise IssuerUnavailable(f"{self.issuer}'s discovery document has no https jwks_uri")
            self._cache.jwks_uri = jwks_uri
        document = self._get_json(self._cache.jwks_uri)
        try:
            self._cache.keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, KeyError, TypeError, ValueError):
            raise IssuerUnavailable(f"{self._cache.jwks_uri} holds no usable keys") from None
        self._cache.fetched = time.monotonic()

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = requests.get(url, verify=self._verify_tls, timeout=FETCH_TIMEOUT)
            response.raise_for_status()
            document = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise IssuerUnavailable(f"cannot fetch {url}: {exc}") from None
        if not isinstance(document, dict):
            raise IssuerUnavailable(f"{url} is not a JSON object")
        return document


def _header(token: str) -> dict[str, Any]:
    try:
        header = jws.extract_compact(token.encode()).headers()
    except (JoseError, ValueError, UnicodeError):
        raise InvalidToken("not a signed JWT") from None
    if header.get("alg") != ALGORITHM:
        raise InvalidToken(f"the token is not signed with {ALGORITHM} (alg {header.get('alg')!r})")
    if header.get("typ") not in ACCESS_TOKEN_TYPES:
        raise InvalidToken(f"not an access token (typ {header.get('typ')!r})")
    return dict(header)


def _find(keys: KeySet | None, kid: str | None) -> Key | None:
    if keys is None:
        return None
    if kid is None:
        return keys.keys[0] if len(keys.keys) == 1 else None
    return next((k for k in keys.keys if k.kid == kid), None)


def bearer_token(environ: dict[str, Any]) -> str | None:
    """The token of an `Authorization: Bearer` header ("" for one without a token), else None."""
    scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


# --- storage scopes -----------------------------------------------------------------------


@dataclass(frozen=True)
class Need:
    """One of `capabilities` on a prefix of `path` (an absolute, normalised path)."""

    path: str
    capabilities: tuple[str, ...]

    def __str__(self) -> str:
        return " or ".join(f"{c}:{self.path}" for c in self.capabilities)


def normalise(path: str) -> str | None:
    """`path` as an absolute path without `.`, `..` or empty segments; None if `..` leads out."""
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    return "/" + "/".join(parts)


def destination_path(header: str) -> str | None:
    """The path of a MOVE or COPY `Destination` (a URL or an absolute path), normalised."""
    return normalise(urlparse(unquote(header), allow_fragments=False).path)


def needs(method: str, path: str, *, exists: bool, destination: str | None = None) -> list[Need]:
    """What a request needs, for normalised `path` (and `destination` for MOVE/COPY)."""
    method = method.upper()
    if method in READ_METHODS:
        wanted = [Need(path, (READ,))]
    elif method in ("PUT", "MKCOL") and not (method == "PUT" and exists):
        wanted = [Need(path, (CREATE, MODIFY))]
    elif method == "COPY":
        wanted = [Need(path, (READ,))]
    else:  # PUT over a file, DELETE, MOVE, PROPPATCH, LOCK, UNLOCK and anything unknown
        wanted = [Need(path, (MODIFY,))]
    if method in ("MOVE", "COPY") and destination is not None:
        wanted.append(Need(destination, (MODIFY,)))
    return wanted


def storage_grants(scope: str) -> list[tuple[str, str]]:
    """(capability, normalised path) for each `storage.*:<path>` in a space-separated scope."""
    grants = []
    for item in scope.split():
        capability, sep, prefix = item.partition(":")
        if sep and capability.startswith("storage.") and prefix.startswith("/"):
            normal = normalise(prefix)
            if normal is not None:
                grants.append((capability, normal))
    return grants


def covers(prefix: str, path: str) -> bool:
    """Whether `prefix` covers `path` on whole segments: /data covers /data/x, not /database."""
    return prefix == "/" or path == prefix or path.startswith(prefix + "/")


def missing_scope(scope: str, wanted: Iterable[Need]) -> Need | None:
    """The first need the token's scope does not meet, or None when all are met."""
    grants = storage_grants(scope)
    for need in wanted:
        if not any(c in need.capabilities and covers(p, need.path) for c, p in grants):
            return need
    return None


def add_arguments(parser: argparse.ArgumentParser, service: str) -> None:
    """A service's options for accepting tokens (`--ca-bundle`, for reaching the issuer, is
    the service's own: it may trust more than the issuer)."""
    parser.add_argument(
        "--token-issuer", help="https URL of the issuer whose WLCG tokens are accepted (none)"
    )
    parser.add_argument(
        "--token-audience",
        action="append",
        default=[],
        help=f"an audience accepted in tokens (repeatable; this {service}'s own URL, ...)",
    )
    parser.add_argument(
        "--token-leeway", type=int, default=LEEWAY_SECONDS, help="clock skew allowed (s)"
    )


def verifier_from_args(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> Verifier | None:
    """The verifier `--token-issuer` and `--token-audience` describe, or None without them."""
    if args.token_issuer is None:
        if args.token_audience:
            parser.error("--token-audience needs --token-issuer")
        return None
    try:
        return Verifier(
            args.token_issuer,
            args.token_audience,
            ca_bundle=str(args.ca_bundle) if args.ca_bundle else None,
            leeway=args.token_leeway,
        )
    except ValueError as exc:
        parser.error(str(exc))
