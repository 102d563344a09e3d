"""Researchers log in to `lofar-datalake serve` through the testbed's OpenID issuer, in headless
Chromium: the service over TLS on the session's testbed, its client registered at the real
issuer with exactly its callback as redirect URI, and people made at the issuer by the test.

alice's researcher entry names her `sub` and has no password of the service's; bob keeps his
password (the fallback). A stranger signed in at the issuer maps to no entry. Screenshots are
kept with LOFAR_DATALAKE_SCREENSHOTS=DIR."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse, urlunparse

import pytest
import requests
from service_support import Service, make_service

from lofar_datalake_testbed import issuer_accounts, tokens

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Person:
    username: str
    password: str
    sub: str


@pytest.fixture(scope="module")
def issuer(testbed_session) -> str:
    testbed_session.up()
    return tokens.issuer_url(testbed_session.layout.ports())


@pytest.fixture(scope="module")
def people(testbed_session, issuer):
    made = {}
    for who in ("alice", "stranger"):
        username, password = f"{who}-{secrets.token_hex(3)}", secrets.token_urlsafe(16)
        sub = issuer_accounts.add_user(testbed_session.layout, username, password,
                                       email=f"{who}@example.org", name=who.title())
        made[who] = Person(username, password, sub)
    yield made
    for person in made.values():
        issuer_accounts.remove_user(testbed_session.layout, person.username)


@pytest.fixture(scope="module")
def service(testbed_session, people):
    yield from make_service(testbed_session, oidc_subjects={"alice": people["alice"].sub},
                            limits={"alice": {"concurrent_runs": 2, "wall_time_s": 1800}})


def sign_in(browser, service: Service, issuer: str, person: Person, password: str = "") -> None:
    """From the service's login page through the issuer's form, as a person clicks."""
    browser.open(f"{service.url}/login")
    browser.page.click("#oidc-login")
    browser.page.wait_for_url(f"{issuer}/authorize?*")
    browser.page.fill("#username", person.username)
    browser.page.fill("#password", password or person.password)
    browser.page.click("button[type=submit]")


def logged_out(browser, service: Service) -> bool:
    browser.open(f"{service.url}/")
    return bool(browser.page.url == f"{service.url}/login")


def faint(pages: list) -> list[str]:
    return [str(t) for texts in pages for t in texts if t.contrast < 4.5]


def test_a_researcher_logs_in_through_the_issuer_and_sees_their_own_page(
        service, people, issuer, tmp_path) -> None:
    from browser import Browser

    account = service.researchers["alice"].scope.removeprefix("user.")
    with Browser(trust=Path(service.cert)) as browser:
        browser.open(f"{service.url}/login")
        assert browser.page.inner_text("#oidc-login") == f"Log in with {issuer}"
        assert browser.page.is_visible("#password")  # the password form stays beside it
        shots = [browser.screenshot(tmp_path / "service-oidc-login.png")]
        pages = [browser.texts()]
        browser.page.click("#oidc-login")
        browser.page.wait_for_url(f"{issuer}/authorize?*")
        query = parse_qs(urlparse(browser.page.url).query)
        assert query["code_challenge_method"] == ["S256"] and query["nonce"][0]
        assert query["redirect_uri"] == [f"{service.url}/login/oidc/callback"]
        shots.append(browser.screenshot(tmp_path / "service-oidc-issuer.png"))
        pages.append(browser.texts())
        browser.page.fill("#username", people["alice"].username)
        browser.page.fill("#password", people["alice"].password)
        browser.page.click("button[type=submit]")
        browser.page.wait_for_selector("#limits")
        assert browser.page.url == f"{service.url}/"
        assert f"alice (Rucio account {account})" in browser.page.inner_text("header")
        limits = browser.page.inner_text("#limits")
        assert "at most 2 at once" in limits and "1800 s" in limits
        assert service.researchers["alice"].scope in limits
        assert "Your submissions" in browser.page.inner_text("main")
        shots.append(browser.screenshot(tmp_path / "service-oidc-home.png"))
        pages.append(browser.texts())
        browser.page.click("header button[type=submit]")  # log out
        browser.page.wait_for_url(f"{service.url}/login")
        assert logged_out(browser, service)
    assert all(shot.stat().st_size > 10_000 for shot in shots)
    assert faint(pages) == []


def test_password_accounts_still_log_in_beside_the_issuer(service) -> None:
    bob = service.researchers["bob"]
    assert service.api("GET", "/api/submissions", "bob").status_code == 200
    http = requests.Session()
    page = http.get(f"{service.url}/login", verify=service.ca, timeout=30)
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    for name, password, status in (("alice", "anything", 401), ("bob", bob.password, 200)):
        answer = http.post(f"{service.url}/login", verify=service.ca, timeout=30, data={
            "username": name, "password": password, "csrf": csrf})
        assert answer.status_code == status, (name, answer.text[-300:])
    alice = requests.get(f"{service.url}/api/submissions", auth=("alice", ""),
                         verify=service.ca, timeout=30)
    assert alice.status_code == 401  # no password of the service's: no HTTP Basic either


def test_a_person_no_researcher_entry_names_is_refused_with_a_clear_page(
        service, people, issuer, tmp_path) -> None:
    from browser import Browser

    stranger = people["stranger"]
    with Browser(trust=Path(service.cert)) as browser:
        with browser.page.expect_response(f"{service.url}/login/oidc/callback*") as back:
            sign_in(browser, service, issuer, stranger)
        assert back.value.status == 403
        browser.page.wait_for_selector("#oidc-error")
        assert browser.page.inner_text("#oidc-error") == (
            f"You signed in at {issuer} as {stranger.sub}, which no researcher entry names.")
        assert f"oidc_subject: {stranger.sub}" in browser.page.inner_text("#oidc-hint")
        shot = browser.screenshot(tmp_path / "service-oidc-refused.png")
        pages = [browser.texts()]
        assert logged_out(browser, service)
    assert shot.stat().st_size > 10_000
    assert faint(pages) == []


def test_a_wrong_password_at_the_issuer_stays_at_the_issuer_with_an_error(
        service, people, issuer, tmp_path) -> None:
    from browser import Browser

    with Browser(trust=Path(service.cert)) as browser:
        sign_in(browser, service, issuer, people["alice"], password="not her password")
        browser.page.wait_for_selector("#error")
        assert browser.page.url.startswith(f"{issuer}/authorize?")
        assert browser.page.inner_text("#error") == "Unknown username or wrong password."
        browser.screenshot(tmp_path / "service-oidc-wrong-password.png")
        assert logged_out(browser, service)


def with_state(url: str, state: str) -> str:
    parts = urlparse(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | {"state": state}
    return urlunparse(parts._replace(query=urlencode(query)))


def way_back(service: Service, issuer: str, person: Person) -> tuple[requests.Session, str]:
    """A login through the issuer as a browser makes it, up to the issuer's redirect back to
    the service, not followed: the browser's cookies and that redirect."""
    http = requests.Session()
    to_issuer = http.get(f"{service.url}/login/oidc", verify=service.ca, timeout=30,
                         allow_redirects=False)
    assert to_issuer.status_code == 302
    authorize = to_issuer.headers["Location"]
    assert authorize.startswith(f"{issuer}/authorize?")
    form = http.get(authorize, verify=service.ca, timeout=30)
    csrf = form.text.split('name="csrf" value="')[1].split('"')[0]
    back = http.post(authorize, verify=service.ca, timeout=60, allow_redirects=False, data={
        "username": person.username, "password": person.password, "csrf": csrf})
    assert back.status_code == 302, back.text
    return http, back.headers["Location"]


def test_a_tampered_state_is_refused(service, people, issuer) -> None:
    http, callback = way_back(service, issuer, people["alice"])
    assert callback.startswith(f"{service.url}/login/oidc/callback?")
    tampered = http.get(with_state(callback, secrets.token_urlsafe(20)), verify=service.ca,
                        timeout=30, allow_redirects=False)
    assert tampered.status_code == 400
    assert "mismatching_state" in tampered.text
    home = http.get(f"{service.url}/", verify=service.ca, timeout=30, allow_redirects=False)
    assert home.headers["Location"] == "/login"  # nobody logged in
    # The untouched way back, in the browser that started the login, still completes it.
    landed = http.get(callback, verify=service.ca, timeout=60)
    assert landed.url == f"{service.url}/" and 'id="limits"' in landed.text


def test_a_replayed_code_is_refused_by_the_service_and_the_issuer(
        service, people, issuer) -> None:
    from browser import Browser

    with Browser(trust=Path(service.cert)) as browser:
        seen: list[str] = []
        browser.page.on("request", lambda r: seen.append(r.url)
                        if "/login/oidc/callback" in r.url else None)
        sign_in(browser, service, issuer, people["alice"])
        browser.page.wait_for_selector("#limits")
        used = seen[0]
        with browser.page.expect_response(f"{service.url}/login/oidc/callback*") as back:
            browser.open(used)  # the same browser: its state was used up
        assert back.value.status == 400
        assert "mismatching_state" in browser.page.inner_text("#oidc-error")
    elsewhere = requests.get(used, verify=service.ca, timeout=30)  # without her cookie
    assert elsewhere.status_code == 400 and "mismatching_state" in elsewhere.text
    code = parse_qs(urlparse(used).query)["code"][0]
    secret = (service.etc / "oidc-client.secret").read_text()
    again = requests.post(f"{issuer}/token", auth=(service.oidc_client, secret), data={
        "grant_type": "authorization_code", "code": code, "code_verifier": "v" * 43,
        "redirect_uri": f"{service.url}/login/oidc/callback"}, verify=service.ca, timeout=30)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
