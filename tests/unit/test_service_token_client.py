"""Researchers whose runs hold access tokens, the parts that need no issuer: the researchers
file's `token_client`, the run's Rucio configuration, command and environment, what a run asks
the issuer for, how the issuer's answers become reasons, and the run's token file kept fresh.
The issuer's HTTP answers are made here; tests/integration/test_service_token_runs.py asks the
testbed's real issuer."""

from __future__ import annotations

import argparse
import base64
import configparser
import datetime as dt
import json
import stat
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from datalake_core.job_auth import PASSWORD_ENV
from lofar_datalake.service import (
    command,
    probing,
    researchers,
    run_credentials,
    token_client,
)
from lofar_datalake.service.model import Researcher, Source, State, Submission, TokenClient
from lofar_datalake.service.researchers import ResearchersFileError
from lofar_datalake.service.runs import RunPaths
from lofar_datalake.service.token_client import AccessToken, Issuer, RunToken, TokenError
from lofar_datalake.service.worker import SiteEntry, compare_command, rucio_config

SECRET = "the-clients-secret"
ISSUER = Issuer("https://issuer.test", "https://issuer.test/token", Path("/ca.pem"),
                ("rucio", "https://fts.test"))


@pytest.fixture()
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "alice.client-secret"
    path.write_text(SECRET + "\n")
    path.chmod(0o600)
    return path


def entry(**fields: object) -> dict[str, object]:
    return {"researchers": {"alice": {
        "password_hash": researchers.hash_password("her login"), "rucio_account": "alice",
        "scopes": ["user.alice", "lofar"], **fields}}}


def error(data: object) -> str:
    with pytest.raises(ResearchersFileError) as caught:
        researchers.parse(data)
    return str(caught.value)


def alice(secret_file: Path) -> Researcher:
    return researchers.parse(entry(token_client={
        "id": "alice-runs", "secret_file": str(secret_file)}))["alice"]


def test_a_token_client_stands_in_for_the_password_credential(secret_file: Path) -> None:
    researcher = alice(secret_file)
    assert researcher.token_client == TokenClient("alice-runs", str(secret_file))
    assert researcher.credential == ""


def test_the_token_client_is_checked_as_strictly_as_the_credential(secret_file: Path) -> None:
    key = "researchers.alice"
    given = {"id": "alice-runs", "secret_file": str(secret_file)}
    assert error(entry(token_client={**given, "secret": "x"})) == (
        f"{key}.token_client: unknown key secret (known: id, secret_file)")
    assert error(entry(token_client={"id": "alice-runs"})) == (
        f"{key}.token_client: missing secret_file")
    assert error(entry(token_client={**given, "id": 7})) == (
        f"{key}.token_client.id: must be the client id the issuer registered, got 7")
    assert error(entry(token_client={**given, "secret_file": ["a"]})) == (
        f"{key}.token_client.secret_file: must be a path, got ['a']")
    assert error(entry(token_client="alice-runs")) == (
        f"{key}.token_client: must be a mapping, got str")
    assert error(entry(token_client={**given, "secret_file": "relative"})) == (
        f"{key}.token_client.secret_file: must be an absolute path, got relative")
    secret_file.chmod(0o640)
    assert error(entry(token_client=given)) == (
        f"{key}.token_client.secret_file: {secret_file} is readable by others (mode 0o640); "
        "make it 0600")
    secret_file.unlink()
    assert error(entry(token_client=given)).startswith(
        f"{key}.token_client.secret_file: cannot read {secret_file}:")


def test_a_researcher_has_a_password_credential_or_a_token_client(secret_file: Path) -> None:
    assert error(entry()) == (
        "researchers.alice: missing credential or token_client (how their runs reach Rucio: a "
        "password, or a token client at the DataLake's issuer)")
    both = entry(credential=str(secret_file),
                 token_client={"id": "alice-runs", "secret_file": str(secret_file)})
    assert error(both) == "researchers.alice: give credential or token_client, not both"


def test_a_token_run_says_oidc_to_rucio_and_names_no_username_or_secret(
        tmp_path: Path, secret_file: Path) -> None:
    base = tmp_path / "base.cfg"
    base.write_text("[client]\nrucio_host = https://127.0.0.1:1\nauth_type = userpass\n"
                    "username = service\npassword = the-services-secret\naccount = service\n")
    paths = RunPaths(tmp_path / "runs" / "7")
    parsed = configparser.ConfigParser(interpolation=None)
    parsed.read_string(rucio_config(base, alice(secret_file), paths))
    assert dict(parsed["client"]) == {
        "rucio_host": "https://127.0.0.1:1", "auth_host": "https://127.0.0.1:1",
        "ca_cert": str(paths.ca_bundle), "auth_type": "oidc", "account": "alice",
        "request_retries": "2", "auth_token_file_path": str(paths.home / ".rucio-token")}
    submission = Submission(7, "alice", "SITE_B", Source("archive", "w.tar.gz"), "Snakefile",
                            "config.yaml", ["user.alice:a"], State.RUNNING,
                            dt.datetime.now(dt.UTC), attempts=1)
    site = SiteEntry("SITE_B", Path("/project/profiles/local-site-b"), "SITE_B_DISK")
    passed = compare_command(submission, paths, site, alice(secret_file))
    assert passed[passed.index("--storage-datalake-account") + 1] == "alice"
    assert "--storage-datalake-username" not in passed
    assert SECRET not in " ".join(passed)
    probe = probing.probe_command(paths, site, alice(secret_file), 60)
    assert "--storage-datalake-username" not in probe
    assert probe[probe.index("--storage-datalake-account") + 1] == "alice"


def test_a_run_asks_to_read_its_scopes_and_to_write_below_its_own_only(
        secret_file: Path) -> None:
    researcher = alice(secret_file)
    assert token_client.run_scopes(researcher) == (
        "openid", "profile", "storage.read:/user/alice", "storage.read:/lofar",
        "storage.create:/user/alice", "storage.modify:/user/alice")
    assert token_client.storage_path("group.lofar.calib") == "/group/lofar/calib"
    assert token_client.storage_path("lofar") == "/lofar"


def jwt(**claims: Any) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'at+jwt'})}.{part(claims)}.c2lnbmF0dXJl"


def answering(monkeypatch: pytest.MonkeyPatch, status: int, body: dict[str, Any] | str,
              ) -> list[dict]:
    """The issuer's token endpoint answers `status` and `body` (JSON, or text as it is); the
    requests it got."""
    asked: list[dict] = []

    def post(url: str, **kwargs: Any) -> requests.Response:
        asked.append({"url": url, **kwargs})
        answer = requests.Response()
        text = body if isinstance(body, str) else json.dumps(body)
        answer.status_code, answer._content = status, text.encode()
        return answer

    monkeypatch.setattr(token_client.requests, "post", post)
    return asked


def granted(scopes: tuple[str, ...], audience: list[str], lifetime: int = 3600) -> dict:
    return {"access_token": jwt(sub="alice-runs", scope=" ".join(scopes), aud=audience,
                                exp=int(time.time()) + lifetime),
            "token_type": "Bearer", "expires_in": lifetime}


def test_a_token_is_asked_for_with_the_clients_secret_and_what_the_run_needs(
        monkeypatch: pytest.MonkeyPatch, secret_file: Path) -> None:
    researcher = alice(secret_file)
    wanted = token_client.run_scopes(researcher)
    asked = answering(monkeypatch, 200, granted(wanted, list(ISSUER.audiences), 1800))
    token = token_client.fetch(ISSUER, researcher, wanted)
    assert token.lifetime_s == 1800 and "alice-runs" not in repr(token)
    [request] = asked
    assert request["url"] == ISSUER.token_endpoint and request["auth"] == ("alice-runs", SECRET)
    assert request["data"] == {"grant_type": "client_credentials", "scope": " ".join(wanted),
                               "audience": "rucio https://fts.test"}
    assert request["verify"] == "/ca.pem"


def test_less_than_asked_for_is_a_reason_naming_what_is_missing(
        monkeypatch: pytest.MonkeyPatch, secret_file: Path) -> None:
    researcher = alice(secret_file)
    wanted = token_client.run_scopes(researcher)
    fewer = tuple(s for s in wanted if s != "storage.create:/user/alice")
    answering(monkeypatch, 200, granted(fewer, ["rucio"]))
    with pytest.raises(TokenError) as caught:
        token_client.fetch(ISSUER, researcher, wanted)
    assert str(caught.value).startswith(
        "the token issuer https://issuer.test did not grant client alice-runs "
        "storage.create:/user/alice, the audience https://fts.test; the DataLake's IAM must "
        "register the client")


@pytest.mark.parametrize(("status", "body", "reason"), [
    (401, {"error": "invalid_client", "error_description": f"bad secret {SECRET}"},
     "HTTP 401 invalid_client: bad secret ***"),
    (400, {"error": "invalid_scope"}, "HTTP 400 invalid_scope"),
    (502, {"message": "bad gateway"}, 'HTTP 502 {"message": "bad gateway"}'),
    (503, "<html>\n<h1>Service   Unavailable</h1></html>",
     "HTTP 503 <html> <h1>Service Unavailable</h1></html>"),
])
def test_a_refusal_names_the_issuer_the_status_and_its_error_never_the_secret(
        monkeypatch: pytest.MonkeyPatch, secret_file: Path, status: int, body: dict | str,
        reason: str) -> None:
    answering(monkeypatch, status, body)
    with pytest.raises(TokenError) as caught:
        token_client.fetch(ISSUER, alice(secret_file), token_client.RUCIO_SCOPES)
    assert str(caught.value) == (
        f"the token issuer https://issuer.test refused a token for client alice-runs: {reason}")


def test_an_unreachable_issuer_is_named(monkeypatch: pytest.MonkeyPatch,
                                        secret_file: Path) -> None:
    def post(url: str, **kwargs: Any) -> requests.Response:
        raise requests.ConnectionError(f"cannot connect to {url}")

    monkeypatch.setattr(token_client.requests, "post", post)
    with pytest.raises(TokenError, match=r"^the token issuer https://issuer\.test gave no token "
                                         r"for client alice-runs: cannot connect to https://"):
        token_client.fetch(ISSUER, alice(secret_file), token_client.RUCIO_SCOPES)


def test_the_runs_token_file_is_private_renewed_at_half_its_life_and_gone_after(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, secret_file: Path) -> None:
    issued: list[str] = []

    def fetch(issuer: Issuer, researcher: Researcher, scopes: tuple[str, ...]) -> AccessToken:
        issued.append(f"token-{len(issued)}")
        return AccessToken(issued[-1], 0.4)

    monkeypatch.setattr(token_client, "fetch", fetch)
    path = tmp_path / "bearer-token"
    with RunToken(ISSUER, alice(secret_file), path, None) as token:
        assert path.read_text() == "token-0"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert eventually(lambda: path.read_text() == "token-2")
        assert token.values[:3] == ["token-0", "token-1", "token-2"]
    assert not path.exists()
    assert [p.name for p in tmp_path.iterdir()] == [secret_file.name]  # no half-written copy


def test_a_failed_renewal_keeps_the_token_says_so_in_the_log_and_tries_again(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, secret_file: Path) -> None:
    answers = iter([AccessToken("first", 0.2), TokenError("HTTP 503 temporarily_unavailable")])

    def fetch(issuer: Issuer, researcher: Researcher, scopes: tuple[str, ...]) -> AccessToken:
        answer = next(answers, AccessToken("second", 3600))
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(token_client, "fetch", fetch)
    monkeypatch.setattr(token_client, "RETRY_S", 0.1)
    path, log = tmp_path / "bearer-token", tmp_path / "run.log"
    with RunToken(ISSUER, alice(secret_file), path, None, log):
        assert eventually(lambda: path.read_text() == "second")
    assert log.read_text() == ("lofar-datalake serve: the run's access token could not be "
                               "renewed (HTTP 503 temporarily_unavailable); trying again in 0 s\n")


def eventually(check: Any, within: float = 20.0) -> bool:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_run_gets_a_password_or_the_tokens_path_never_both(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, secret_file: Path) -> None:
    credential = tmp_path / "bob.secret"
    credential.write_text("bobs-password\n")
    credential.chmod(0o600)
    bob = Researcher("bob", "", "bob", ("user.bob",), str(credential))
    with run_credentials.for_run(None, bob, tmp_path / "unused", None) as given:
        assert given.env == {PASSWORD_ENV: "bobs-password"}
        assert given.secrets == ["bobs-password"]
    monkeypatch.setattr(token_client, "fetch", lambda *_: AccessToken("a-token", 3600))
    path = tmp_path / "bearer-token"
    with run_credentials.for_run(ISSUER, alice(secret_file), path, None) as given:
        assert given.env == {"BEARER_TOKEN_FILE": str(path)}
        assert given.secrets == ["a-token"]
    with pytest.raises(TokenError, match="has a token client, but the service was given no "
                                         r"issuer \(--oidc-issuer\)"):
        run_credentials.for_service(None, alice(secret_file))


def test_serve_needs_the_issuer_for_token_clients_and_only_then(
        tmp_path: Path, secret_file: Path) -> None:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args(["--researchers", str(tmp_path / "r.yaml")])
    known = {"alice": alice(secret_file)}
    with pytest.raises(ValueError, match=r"^researchers alice have a token client: give "
                                         r"--oidc-issuer"):
        command.token_issuer(args, known, tmp_path / "ca.pem")
    password_only = Researcher("bob", "", "bob", ("user.bob",), str(secret_file))
    assert command.token_issuer(args, {"bob": password_only}, tmp_path / "ca.pem") is None
    args.oidc_issuer = "http://issuer.test"
    with pytest.raises(ValueError, match=r"^--oidc-issuer http://issuer\.test: must be an https"):
        command.token_issuer(args, known, tmp_path / "ca.pem")
