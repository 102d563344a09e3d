"""The service's check of an issuer's id_token, as its login callback makes it (authlib's client
with the service's claims options): only a token signed by a key of the issuer's JWKS, from
that issuer, for this client, unexpired and with the login's nonce names a person. The
integration test (test_service_oidc_login.py) drives the whole flow against the real issuer;
tokens no honest issuer would sign are made here."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any

import certifi
import pytest
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey

from lofar_datalake.service import oidc

ISSUER = "https://issuer.example"
PROVIDER = oidc.Provider(ISSUER, "the-service", "s3cret", Path(certifi.where()))
NONCE = "n-0S6_WzA2Mj"


def key(kid: str = "k1") -> RSAKey:
    return RSAKey.generate_key(2048, private=True, parameters={"kid": kid})


OURS = key()


def claims(**changed: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": ["the-service"], "sub": "sub-1", "iat": now,
            "exp": now + 300, "nonce": NONCE, **changed}


def signed(payload: dict[str, Any], with_key: RSAKey = OURS) -> str:
    return jwt.encode({"alg": "RS256", "kid": with_key.kid}, payload, with_key)


def checked(id_token: str) -> dict[str, Any]:
    """What the callback's client makes of `id_token` (discovery and JWKS as if fetched)."""
    client = oidc.client(PROVIDER)
    client.server_metadata.update({
        "issuer": ISSUER, "_loaded_at": time.time(),
        "id_token_signing_alg_values_supported": ["RS256"],
        "jwks": KeySet([OURS]).as_dict(private=False)})
    token = {"id_token": id_token, "access_token": "at"}
    return dict(asyncio.run(client.parse_id_token(
        token, nonce=NONCE, claims_options=oidc.claims_options(PROVIDER), leeway=oidc.LEEWAY_S)))


def test_a_token_of_the_issuer_for_this_client_names_the_person() -> None:
    assert checked(signed(claims()))["sub"] == "sub-1"


@pytest.mark.parametrize("changed", [
    {"aud": ["another-service"]}, {"aud": ["another-service", "a-third"]},
    # Left to itself, authlib takes an `azp` naming this client for an `aud` that does not.
    {"aud": ["another-service"], "azp": "the-service"},
    {"iss": "https://impostor.example"}, {"nonce": "another-login"},
    {"exp": int(time.time()) - 3600}, {"iat": int(time.time()) + 3600},
], ids=["aud", "aud-list", "aud-azp", "iss", "nonce", "expired", "future"])
def test_a_token_with_a_wrong_claim_is_refused(changed: dict[str, Any]) -> None:
    with pytest.raises(JoseError):
        checked(signed(claims(**changed)))


def test_a_token_signed_by_another_key_is_refused_even_under_the_issuers_kid() -> None:
    with pytest.raises(JoseError):
        checked(signed(claims(), key(kid=str(OURS.kid))))


def test_an_unsigned_token_is_refused() -> None:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    with pytest.raises(JoseError):
        checked(f"{part({'alg': 'none', 'kid': OURS.kid})}.{part(claims())}.")
