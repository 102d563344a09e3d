"""Tokens against the real testbed: its issuer, and the Rucio server that trusts it.

A token the issuer signs for the pipeline's client authenticates the `lofar` account (and only
with that account's rights); a token that is expired, signed by another key, or meant for
another audience authenticates nobody. The testbed's token mode hands clients a token file and a
configuration without any secret.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from lofar_datalake_testbed import orchestrator, tokens

pytestmark = pytest.mark.integration


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def _sign(claims: dict[str, Any], key: rsa.RSAPrivateKey, kid: str) -> str:
    header = {"alg": "RS256", "typ": "at+jwt", "kid": kid}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


def _issuer_key(bed: orchestrator.Testbed) -> tuple[rsa.RSAPrivateKey, str]:
    key = serialization.load_pem_private_key(tokens.signing_key(bed.layout).read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    kid = requests.get(f"{tokens.issuer_url(bed.layout.ports())}/jwks",
                       verify=str(bed.pki.ca_cert), timeout=10).json()["keys"][0]["kid"]
    return key, str(kid)


def _rucio_host(bed: orchestrator.Testbed) -> str:
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    parser.read(bed.layout.token_client_config)
    return parser["client"]["rucio_host"]


def _whoami_at(bed: orchestrator.Testbed, token: str) -> requests.Response:
    return requests.get(f"{_rucio_host(bed)}/accounts/whoami",
                        headers={"X-Rucio-Auth-Token": token}, timeout=30,
                        verify=str(bed.pki.ca_cert))


def test_an_issued_token_carries_the_wlcg_profile_claims(testbed: orchestrator.Testbed) -> None:
    token, lifetime = tokens.fetch_token(testbed.layout, testbed.pki.ca_cert)
    claims = _claims(token)
    assert claims["iss"] == tokens.issuer_url(testbed.layout.ports())
    assert claims["sub"] == tokens.PIPELINE_CLIENT
    assert claims["wlcg.ver"] == "1.0"
    assert set(claims["aud"]) == {"rucio", tokens.ANY_AUDIENCE}
    assert set(claims["scope"].split()) == set(tokens.PIPELINE_SCOPES)
    assert 0 < claims["exp"] - time.time() <= lifetime


def test_the_issuer_refuses_a_wrong_secret_and_scopes_not_granted(
        testbed: orchestrator.Testbed) -> None:
    url = f"{tokens.issuer_url(testbed.layout.ports())}/token"
    ca = str(testbed.pki.ca_cert)
    wrong = requests.post(url, data={"grant_type": "client_credentials"},
                          auth=(tokens.PIPELINE_CLIENT, "not-the-secret"), verify=ca, timeout=10)
    assert wrong.status_code == 401
    assert "access_token" not in wrong.text
    secret = testbed.layout.etc / "credentials.ini"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    # A scope the client was never granted is dropped, never issued.
    token, _ = tokens.fetch_token(testbed.layout, testbed.pki.ca_cert,
                                  scopes=("openid", "profile", "storage.modify:/", "admin"))
    assert "admin" not in _claims(token)["scope"].split()


def test_rucio_maps_the_token_to_the_pipeline_account(testbed: orchestrator.Testbed) -> None:
    token, _ = tokens.fetch_token(testbed.layout, testbed.pki.ca_cert)
    answer = _whoami_at(testbed, token)
    assert answer.status_code == 200, answer.text
    assert answer.json()["account"] == "lofar"


def test_rucio_refuses_expired_foreign_and_misaddressed_tokens(
        testbed: orchestrator.Testbed) -> None:
    key, kid = _issuer_key(testbed)
    now = int(time.time())
    good = _claims(tokens.fetch_token(testbed.layout, testbed.pki.ca_cert)[0])
    expired = {**good, "iat": now - 7200, "exp": now - 3600, "jti": "expired"}
    assert _whoami_at(testbed, _sign(expired, key, kid)).status_code == 401
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    foreign = {**good, "jti": "foreign"}
    assert _whoami_at(testbed, _sign(foreign, other, kid)).status_code == 401
    elsewhere = tokens.fetch_token(testbed.layout, testbed.pki.ca_cert,
                                   audiences=(tokens.ANY_AUDIENCE,))[0]
    assert _whoami_at(testbed, elsewhere).status_code == 401  # no `rucio` audience
    no_scope = tokens.fetch_token(testbed.layout, testbed.pki.ca_cert,
                                  scopes=("storage.read:/",))[0]
    assert _whoami_at(testbed, no_scope).status_code == 401  # not "openid profile"


def test_a_token_gives_the_pipeline_account_its_rights_and_no_more(
        testbed: orchestrator.Testbed, monkeypatch: pytest.MonkeyPatch) -> None:
    from rucio.client import Client
    from rucio.common.config import clean_cached_config

    token, _ = tokens.fetch_token(testbed.layout, testbed.pki.ca_cert)
    monkeypatch.setenv("RUCIO_CONFIG", str(testbed.layout.token_client_config))
    monkeypatch.setenv("BEARER_TOKEN", token)
    try:
        client = Client(auth_type="oidc")
        assert client.whoami()["account"] == "lofar"
        assert "SITE_A_DISK" in {r["rse"] for r in client.list_rses()}
    finally:
        clean_cached_config()  # Rucio keeps the configuration it read for the process
    # Operator actions, asked over REST: Rucio answers a refusal with 401 and the exception's
    # class (its client in oidc mode would misreport it as a failed login).
    host, headers = _rucio_host(testbed), {"X-Rucio-Auth-Token": token}
    ca = str(testbed.pki.ca_cert)
    refused = [
        requests.post(f"{host}/rses/TOKEN_MADE_RSE", json={}, headers=headers, verify=ca,
                      timeout=30),
        requests.post(f"{host}/accountlimits/local/lofar/SITE_A_DISK", json={"bytes": 1},
                      headers=headers, verify=ca, timeout=30),
        requests.post(f"{host}/accounts/lofar/attr/admin", json={"key": "admin", "value": "True"},
                      headers=headers, verify=ca, timeout=30),
    ]
    for answer in refused:
        assert answer.status_code == 401, answer.text
        assert answer.headers.get("ExceptionClass") == "AccessDenied", answer.headers


def test_token_mode_gives_clients_a_private_token_file_and_no_secret(
        testbed: orchestrator.Testbed, tmp_path: Path) -> None:
    layout = testbed.layout
    previous = tokens.auth_mode(layout)
    try:
        tokens.set_auth_mode(layout, "token")
        shown = subprocess.run(
            [sys.executable, "-m", "lofar_datalake.cli", "testbed", "token", "--dir",
             str(layout.root)], capture_output=True, text=True, timeout=120, check=True)
        token = layout.bearer_token.read_text()
        assert stat.S_IMODE(layout.bearer_token.stat().st_mode) == 0o600
        assert token not in shown.stdout + shown.stderr
        env = testbed.client_env()
        assert env["BEARER_TOKEN_FILE"] == str(layout.bearer_token)
        assert env["RUCIO_CONFIG"] == str(layout.token_client_config)
        config = layout.token_client_config.read_text()
        assert "auth_type = oidc" in config
        assert "password" not in config
        assert _whoami_at(testbed, token).json()["account"] == "lofar"
        printed = testbed.env()
        assert token not in printed and "BEARER_TOKEN_FILE" in printed
    finally:
        tokens.set_auth_mode(layout, previous)
    assert "BEARER_TOKEN_FILE" not in testbed.client_env() or previous == "token"
    assert os.environ.get("BEARER_TOKEN") is None
