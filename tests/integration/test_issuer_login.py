"""People log in at the testbed's issuer (OpenID Connect's authorization-code flow with PKCE),
over HTTPS as a web service's client would drive it, against the session's real issuer.

The users and the client are made here, with secrets of the test's own, through the testbed's
issuer_accounts (the running issuer reads them at its next request) and removed at the end.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import stat
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from lofar_datalake_testbed import issuer_accounts, tokens

pytestmark = pytest.mark.integration

REDIRECT = "https://127.0.0.1:9/callback"  # never reached: the tests read the redirect itself


@dataclass
class Registered:
    issuer: str
    ca: str
    client: str
    secret: str
    username: str
    password: str
    sub: str


@pytest.fixture(scope="module")
def registered(testbed_session):
    testbed_session.up()
    layout = testbed_session.layout
    tag = secrets.token_hex(3)
    found = Registered(tokens.issuer_url(layout.ports()), str(testbed_session.pki.ca_cert),
                       f"web-{tag}", secrets.token_urlsafe(24), f"ann-{tag}",
                       secrets.token_urlsafe(16), "")
    issuer_accounts.add_client(layout, found.client, found.secret, [REDIRECT])
    found.sub = issuer_accounts.add_user(layout, found.username, found.password,
                                         email="ann@example.org", name="Ann Example")
    yield found
    issuer_accounts.remove_user(layout, found.username)
    issuer_accounts.remove_client(layout, found.client)


class Flow:
    """One authorization request of the registered client, in a session of its own."""

    def __init__(self, reg: Registered, **changed: str | None) -> None:
        self.reg = reg
        self.http = requests.Session()  # the issuer's cookie (the form's CSRF token)
        self.verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(
            hashlib.sha256(self.verifier.encode()).digest()).rstrip(b"=").decode()
        self.nonce = secrets.token_urlsafe(16)
        params: dict[str, str | None] = {
            "response_type": "code", "client_id": reg.client, "redirect_uri": REDIRECT,
            "scope": "openid profile email", "state": "s-1", "nonce": self.nonce,
            "code_challenge": challenge, "code_challenge_method": "S256", **changed}
        self.url = f"{reg.issuer}/authorize?" + urlencode(
            {k: v for k, v in params.items() if v is not None})

    def form(self) -> requests.Response:
        return self.http.get(self.url, allow_redirects=False, verify=self.reg.ca, timeout=30)

    def sign_in(self, username: str, password: str, csrf: str | None = None) -> requests.Response:
        page = self.form()
        assert page.status_code == 200, page.text
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None
        return self.http.post(self.url, data={"username": username, "password": password,
                                              "csrf": token.group(1) if csrf is None else csrf},
                              allow_redirects=False, verify=self.reg.ca, timeout=60)

    def code(self) -> str:
        answer = self.sign_in(self.reg.username, self.reg.password)
        assert answer.status_code == 302, answer.text
        back = parse_qs(urlparse(answer.headers["Location"]).query)
        assert back["state"] == ["s-1"]
        return back["code"][0]

    def exchange(self, code: str, verifier: str | None = None) -> requests.Response:
        return requests.post(f"{self.reg.issuer}/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "code_verifier": verifier or self.verifier}, auth=(self.reg.client, self.reg.secret),
            verify=self.reg.ca, timeout=30)


def redirected_error(answer: requests.Response) -> dict[str, list[str]]:
    assert answer.status_code == 302, answer.text
    assert answer.headers["Location"].startswith(REDIRECT + "?")
    return parse_qs(urlparse(answer.headers["Location"]).query)


def test_discovery_offers_the_code_flow_with_pkce(registered: Registered) -> None:
    found = requests.get(f"{registered.issuer}/.well-known/openid-configuration",
                         verify=registered.ca, timeout=30).json()
    assert found["authorization_endpoint"] == f"{registered.issuer}/authorize"
    assert found["userinfo_endpoint"] == f"{registered.issuer}/userinfo"
    assert found["response_types_supported"] == ["code"]
    assert found["code_challenge_methods_supported"] == ["S256"]
    assert set(found["grant_types_supported"]) == {"authorization_code", "client_credentials"}


def test_a_person_signs_in_and_the_client_gets_a_signed_id_token_once(
        registered: Registered) -> None:
    flow = Flow(registered)
    code = flow.code()
    answer = flow.exchange(code)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    keys = KeySet.import_key_set(requests.get(f"{registered.issuer}/jwks", verify=registered.ca,
                                              timeout=30).json())
    claims = jwt.decode(body["id_token"], keys, algorithms=["RS256"]).claims
    jwt.JWTClaimsRegistry(iss={"essential": True, "value": registered.issuer},
                          aud={"essential": True, "value": registered.client},
                          nonce={"essential": True, "value": flow.nonce},
                          exp={"essential": True}).validate(claims)
    assert claims["sub"] == registered.sub
    assert claims["email"] == "ann@example.org"
    access = jwt.decode(body["access_token"], keys, algorithms=["RS256"]).claims
    assert access["sub"] == registered.sub and access["aud"] == [registered.client]
    info = requests.get(f"{registered.issuer}/userinfo", verify=registered.ca, timeout=30,
                        headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.status_code == 200, info.text
    assert info.json() == {"sub": registered.sub, "name": "Ann Example",
                           "preferred_username": registered.username,
                           "email": "ann@example.org", "email_verified": True}
    again = flow.exchange(code)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert "access_token" not in again.text


def test_a_wrong_verifier_uses_the_code_up(registered: Registered) -> None:
    flow = Flow(registered)
    code = flow.code()
    wrong = flow.exchange(code, verifier=secrets.token_urlsafe(48))
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    assert flow.exchange(code).json()["error"] == "invalid_grant"  # even with the right one


def test_another_clients_secret_gets_no_token_for_the_code(registered: Registered) -> None:
    flow = Flow(registered)
    code = flow.code()
    stolen = requests.post(f"{registered.issuer}/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "code_verifier": flow.verifier}, auth=(registered.client, "not-its-secret"),
        verify=registered.ca, timeout=30)
    assert stolen.status_code == 401
    assert "access_token" not in stolen.text


def test_requests_without_pkce_s256_or_a_nonce_are_sent_back_with_an_error(
        registered: Registered) -> None:
    for changed in ({"code_challenge": None, "code_challenge_method": None},
                    {"code_challenge_method": "plain"}, {"code_challenge_method": None},
                    {"nonce": None}):
        back = redirected_error(Flow(registered, **changed).form())
        assert back["error"] == ["invalid_request"], changed
        assert "code" not in back


def test_an_unregistered_redirect_uri_or_client_is_never_redirected_to(
        registered: Registered) -> None:
    for changed in ({"redirect_uri": "https://127.0.0.1:9/callback/more"},
                    {"redirect_uri": "https://elsewhere.example/callback"},
                    {"client_id": tokens.PIPELINE_CLIENT}, {"client_id": "nobody-knows"}):
        answer = Flow(registered, **changed).form()
        assert answer.status_code in (400, 401), changed
        assert "Location" not in answer.headers


def test_a_wrong_password_or_a_stale_form_stays_at_the_issuer(registered: Registered) -> None:
    flow = Flow(registered)
    wrong = flow.sign_in(registered.username, "not the password")
    assert wrong.status_code == 401
    assert "Unknown username or wrong password." in wrong.text
    assert "Location" not in wrong.headers
    unknown = flow.sign_in("nobody-here", registered.password)
    assert unknown.status_code == 401 and "Location" not in unknown.headers
    forged = flow.sign_in(registered.username, registered.password, csrf="forged")
    assert forged.status_code == 400 and "Location" not in forged.headers


def test_a_web_client_cannot_use_the_client_credentials_grant(registered: Registered) -> None:
    answer = requests.post(f"{registered.issuer}/token",
                           data={"grant_type": "client_credentials"},
                           auth=(registered.client, registered.secret), verify=registered.ca,
                           timeout=30)
    assert answer.status_code == 400 and answer.json()["error"] == "unauthorized_client"


def test_a_user_counts_from_the_issuers_next_request_and_is_kept_hashed(
        testbed_session, registered: Registered) -> None:
    layout = testbed_session.layout
    password = secrets.token_urlsafe(16)
    name = f"late-{secrets.token_hex(3)}"
    sub = issuer_accounts.add_user(layout, name, password)
    users = tokens.users_file(layout)
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    assert password not in users.read_text()
    assert json.loads(users.read_text())[name]["sub"] == sub
    assert Flow(registered).sign_in(name, password).status_code == 302
    issuer_accounts.remove_user(layout, name)
    assert Flow(registered).sign_in(name, password).status_code == 401


def test_the_testbeds_own_clients_are_kept_and_registered_ones_survive_an_up(
        testbed_session, registered: Registered) -> None:
    with pytest.raises(ValueError, match="is the testbed's own"):
        issuer_accounts.add_client(testbed_session.layout, tokens.PIPELINE_CLIENT, "x",
                                   [REDIRECT])
    testbed_session.up()  # rewrites the testbed's own clients
    assert registered.client in json.loads(tokens.clients_file(testbed_session.layout)
                                           .read_text())
    assert Flow(registered).code()
