"""The FTS stand-in's HTTP surface, called in-process as a WSGI app (no copies are run)."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import logging
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from lofar_datalake_testbed.servers.fts.app import App
from lofar_datalake_testbed.servers.fts.store import Store
from lofar_datalake_testbed.servers.fts.worker import Engine

JOB = {"files": [{"sources": ["file:///s/x"], "destinations": ["file:///d/x"]}]}


def _certificate(common_name: str, hours: int = 12) -> tuple[bytes, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=hours))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), key


def _verified(common_name: str) -> dict[str, str]:
    """What the TLS layer puts in the environ for a client certificate it verified."""
    return {
        "SSL_CLIENT_VERIFY": "SUCCESS",
        "SSL_CLIENT_CERT": _certificate(common_name)[0].decode(),
    }


USER = _verified("user")


def _proxy_pem(hours: int) -> bytes:
    return _certificate("tester", hours)[0]


@pytest.fixture()
def app(tmp_path: Path):
    store = Store(tmp_path / "fts.sqlite")
    roots = [Path("/s"), Path("/d")]
    app = App(store, Engine(store), vo="lofar", storage_roots=roots)  # engine not started
    dlg = call(app, "GET", "/whoami")[1]["delegation_id"]
    assert call(app, "PUT", f"/delegation/{dlg}/credential", _proxy_pem(12))[0] == 201
    yield app
    store.close()


def call(app, method, path, body=None, **environ):
    """One request; by USER unless the environ names another caller (or none: anonymous=True)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode() if body else b""
    anonymous = environ.pop("anonymous", False)
    env = {"REQUEST_METHOD": method, "PATH_INFO": path}
    if not anonymous and "SSL_CLIENT_CERT" not in environ:
        env.update(USER)
    env.update(environ)
    path_only, _, query = path.partition("?")
    env.update(PATH_INFO=path_only, QUERY_STRING=query)
    env.update({"wsgi.input": io.BytesIO(raw), "CONTENT_LENGTH": str(len(raw))})
    setup_testing_defaults(env)
    answer = {}

    def start_response(status, headers):
        answer["status"] = int(status.split()[0])
        answer["headers"] = dict(headers)

    payload = b"".join(app(env, start_response))
    kind = answer["headers"]["Content-Type"]
    data = json.loads(payload) if payload and kind.startswith("application/json") else payload
    return answer["status"], data


def _token(subject: str) -> str:
    claims = base64.urlsafe_b64encode(json.dumps({"sub": subject}).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJub25lIn0.{claims}.sig"


def test_root_gives_the_api_version(app):
    status, body = call(app, "GET", "/")
    assert status == 200
    assert body["api"] == {"major": 3, "minor": 12, "patch": 0}


def test_double_slashes_are_accepted(app):
    status, body = call(app, "POST", "//jobs", JOB)
    assert status == 200
    status, job = call(app, "GET", f"//jobs/{body['job_id']}")
    assert (status, job["job_state"], job["http_status"]) == (200, "SUBMITTED", "200 Ok")


def test_malformed_bodies_are_400_with_a_message(app):
    status, body = call(app, "POST", "/jobs", b"{not json")
    assert status == 400
    assert body["status"] == "400 Bad Request"
    assert "JSON" in body["message"]


def test_unknown_paths_and_methods(app):
    assert call(app, "GET", "/nowhere")[0] == 404
    assert call(app, "PUT", "/jobs")[0] == 405


def test_missing_jobs_are_404_alone_and_207_among_others(app):
    _, submitted = call(app, "POST", "/jobs", JOB)
    job_id = submitted["job_id"]
    status, body = call(app, "GET", "/jobs/missing")
    assert (status, body["http_status"]) == (404, "404 Not Found")
    status, body = call(app, "GET", f"/jobs/{job_id},missing?files=file_state,file_metadata")
    assert status == 207
    assert [b["http_status"] for b in body] == ["200 Ok", "404 Not Found"]
    assert body[0]["files"] == [{"file_state": "SUBMITTED", "file_metadata": None}]


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/"), ("GET", "/whoami"), ("POST", "/jobs"), ("GET", "/jobs")]
)
def test_every_endpoint_refuses_callers_without_a_verified_certificate(app, method, path):
    status, body = call(app, method, path, JOB, anonymous=True)
    assert status == 401 and "client certificate" in body["message"]
    unverified = {"SSL_CLIENT_VERIFY": "NONE", "SSL_CLIENT_CERT": USER["SSL_CLIENT_CERT"]}
    assert call(app, method, path, JOB, **unverified)[0] == 401
    # No token issuer: an unsigned token naming anyone would otherwise be believed.
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {_token('alice')}"}
    status, body = call(app, method, path, JOB, anonymous=True, **bearer)
    assert status == 401 and "tokens are not accepted" in body["message"]
    assert call(app, "GET", "/jobs")[1] == []  # nothing was submitted


def test_certificate_users_are_named_by_subject(app):
    status, body = call(app, "GET", "/whoami", **_verified("alice"))
    assert (status, body["user_dn"], body["method"]) == (200, "/CN=alice", "certificate")


def test_local_urls_outside_the_storage_roots_are_refused(app):
    for job in (
        {"files": [{"sources": ["file:///etc/hostname"], "destinations": ["file:///d/x"]}]},
        {"files": [{"sources": ["file:///s/x"], "destinations": ["file:///tmp/x"]}]},
        {"files": [{"sources": ["file:///s/../etc/passwd"], "destinations": ["file:///d/x"]}]},
        {"files": [{"sources": ["file://elsewhere/s/x"], "destinations": ["file:///d/x"]}]},
        {"files": [{"sources": ["file:///s/x", "file:///etc/x"], "destinations": ["file:///d/x"]}]},
    ):
        status, body = call(app, "POST", "/jobs", job)
        assert status == 400, job
        assert "outside the storage roots" in body["message"]
    assert call(app, "GET", "/jobs")[1] == []


def test_certificate_users_must_delegate_before_submitting(app):
    cert = _verified("tester")
    assert call(app, "POST", "/jobs", JOB, **cert)[0] == 419
    dlg = call(app, "GET", "/whoami", **cert)[1]["delegation_id"]
    assert call(app, "GET", f"/delegation/{dlg}", **cert) == (200, None)
    status, csr = call(app, "GET", f"/delegation/{dlg}/request", **cert)
    assert status == 200 and csr.startswith(b"-----BEGIN CERTIFICATE REQUEST-----")
    assert call(app, "PUT", f"/delegation/{dlg}/credential", b"junk", **cert)[0] == 400
    assert call(app, "PUT", f"/delegation/{dlg}/credential", _proxy_pem(0), **cert)[0] == 201
    assert call(app, "POST", "/jobs", JOB, **cert)[0] == 419  # less than an hour left
    assert call(app, "PUT", f"/delegation/{dlg}/credential", _proxy_pem(12), **cert)[0] == 201
    assert call(app, "POST", "/jobs", JOB, **cert)[0] == 200
    assert call(app, "GET", "/delegation/0123456789abcdef", **cert)[0] == 403
    assert call(app, "DELETE", f"/delegation/{dlg}", **cert)[0] == 204


def test_cancel_and_priority_answer_per_job(app):
    job_id = call(app, "POST", "/jobs", JOB)[1]["job_id"]
    status, body = call(app, "POST", f"/jobs/{job_id}", {"params": {"priority": 5}})
    assert (status, body["priority"]) == (200, 5)
    status, body = call(app, "DELETE", f"/jobs/{job_id}")
    assert (status, body["job_state"], body["reason"]) == (
        200,
        "CANCELED",
        "Job canceled by the user",
    )
    status, body = call(app, "DELETE", f"/jobs/{job_id},missing")
    assert status == 207
    assert [b["http_status"] for b in body] == ["304 Not Modified", "404 Not Found"]
    files = call(app, "GET", f"/jobs/{job_id}/files")[1]
    assert [f["file_state"] for f in files] == ["CANCELED"]
    assert call(app, "GET", f"/jobs/{job_id}/files/{files[0]['file_id']}")[0] == 200
    assert call(app, "GET", f"/jobs/{job_id}/dm") == (200, [])
    assert call(app, "GET", f"/jobs/{job_id}/job_state") == (200, "CANCELED")


def test_requests_are_logged_without_credentials(app, caplog):
    token = _token("bob")
    with caplog.at_level(logging.INFO, logger="lofar_datalake.fts.requests"):
        call(app, "GET", "/whoami", anonymous=True, HTTP_AUTHORIZATION=f"Bearer {token}")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and '"GET /whoami" 401' in lines[0]
    assert token not in lines[0]


def test_duplicate_deterministic_submission_is_409(app):
    body = {**JOB, "params": {"id_generator": "deterministic", "sid": "request-1"}}
    status, first = call(app, "POST", "/jobs", body)
    assert status == 200
    status, again = call(app, "POST", "/jobs", body)
    assert (status, again["status"]) == (409, "409 Conflict")
    listed = call(app, "GET", "/jobs")[1]
    assert [j["job_id"] for j in listed] == [first["job_id"]]
