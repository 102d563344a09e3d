"""WLCG bearer tokens at the storage and at FTS: what a token from the issuer allows, and what
tokens it never signed, or signed for another service, or that have expired, do not.

A real issuer process (servers/issuer.py) signs the tokens; real WebDAV and FTS processes check
them against it. The callers run as an unprivileged local account (`nobody`, through
`setpriv`) holding nothing but a token, handed to curl in a private header file (never on a
command line, where `ps` would show it).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fts_support import Service, wait_for, webdav_servers
from token_support import (
    ELSEWHERE,
    claims_of,
    expired_token,
    kid_of,
    signed_by_a_stranger,
    token_options,
    token_webdav,
    unsigned,
)
from unprivileged import as_unprivileged, hand

_numbers = itertools.count()


@dataclass(frozen=True)
class Reply:
    status: int  # 0 without an HTTP answer
    headers: str
    body: str


@dataclass(frozen=True)
class Account:
    """The unprivileged account: the CA to trust, a home to keep its header files in."""

    ca: Path
    home: Path
    cert: Path  # a copy of the testbed's client PEM

    def request(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        *,
        token: str | None = None,
        cert: bool = False,
        headers: tuple[str, ...] = (),
    ) -> Reply:
        command = ["curl", "-sS", "--path-as-is", "--max-time", "30", "-D", "-"]
        command += ["-w", "\n%{http_code}", "--cacert", str(self.ca), "-X", method]
        if body is not None:
            command += ["--data-binary", "@-"]
        for header in headers:
            command += ["-H", header]
        if token is not None:
            command += ["-H", f"@{self._header_file(token)}"]
        if cert:
            command += ["--cert", str(self.cert), "--key", str(self.cert)]
        done = subprocess.run(
            [*as_unprivileged(), *command, url], input=body or b"", capture_output=True, timeout=60
        )
        text, _, status = done.stdout.decode().rpartition("\n")
        head, _, content = text.partition("\r\n\r\n")
        return Reply(int(status or 0), head, content)

    def _header_file(self, token: str) -> Path:
        path = self.home / f"bearer-{next(_numbers)}.header"
        path.write_text(f"Authorization: Bearer {token}\n")
        hand(path)
        return path


@pytest.fixture(scope="module")
def base() -> Iterator[Path]:
    """Outside pytest's private temporary tree, so that the account can reach its files."""
    made = Path(tempfile.mkdtemp(prefix="token-auth-"))
    made.chmod(0o755)
    try:
        yield made
    finally:
        shutil.rmtree(made, ignore_errors=True)


@pytest.fixture(scope="module")
def account(pki, base) -> Account:
    home = base / "home"
    home.mkdir(mode=0o755)
    ca, cert = home / "ca.pem", home / "x509-proxy.pem"
    shutil.copyfile(pki.ca_cert, ca)
    ca.chmod(0o644)
    shutil.copyfile(pki.proxy, cert)
    hand(cert)
    return Account(ca, home, cert)


@pytest.fixture(scope="module")
def dav(base, pki, issuer) -> Iterator[tuple[str, Path]]:
    """A private RSE (reading needs a credential too) that accepts the issuer's tokens."""
    root = base / "dav"
    with token_webdav(root, pki, issuer, anonymous_read=False) as url:
        yield url, root


@pytest.fixture(scope="module")
def invalid_tokens(issuer) -> dict[str, str]:
    good = issuer.token("writer")
    claims = claims_of(good)
    return {
        "wrong audience": issuer.token("writer", audience=ELSEWHERE),
        "expired": expired_token(issuer),
        "signed by another key": signed_by_a_stranger(claims),
        "another key posing as the issuer's": signed_by_a_stranger(claims, kid=kid_of(good)),
        "alg none": unsigned(claims),
        "not a JWT": "definitely-not-a-token",
    }


# --- storage ----------------------------------------------------------------------------------


def test_a_token_with_storage_modify_writes_and_deletes(account, issuer, dav):
    url, root = dav
    token = issuer.token("writer")
    reply = account.request("PUT", f"{url}/tok/deep/new.bin", b"token bytes", token=token)
    assert reply.status == 201, reply
    assert (root / "tok" / "deep" / "new.bin").read_bytes() == b"token bytes"
    reply = account.request("GET", f"{url}/tok/deep/new.bin", token=token)
    assert (reply.status, reply.body) == (200, "token bytes")
    assert account.request("DELETE", f"{url}/tok/deep/new.bin", token=token).status == 204
    assert not (root / "tok" / "deep" / "new.bin").exists()


def test_a_read_only_token_reads_but_cannot_write(account, issuer, dav):
    url, root = dav
    (root / "readable.txt").write_bytes(b"private bytes")
    token = issuer.token("reader")
    reply = account.request("GET", f"{url}/readable.txt", token=token)
    assert (reply.status, reply.body) == (200, "private bytes")
    reply = account.request("PUT", f"{url}/ro/new.bin", b"not wanted", token=token)
    assert reply.status == 403, reply
    assert "storage.create:/ro/new.bin or storage.modify:/ro/new.bin" in reply.body
    assert 'error="insufficient_scope"' in reply.headers
    assert not (root / "ro").exists()
    reply = account.request("DELETE", f"{url}/readable.txt", token=token)
    assert reply.status == 403 and "storage.modify:/readable.txt" in reply.body
    assert (root / "readable.txt").exists()


@pytest.mark.parametrize(
    "kind",
    [
        "wrong audience",
        "expired",
        "signed by another key",
        "another key posing as the issuer's",
        "alg none",
        "not a JWT",
    ],
)
def test_invalid_tokens_are_refused_with_401(account, dav, invalid_tokens, kind):
    url, root = dav
    (root / "kept.txt").write_bytes(b"stays")
    token = invalid_tokens[kind]
    for method, path, body in (
        ("PUT", "/invalid/new.bin", b"not wanted"),
        ("GET", "/kept.txt", None),
        ("DELETE", "/kept.txt", None),
    ):
        reply = account.request(method, f"{url}{path}", body, token=token)
        assert reply.status == 401, (kind, method, reply)
        assert 'WWW-Authenticate: Bearer error="invalid_token"' in reply.headers, reply
        assert "invalid token:" in reply.body
        assert token not in reply.body + reply.headers
    assert not (root / "invalid").exists()
    assert (root / "kept.txt").read_bytes() == b"stays"


def test_a_path_scoped_token_is_refused_outside_its_path(account, issuer, dav):
    url, root = dav
    scope = "storage.read:/data storage.create:/data storage.modify:/data"
    token = issuer.token("writer", scope=scope)
    assert account.request("PUT", f"{url}/data/in.bin", b"in", token=token).status == 201
    for path in ("/database/out.bin", "/out.bin", "/data/../database/out.bin"):
        reply = account.request("PUT", f"{url}{path}", b"out", token=token)
        assert reply.status in (400, 403), (path, reply)
    assert (
        "storage.create:/database/out.bin"
        in account.request("PUT", f"{url}/database/out.bin", b"out", token=token).body
    )
    moved = account.request(
        "MOVE", f"{url}/data/in.bin", token=token, headers=(f"Destination: {url}/moved.bin",)
    )
    assert moved.status == 403 and "storage.modify:/moved.bin" in moved.body, moved
    assert not (root / "database").exists() and not (root / "out.bin").exists()
    assert (root / "data" / "in.bin").read_bytes() == b"in"
    assert not (root / "moved.bin").exists()


def test_certificates_still_work_beside_tokens_and_nothing_is_refused_without_either(account, dav):
    url, root = dav
    assert account.request("PUT", f"{url}/cert/new.bin", b"c", cert=True).status == 201
    assert account.request("PUT", f"{url}/anon/new.bin", b"a").status == 403
    assert account.request("GET", f"{url}/cert/new.bin").status == 403  # private storage
    assert not (root / "anon").exists()


def test_storage_without_an_issuer_refuses_every_token(account, issuer, pki):
    base = Path(tempfile.mkdtemp(prefix="token-noissuer-"))
    base.chmod(0o755)
    try:
        with webdav_servers(base, pki, count=1) as [(url, root)]:
            (root / "open.txt").write_bytes(b"public")
            token = issuer.token("writer")
            for method, body in (("PUT", b"x"), ("GET", None)):
                reply = account.request(method, f"{url}/open.txt", body, token=token)
                assert reply.status == 401, (method, reply)
                assert "trusts no token issuer" in reply.body
            assert (root / "open.txt").read_bytes() == b"public"
    finally:
        shutil.rmtree(base, ignore_errors=True)


# --- FTS --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fts(tmp_path_factory, pki, issuer, base) -> Iterator[Service]:
    """FTS with no certificate of its own for storage: only a job's token can write there."""
    storage = base / "fts-storage"
    storage.mkdir(mode=0o755)
    svc = Service(tmp_path_factory.mktemp("fts-state"), pki, [storage], ca_bundle=pki.ca_cert)
    svc.args += token_options(issuer, svc.url)
    svc.start()
    yield svc
    svc.stop()


def _job(source: str, destination: str) -> dict[str, object]:
    return {"files": [{"sources": [source], "destinations": [destination]}], "params": {}}


def _post(account: Account, url: str, body: object, token: str | None = None) -> Reply:
    return account.request(
        "POST",
        url,
        json.dumps(body).encode(),
        token=token,
        headers=("Content-Type: application/json",),
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/whoami"),
        ("POST", "/jobs"),
        ("GET", "/jobs"),
        ("GET", "/jobs/0123"),
        ("DELETE", "/jobs/0123"),
        ("GET", "/delegation/0123456789abcdef"),
    ],
)
def test_fts_refuses_callers_with_neither_token_nor_certificate(account, fts, method, path):
    body = json.dumps(_job("file:///etc/hostname", "file:///tmp/x")).encode()
    reply = account.request(method, f"{fts.url}{path}", body if method == "POST" else None)
    assert reply.status == 401, reply
    assert "client certificate" in json.loads(reply.body)["message"]
    assert fts.get("/jobs").json() == []


def test_fts_refuses_invalid_tokens(account, fts, invalid_tokens, dav):
    url, _ = dav
    job = _job(f"{url}/readable.txt", f"{url}/never.bin")
    for kind, token in invalid_tokens.items():
        reply = _post(account, f"{fts.url}/jobs", job, token)
        assert reply.status == 401, (kind, reply)
        assert "Invalid bearer token" in json.loads(reply.body)["message"], kind
        assert account.request("GET", f"{fts.url}/whoami", token=token).status == 401
    assert fts.get("/jobs").json() == []


def test_fts_names_a_token_user_by_the_token_subject(account, fts, issuer):
    token = issuer.token("writer")
    reply = account.request("GET", f"{fts.url}/whoami", token=token)
    assert reply.status == 200, reply
    who = json.loads(reply.body)
    assert (who["user_dn"], who["method"]) == (claims_of(token)["sub"], "oauth2")


def test_fts_copies_a_token_users_job_with_the_token(account, fts, issuer, dav):
    url, root = dav
    data = os.urandom(300_000)
    (root / "fts-src").mkdir(exist_ok=True)
    (root / "fts-src" / "in.bin").write_bytes(data)
    token = issuer.token("writer")
    job = _job(f"{url}/fts-src/in.bin", f"davs://127.0.0.1:{url.rsplit(':', 1)[1]}/fts-out/x.bin")
    reply = _post(account, f"{fts.url}/jobs", job, token)  # no delegation first
    assert reply.status == 200, reply
    job_id = json.loads(reply.body)["job_id"]
    status = fts.wait(job_id)
    assert status["job_state"] == "FINISHED", status
    assert status["user_dn"] == claims_of(token)["sub"]
    assert (root / "fts-out" / "x.bin").read_bytes() == data
    # The token stays private to the service: not in any answer or log, its store 0600, and
    # dropped once the job has ended.
    answers = [fts.get(p).text for p in ("/jobs", f"/jobs/{job_id}", f"/jobs/{job_id}/files")]
    answers.append(account.request("GET", f"{fts.url}/jobs/{job_id}", token=token).body)
    logs = [(fts.state_dir / name).read_text() for name in ("fts.log", "service.out")]
    for text in answers + logs:
        assert token not in text and token.split(".")[2] not in text
    database = fts.state_dir / "fts.sqlite"
    assert stat.S_IMODE(database.stat().st_mode) == 0o600

    def dropped() -> bool:
        with sqlite3.connect(database) as db:
            return db.execute("SELECT COUNT(*) FROM job_tokens").fetchone()[0] == 0

    wait_for(dropped, what="the job's token to be dropped")


def test_fts_copies_with_only_the_token_users_own_scopes(account, fts, issuer, dav):
    url, root = dav
    (root / "fts-src").mkdir(exist_ok=True)
    (root / "fts-src" / "ro.bin").write_bytes(b"read me")
    token = issuer.token("reader")  # may read the source, not write the destination
    reply = _post(account, f"{fts.url}/jobs", _job(f"{url}/fts-src/ro.bin", f"{url}/ro/x"), token)
    assert reply.status == 200, reply
    status = fts.wait(json.loads(reply.body)["job_id"])
    assert status["job_state"] == "FAILED", status
    files = fts.get(f"/jobs/{status['job_id']}/files").json()
    assert "HTTP 403" in files[0]["reason"], files
    assert not (root / "ro").exists()
