"""The FTS stand-in with a token issuer configured, called in-process as a WSGI app: who a token
user is, that they submit without delegating, and that their token stays out of every answer
(the issuer's keys are answered in-process; tests/integration/test_token_auth.py runs it all for
real)."""

from __future__ import annotations

import io
import json
import stat
import time
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from lofar_datalake_testbed.servers import bearer
from lofar_datalake_testbed.servers.fts.app import App
from lofar_datalake_testbed.servers.fts.store import Store
from lofar_datalake_testbed.servers.fts.worker import Engine

ISSUER = "https://127.0.0.1:9999"
FTS = "https://127.0.0.1:8446"
JOB = {"files": [{"sources": ["file:///s/x"], "destinations": ["https://dav/d/x"]}]}


@pytest.fixture()
def app(tmp_path: Path, key, monkeypatch):
    published = KeySet([key]).as_dict(private=False)

    def answer(self, url):
        if url.endswith("/.well-known/openid-configuration"):
            return {"issuer": ISSUER, "jwks_uri": f"{ISSUER}/jwks"}
        return published

    monkeypatch.setattr(bearer.Verifier, "_get_json", answer)
    verifier = bearer.Verifier(ISSUER, [FTS, bearer.ANY_AUDIENCE])
    store = Store(tmp_path / "fts.sqlite")
    app = App(store, Engine(store), vo="lofar", storage_roots=[Path("/s")], verifier=verifier)
    app.store = store  # type: ignore[attr-defined]
    yield app
    store.close()


def _token(key: RSAKey, sub: str = "alice", aud: str = FTS) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": sub, "aud": [aud], "wlcg.ver": "1.0", "exp": now + 60,
              "iat": now, "scope": "storage.read:/ storage.modify:/"}  # fmt: skip
    return jwt.encode({"alg": "RS256", "kid": key.kid, "typ": "at+jwt"}, claims, key)


def call(app, method, path, body=None, token=None):
    raw = json.dumps(body).encode() if body else b""
    path, _, query = path.partition("?")
    env = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query}
    if token is not None:
        env["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    env.update({"wsgi.input": io.BytesIO(raw), "CONTENT_LENGTH": str(len(raw))})
    setup_testing_defaults(env)
    answer = {}

    def start_response(status, headers):
        answer["status"] = int(status.split()[0])

    payload = b"".join(app(env, start_response))
    return answer["status"], json.loads(payload) if payload else None


def test_a_token_user_is_named_by_the_token_subject(app, key):
    status, who = call(app, "GET", "/whoami", token=_token(key, "alice"))
    assert (status, who["user_dn"], who["method"]) == (200, "alice", "oauth2")


def test_token_users_submit_without_delegating_and_their_token_stays_private(app, key, tmp_path):
    token = _token(key)
    status, submitted = call(app, "POST", "/jobs", JOB, token=token)
    assert status == 200, submitted
    job_id = submitted["job_id"]
    assert app.store.token(job_id) == token
    for path in ("/jobs", f"/jobs/{job_id}", f"/jobs/{job_id}/files", "/jobs?fields=job_id,_token"):
        status, body = call(app, "GET", path, token=token)
        assert status == 200 and token not in json.dumps(body), path
    assert stat.S_IMODE((tmp_path / "fts.sqlite").stat().st_mode) == 0o600
    assert call(app, "DELETE", f"/jobs/{job_id}", token=token)[0] == 200
    assert app.store.token(job_id) is None  # dropped once the job has ended


def test_invalid_tokens_and_no_credential_are_refused_everywhere(app, key):
    stranger = RSAKey.generate_key(2048, private=True)
    stranger.ensure_kid()
    for token in (_token(stranger), _token(key, aud="https://elsewhere"), "junk"):
        for method, path in (("GET", "/"), ("GET", "/whoami"), ("POST", "/jobs"), ("GET", "/jobs")):
            status, body = call(app, method, path, JOB, token=token)
            assert status == 401 and "Invalid bearer token" in body["message"], (token, path)
            assert token not in body["message"]
    status, body = call(app, "POST", "/jobs", JOB)
    assert status == 401 and "or a bearer token from " + ISSUER in body["message"]
    assert call(app, "GET", "/jobs", token=_token(key))[1] == []


def test_an_unreachable_issuer_is_503_not_a_verdict_on_the_token(app, key, monkeypatch):
    def unreachable(self, url):
        raise bearer.IssuerUnavailable(f"cannot fetch {url}: connection refused")

    monkeypatch.setattr(bearer.Verifier, "_get_json", unreachable)
    status, body = call(app, "GET", "/whoami", token=_token(key))
    assert status == 503 and "cannot be checked now" in body["message"]
