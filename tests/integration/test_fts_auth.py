"""Who may submit to the testbed's FTS service, and which local files a job may touch.

The service runs as root and copies `file://` URLs with its own rights, so it must answer only
holders of a testbed-CA certificate and refuse local paths outside its storage roots. The
callers here run as an unprivileged local account (`nobody`, through `setpriv`) that owns
nothing but what a test hands it, as any local user of the machine could.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fts_support import Service, token
from unprivileged import UNPRIVILEGED, as_unprivileged

from lofar_datalake_testbed import fts_delegation


@dataclass(frozen=True)
class Reply:
    status: int  # 0 without an HTTP answer
    body: str


@dataclass(frozen=True)
class Account:
    """The unprivileged account's view: the CA to trust and the client PEM handed to it."""

    ca: Path
    cert: Path  # a copy of the testbed's client PEM (certificate and key), owned by the account

    def request(
        self,
        method: str,
        url: str,
        body: object = None,
        *,
        with_cert: bool = True,
        headers: tuple[str, ...] = (),
    ) -> Reply:
        command = ["curl", "-sS", "--max-time", "30", "-w", "\n%{http_code}"]
        command += ["--cacert", str(self.ca), "-X", method]
        for header in ("Content-Type: application/json", *headers):
            command += ["-H", header]
        if body is not None:
            command += ["--data-binary", "@-"]
        if with_cert:
            command += ["--cert", str(self.cert), "--key", str(self.cert)]
        payload = json.dumps(body).encode() if body is not None else b""
        done = subprocess.run(
            [*as_unprivileged(), *command, url], input=payload, capture_output=True, timeout=60
        )
        text, _, status = done.stdout.decode().rpartition("\n")
        return Reply(int(status or 0), text)


def _job(source: str, destination: str) -> dict[str, object]:
    return {"files": [{"sources": [source], "destinations": [destination]}], "params": {}}


@pytest.fixture(scope="module")
def places() -> Iterator[dict[str, Path]]:
    """Outside pytest's private temporary tree, so that the account can reach its files."""
    base = Path(tempfile.mkdtemp(prefix="fts-auth-"))
    base.chmod(0o755)
    paths = {name: base / name for name in ("storage", "elsewhere", "home")}
    for path in paths.values():
        path.mkdir(mode=0o755)
    # Another user's private file, and the storage's own data.
    secret = paths["elsewhere"] / "secret.txt"
    secret.write_text("root's eyes only\n")
    secret.chmod(0o600)
    (paths["storage"] / "data.bin").write_bytes(b"stored bytes")
    (paths["storage"] / "link-out").symlink_to(paths["elsewhere"])
    try:
        yield paths
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, pki, places) -> Iterator[Service]:
    svc = Service(tmp_path_factory.mktemp("fts-state"), pki, [places["storage"]]).start()
    # FTS refuses certificate holders without a delegation (419) before it looks at the job.
    fts_delegation.delegate(svc.url, pki.proxy, pki.ca_cert)
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def account(pki, places) -> Account:
    home = places["home"]
    ca, cert = home / "ca.pem", home / "x509-proxy.pem"
    shutil.copyfile(pki.ca_cert, ca)
    ca.chmod(0o644)
    shutil.copyfile(pki.proxy, cert)
    cert.chmod(0o600)
    if os.geteuid() == 0:
        shutil.chown(cert, UNPRIVILEGED, "nogroup")
    return Account(ca, cert)


def test_requests_without_a_certificate_are_refused(service, account, places):
    stolen = places["storage"] / "hostname"
    job = _job("file:///etc/hostname", stolen.as_uri())
    for method, path, body in (("GET", "/", None), ("POST", "/jobs", job), ("GET", "/jobs", None)):
        reply = account.request(method, f"{service.url}{path}", body, with_cert=False)
        assert reply.status == 401, reply
        assert "client certificate" in json.loads(reply.body)["message"]
    # An unsigned token naming anyone is not a credential either.
    bearer = (f"Authorization: Bearer {token('root')}",)
    reply = account.request("POST", f"{service.url}/jobs", job, with_cert=False, headers=bearer)
    assert reply.status == 401 and "tokens are not accepted" in reply.body
    assert not stolen.exists()
    assert service.get("/jobs").json() == []


@pytest.mark.parametrize(
    "source",
    [
        "file:///etc/hostname",
        "secret",  # another user's private file
        "via-link",  # a symlink in the storage leading out of it
        "via-dotdot",
    ],
)
def test_sources_outside_the_storage_roots_are_refused(service, account, places, source):
    secret = places["elsewhere"] / "secret.txt"
    url = {
        "secret": secret.as_uri(),
        "via-link": (places["storage"] / "link-out" / "secret.txt").as_uri(),
        "via-dotdot": f"file://{places['storage']}/../elsewhere/secret.txt",
    }.get(source, source)
    copy = places["storage"] / f"copy-{source.rsplit('/', 1)[-1]}"
    reply = account.request("POST", f"{service.url}/jobs", _job(url, copy.as_uri()))
    assert reply.status == 400, reply
    assert "outside the storage roots" in reply.body and url in reply.body
    assert not copy.exists()
    assert service.get("/jobs").json() == []


@pytest.mark.parametrize("where", ["elsewhere", "via-link", "via-dotdot", "other-host"])
def test_destinations_outside_the_storage_roots_are_refused(service, account, places, where):
    source = (places["storage"] / "data.bin").as_uri()
    target = places["elsewhere"] / f"planted-{where}"
    url = {
        "elsewhere": target.as_uri(),
        "via-link": (places["storage"] / "link-out" / target.name).as_uri(),
        "via-dotdot": f"file://{places['storage']}/../elsewhere/{target.name}",
        "other-host": f"file://otherhost{places['storage']}/{target.name}",
    }[where]
    reply = account.request("POST", f"{service.url}/jobs", _job(source, url))
    assert reply.status == 400, reply
    assert "outside the storage roots" in reply.body and url in reply.body
    assert not target.exists()
    assert service.get("/jobs").json() == []


def test_copies_inside_the_storage_roots_are_accepted(service, account, places):
    source = places["storage"] / "data.bin"
    copy = places["storage"] / "sub" / "copy.bin"
    reply = account.request("POST", f"{service.url}/jobs", _job(source.as_uri(), copy.as_uri()))
    assert reply.status == 200, reply
    status = service.wait(json.loads(reply.body)["job_id"])
    assert status["job_state"] == "FINISHED"
    assert status["user_dn"] == "/O=lofar-datalake testbed/CN=lofar"
    assert copy.read_bytes() == source.read_bytes()
