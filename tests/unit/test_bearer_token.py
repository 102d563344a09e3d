"""Token mode without servers: the bearer token is found where Rucio's client finds it (and the
plugin says where), read again before each Rucio call, storage request and FTS request, refused
with one clear error when missing or expired (never Rucio's browser login), handed to jobs in
their credential, and never printed."""

from __future__ import annotations

import base64
import configparser
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from datalake_core import bearer_token, rucio_connection, storage_credentials
from datalake_core import job_credential as jc
from datalake_core.errors import RucioAuthError
from datalake_core.fts_adapter import FtsAdapter
from datalake_core.rucio_connection import Endpoint, GuardedClient

SECRET_MARK = "pl4nted-s1gnature"
FAKE_UID = 987_654  # no real user's /tmp/bt_u<uid>


def jwt(marker: str = SECRET_MARK, expires_in: float = 3600, **claims: Any) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    body = {"iss": "https://issuer.test", "sub": "lofar-pipeline", "aud": ["rucio", "fts"],
            "exp": int(time.time() + expires_in), "wlcg.ver": "1.0", **claims}
    return f"{part({'alg': 'RS256', 'typ': 'at+jwt'})}.{part(body)}.{marker}"


# Set by the code under test (install, move_out_of_environment, _issue): restored afterwards.
TOUCHED = ("BEARER_TOKEN", "BEARER_TOKEN_FILE", "RUCIO_AUTH_TYPE", "RUCIO_CONFIG",
           "X509_USER_PROXY", "SNAKEMAKE_STORAGE_DATALAKE_JOB_CREDENTIAL")


@pytest.fixture()
def discovery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    """A clean discovery environment: no token anywhere, a private runtime dir, a fake uid."""
    from rucio.common.config import clean_cached_config

    for name in TOUCHED:
        monkeypatch.setenv(name, "")  # recorded, so that teardown restores it even if unset
        monkeypatch.delenv(name)
    runtime = tmp_path / "run"
    runtime.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setattr(os, "geteuid", lambda: FAKE_UID)
    tmp_file = Path(f"/tmp/bt_u{FAKE_UID}")
    tmp_file.unlink(missing_ok=True)
    yield SimpleNamespace(runtime=runtime, xdg=runtime / f"bt_u{FAKE_UID}", tmp=tmp_file,
                          named=tmp_path / "token")
    tmp_file.unlink(missing_ok=True)
    clean_cached_config()  # a job's configuration read by a test is not the next test's


@pytest.fixture()
def token_file(discovery: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Token mode with a token file an agent renews (`write_text` renews it)."""
    discovery.named.write_text(jwt("first") + "\n")
    monkeypatch.setenv("BEARER_TOKEN_FILE", str(discovery.named))
    monkeypatch.setenv("RUCIO_AUTH_TYPE", "oidc")
    return discovery.named


def test_discovery_finds_what_rucios_client_finds_and_says_where(
        discovery: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    from rucio.common.utils import wlcg_token_discovery

    def found() -> tuple[str | None, str | None]:
        token = bearer_token.discover()
        assert (token.value if token else None) == wlcg_token_discovery()
        return (token.value, token.source) if token else (None, None)

    assert found() == (None, None)
    discovery.tmp.write_text(jwt("tmp"))
    assert found() == (jwt("tmp"), f"/tmp/bt_u{FAKE_UID}")
    discovery.xdg.write_text(jwt("xdg"))
    assert found()[1] == f"$XDG_RUNTIME_DIR/bt_u{FAKE_UID} ({discovery.xdg})"
    discovery.named.write_text("   \n")  # empty: the next place
    monkeypatch.setenv("BEARER_TOKEN_FILE", str(discovery.named))
    assert str(found()[1]).startswith("$XDG_RUNTIME_DIR")
    discovery.named.write_text(f"  {jwt('file')}\n")
    assert found() == (jwt("file"), f"$BEARER_TOKEN_FILE ({discovery.named})")
    monkeypatch.setenv("BEARER_TOKEN", f" {jwt('env')} ")
    assert found() == (jwt("env"), "$BEARER_TOKEN")


def test_claims_are_read_unverified_and_opaque_tokens_have_none(
        discovery: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    token = bearer_token.BearerToken.parse(jwt(aud="rucio", exp=1_900_000_000), "here")
    assert (token.subject, token.audience, token.expires_at) == (
        "lofar-pipeline", ("rucio",), 1_900_000_000)
    assert "sub lofar-pipeline, aud rucio, iss https://issuer.test, expires 2030-" in (
        token.describe())
    odd = bearer_token.BearerToken.parse(jwt(aud=7, exp="soon", sub=None), "here")
    assert (odd.audience, odd.expires_at) == ((), None)
    opaque = bearer_token.BearerToken.parse("not-a-jwt", "here")
    assert opaque.expires_at is None and not opaque.expired()


def test_no_token_names_every_place_looked_and_how_to_get_one(
        discovery: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEARER_TOKEN_FILE", str(discovery.named))
    with pytest.raises(RucioAuthError) as caught:
        bearer_token.current()
    message = str(caught.value)
    for place in ("$BEARER_TOKEN,", str(discovery.named), str(discovery.xdg),
                  f"/tmp/bt_u{FAKE_UID}", "oidc-token", "htgettoken",
                  "lofar-datalake testbed token"):
        assert place in message


def test_an_expired_token_says_which_and_when(token_file: Path) -> None:
    token_file.write_text(jwt(expires_in=-600, exp=1_700_000_000))
    with pytest.raises(RucioAuthError) as caught:
        bearer_token.current()
    message = str(caught.value)
    assert f"the bearer token from $BEARER_TOKEN_FILE ({token_file})" in message
    assert "sub lofar-pipeline" in message and "aud rucio fts" in message
    assert "expires 2023-11-14 22:13:20 UTC) expired" in message
    assert "htgettoken" in message
    assert SECRET_MARK not in message and jwt() not in message


def test_an_unreadable_token_file_is_named(discovery: SimpleNamespace,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    discovery.named.mkdir()  # unreadable as a file, even for root
    monkeypatch.setenv("BEARER_TOKEN_FILE", str(discovery.named))
    with pytest.raises(RucioAuthError, match=r"token file \$BEARER_TOKEN_FILE .* cannot be read"):
        bearer_token.current()


class FakeRucio:
    """What GuardedClient drives: Rucio's client's token attributes and one call."""

    def __init__(self) -> None:
        self.auth_token = ""
        self.headers: dict[str, str] = {}
        self.sent: list[str] = []

    def whoami(self) -> dict[str, str]:
        self.sent.append(self.headers["X-Rucio-Auth-Token"])
        assert self.auth_token == self.headers["X-Rucio-Auth-Token"]
        return {"account": "lofar"}


def _guarded(auth_type: str = "oidc") -> tuple[FakeRucio, GuardedClient]:
    raw = FakeRucio()
    endpoint = Endpoint("https://rucio.test", "lofar", auth_type, "rucio.cfg", 10)
    return raw, GuardedClient(raw, endpoint, None)


def test_each_call_presents_the_token_in_the_file_now(token_file: Path) -> None:
    raw, client = _guarded()
    client.whoami()
    token_file.write_text(jwt("renewed"))  # the agent renews it mid-run
    client.whoami()
    assert raw.sent == [jwt("first"), jwt("renewed")]


def test_an_expired_token_stops_the_call_before_it_is_sent(token_file: Path) -> None:
    raw, client = _guarded()
    token_file.write_text(jwt(expires_in=-5))
    with pytest.raises(RucioAuthError, match="expired"):
        client.whoami()
    assert raw.sent == []


def test_other_auth_types_are_left_alone(token_file: Path) -> None:
    raw, client = _guarded("userpass")
    raw.headers["X-Rucio-Auth-Token"] = raw.auth_token = "rucio-token"
    client.whoami()
    assert raw.sent == ["rucio-token"]


def test_rucios_browser_login_is_replaced_by_the_clear_error(token_file: Path) -> None:
    from rucio.client.baseclient import BaseClient
    from rucio.common.exception import CannotAuthenticate

    # The name-mangled method exists in the Rucio client installed (fails after an upgrade
    # that renames it: then no_browser_login must follow).
    assert callable(getattr(BaseClient, rucio_connection.OIDC_LOGIN))
    rucio_connection.no_browser_login()
    login = getattr(BaseClient, rucio_connection.OIDC_LOGIN)
    refused = SimpleNamespace(auth_token=jwt("first"))
    with pytest.raises(CannotAuthenticate, match="refused the bearer token"):
        login(refused)
    token_file.write_text(jwt(expires_in=-5))
    with pytest.raises(RucioAuthError, match="expired"):
        login(refused)


def test_a_token_mode_client_without_a_token_fails_before_rucio_tries(
        discovery: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rucio.common.config import clean_cached_config

    config = tmp_path / "rucio.cfg"
    config.write_text("[client]\nrucio_host = https://127.0.0.1:9\nauth_host = "
                      "https://127.0.0.1:9\naccount = lofar\nauth_type = oidc\n")
    monkeypatch.setenv("RUCIO_CONFIG", str(config))
    clean_cached_config()
    assert rucio_connection.uses_tokens()
    with pytest.raises(RucioAuthError, match="no bearer token found"):
        rucio_connection.new_client(None, None, None, 5)


def test_storage_gets_the_current_token_as_a_bearer_header(token_file: Path) -> None:
    credential = storage_credentials.for_storage()
    assert credential.cert is None
    assert credential.headers == {"Authorization": f"Bearer {jwt('first')}"}
    assert "first" not in repr(credential)
    token_file.write_text(jwt("renewed"))
    assert storage_credentials.for_storage().headers["Authorization"].endswith("renewed")


def test_fts_gets_the_discovered_token_at_each_request(token_file: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    assert storage_credentials.for_fts("explicit") == "explicit"
    monkeypatch.setattr(FtsAdapter, "_context", lambda self, token: ("context", token))
    fts = FtsAdapter("https://fts.test", token=storage_credentials.for_fts(None))
    assert fts.context == ("context", jwt("first"))
    assert fts._fresh() is fts.context
    token_file.write_text(jwt("renewed"))
    assert fts._fresh() == ("context", jwt("renewed"))
    monkeypatch.setenv("RUCIO_AUTH_TYPE", "x509_proxy")
    assert storage_credentials.for_fts(None) is None


def test_messages_from_elsewhere_lose_anything_shaped_like_a_token() -> None:
    endpoint = Endpoint("https://rucio.test", "lofar", "oidc", "rucio.cfg", 10)
    assert SECRET_MARK not in endpoint._clean(f"refused {jwt()} for lofar")
    assert "***" in bearer_token.redact(f"Bearer {jwt()}")
    assert SECRET_MARK not in repr(bearer_token.BearerToken.parse(jwt(), "here"))


def test_a_token_in_the_environment_moves_to_a_private_file(
        discovery: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEARER_TOKEN", jwt("env"))
    bearer_token.move_out_of_environment()
    assert "BEARER_TOKEN" not in os.environ
    moved = Path(os.environ["BEARER_TOKEN_FILE"])
    assert stat.S_IMODE(moved.stat().st_mode) == 0o600
    assert stat.S_IMODE(moved.parent.stat().st_mode) == 0o700
    assert bearer_token.current().value == jwt("env")


def test_a_job_authenticates_with_the_bearer_token_it_was_given(
        discovery: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEARER_TOKEN", "inherited-from-the-submitter")
    credential = jc.JobCredential(
        account="lofar", run_id="run-1", expires_at=time.time() + 600,
        rucio_config={"client": {"rucio_host": "https://rucio.test", "auth_type": "oidc"}},
        token=jwt("job"), bearer=True)
    config = jc.install(credential)
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(config)
    assert parser["client"]["auth_type"] == "oidc"
    assert "BEARER_TOKEN" not in os.environ
    token_file = Path(os.environ["BEARER_TOKEN_FILE"])
    assert token_file.parent == config.parent
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert bearer_token.current().value == jwt("job")
    assert not Path(parser["client"]["auth_token_file_path"]).exists()
    assert "job" not in repr(credential)


def test_the_submitter_gives_jobs_the_bearer_token_and_rediscovers_it(
        token_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from datalake_core.job_auth import JobAuthority
    from datalake_core.settings import ProviderConfig

    monkeypatch.chdir(tmp_path)
    authority = JobAuthority(ProviderConfig.parse({}), as_job=False)
    client = SimpleNamespace(host="https://rucio.test", auth_type="oidc",
                             auth_host="https://rucio.test", ca_cert=True)
    adapter = SimpleNamespace(client=client, account="lofar")
    authority._issue(adapter, "run-1")  # type: ignore[arg-type]
    try:
        path = Path(os.environ["SNAKEMAKE_STORAGE_DATALAKE_JOB_CREDENTIAL"])
        issued = jc.read(path)
        assert issued.bearer and issued.token == jwt("first")
        assert issued.rucio_config["client"]["auth_type"] == "oidc"
        assert issued.expires_at == bearer_token.current().expires_at
        token_file.write_text(jwt("renewed"))
        assert authority._renewer is not None
        assert authority._renewer._issue().token == jwt("renewed")
    finally:
        if authority._renewer is not None:
            authority._renewer.stop()


def test_the_jobs_private_copy_of_the_token_is_gone_when_the_job_ends() -> None:
    script = ("import time; from datalake_core import job_credential as jc; "
              "print(jc.install(jc.JobCredential('lofar', 'run-1', time.time() + 600, "
              "{'client': {}}, 'tok', bearer=True)).parent)")
    env = {k: v for k, v in os.environ.items() if k not in TOUCHED}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=60, check=True)
    private = Path(done.stdout.strip())
    assert private.name.startswith("lofar-datalake-job-") and not private.exists()
