"""Who may write to (and read from) the testbed's WebDAV storage.

Writing needs a client certificate issued by the testbed CA; reading follows the RSE's policy.
The clients here run as an unprivileged local account (`nobody`, through `setpriv`) that owns
nothing but what a test hands it, so a request can succeed only on the credential it presents.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from fts_support import self_signed_rsa, webdav_servers
from unprivileged import as_unprivileged, hand

from lofar_datalake_testbed import pki as testbed_pki
from lofar_datalake_testbed.layout import LOOPBACK, SITES, WEBDAV

if TYPE_CHECKING:
    from lofar_datalake_testbed.orchestrator import Testbed

WRITING = ["DELETE", "MKCOL", "MOVE", "COPY", "PROPPATCH", "LOCK"]


@dataclass(frozen=True)
class Reply:
    exit_code: int  # curl's: 0 once an HTTP answer came back, non-zero if TLS refused us
    status: int  # 0 without an HTTP answer
    error: str


@dataclass(frozen=True)
class Account:
    """The unprivileged account's view: the CA to trust and the credentials handed to it."""

    ca: Path
    testbed_cert: Path  # a copy of the testbed's client PEM (certificate and key)
    foreign_cert: Path  # a self-signed certificate, the testbed CA never saw
    foreign_key: Path

    def request(
        self, method: str, url: str, body: bytes = b"", cert: tuple[Path, Path] | None = None
    ) -> Reply:
        command = ["curl", "-sS", "--max-time", "30", "-o", "/dev/null", "-w", "%{http_code}"]
        # `-X HEAD` would have curl wait for the body the headers announce until the server
        # drops the connection (10 s); `--head` reads the headers only.
        command += ["--cacert", str(self.ca), *(["--head"] if method == "HEAD" else ["-X", method])]
        if method == "PUT":
            command += ["--data-binary", "@-"]
        if method in ("MOVE", "COPY"):
            command += ["-H", f"Destination: {url}.moved"]
        if cert is not None:
            command += ["--cert", str(cert[0]), "--key", str(cert[1])]
        done = subprocess.run(
            [*as_unprivileged(), *command, url], input=body, capture_output=True, timeout=60
        )
        status = done.stdout.decode().strip() or "0"
        return Reply(done.returncode, int(status), done.stderr.decode())

    @property
    def testbed(self) -> tuple[Path, Path]:
        return self.testbed_cert, self.testbed_cert

    @property
    def foreign(self) -> tuple[Path, Path]:
        return self.foreign_cert, self.foreign_key


def _account(pki: testbed_pki.Pki, home: Path) -> Account:
    # pytest's temporary directories are private to root; the account gets one it can enter.
    home.chmod(0o755)
    ca = home / "ca.pem"
    shutil.copyfile(pki.ca_cert, ca)
    ca.chmod(0o644)
    testbed_cert = home / "x509-proxy.pem"
    shutil.copyfile(pki.proxy, testbed_cert)
    hand(testbed_cert)
    foreign_cert, foreign_key = self_signed_rsa(home)
    hand(foreign_cert)
    hand(foreign_key)
    return Account(ca, testbed_cert, foreign_cert, foreign_key)


@pytest.fixture(scope="module")
def account(pki: testbed_pki.Pki) -> Iterator[Account]:
    home = Path(tempfile.mkdtemp(prefix="storage-auth-"))
    try:
        yield _account(pki, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def public(tmp_path_factory: pytest.TempPathFactory, pki: testbed_pki.Pki):
    with webdav_servers(tmp_path_factory.mktemp("dav-public"), pki, count=1) as [server]:
        yield server


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory, pki: testbed_pki.Pki):
    base = tmp_path_factory.mktemp("dav-private")
    with webdav_servers(base, pki, count=1, anonymous_read=False) as [server]:
        yield server


def _refused(reply: Reply) -> bool:
    """Refused by the storage: 403 with a reason, or the TLS handshake itself failed."""
    return reply.status == 403 or (reply.exit_code != 0 and reply.status == 0)


def test_anonymous_put_is_refused_and_creates_nothing(account, public):
    url, root = public
    reply = account.request("PUT", f"{url}/anonymous/new.bin", b"not wanted")
    assert reply.status == 403, reply
    assert not (root / "anonymous").exists()


@pytest.mark.parametrize("method", WRITING)
def test_anonymous_writing_methods_are_refused(account, public, method):
    url, root = public
    kept = root / f"kept-{method.lower()}.bin"
    kept.write_bytes(b"stays")
    reply = account.request(method, f"{url}/{kept.name}")
    assert reply.status == 403, reply
    assert kept.read_bytes() == b"stays"
    assert not kept.with_name(kept.name + ".moved").exists()


def test_put_with_a_certificate_from_another_ca_is_refused(account, public):
    url, root = public
    reply = account.request("PUT", f"{url}/foreign/new.bin", b"not wanted", cert=account.foreign)
    assert _refused(reply), reply
    assert not (root / "foreign").exists()


def test_put_and_delete_with_the_testbed_client_certificate(account, public):
    url, root = public
    data = os.urandom(70_000)
    reply = account.request("PUT", f"{url}/granted/deep/new.bin", data, cert=account.testbed)
    assert reply.status == 201, reply
    assert (root / "granted" / "deep" / "new.bin").read_bytes() == data
    reply = account.request("DELETE", f"{url}/granted/deep/new.bin", cert=account.testbed)
    assert reply.status == 204, reply
    assert not (root / "granted" / "deep" / "new.bin").exists()


def test_public_storage_is_read_anonymously(account, public):
    url, root = public
    (root / "open.txt").write_bytes(b"public")
    for method in ("GET", "HEAD", "PROPFIND"):
        reply = account.request(method, f"{url}/open.txt")
        assert reply.status in (200, 207), (method, reply)


def test_private_storage_is_read_with_the_testbed_certificate_only(account, private):
    url, root = private
    (root / "closed.txt").write_bytes(b"private")
    assert account.request("GET", f"{url}/closed.txt").status == 403
    assert _refused(account.request("GET", f"{url}/closed.txt", cert=account.foreign))
    assert account.request("GET", f"{url}/closed.txt", cert=account.testbed).status == 200


def test_every_testbed_rse_refuses_anonymous_and_foreign_writes(testbed: Testbed):
    """The testbed's own servers, as `testbed up` starts them, enforce the same rules."""
    ports = testbed.layout.ports()
    home = Path(tempfile.mkdtemp(prefix="storage-auth-testbed-"))
    try:
        bed_account = _account(testbed.pki, home)
        for site in SITES:
            url = f"https://{LOOPBACK}:{ports[site.https_port]}/auth-probe/{site.rse}.bin"
            target = testbed.layout.rse_dir(site.rse) / "auth-probe" / f"{site.rse}.bin"
            assert bed_account.request("PUT", url, b"x").status == 403, site.rse
            assert _refused(bed_account.request("PUT", url, b"x", cert=bed_account.foreign))
            assert not target.exists(), site.rse
            if site.anonymous_read:
                assert bed_account.request("HEAD", url).status == 404, site.rse
            # WsgiDAV answers 201 Created and 204 No Content, XrdHttp 200 OK to both.
            created, deleted = (201, 204) if site.storage == WEBDAV else (200, 200)
            reply = bed_account.request("PUT", url, b"x", cert=bed_account.testbed)
            assert reply.status == created, (site.rse, reply)
            assert target.read_bytes() == b"x"
            reply = bed_account.request("DELETE", url, cert=bed_account.testbed)
            assert reply.status == deleted, (site.rse, reply)
    finally:
        shutil.rmtree(home, ignore_errors=True)
        for site in SITES:
            shutil.rmtree(testbed.layout.rse_dir(site.rse) / "auth-probe", ignore_errors=True)
