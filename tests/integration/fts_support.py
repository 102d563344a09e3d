"""Helpers for test_fts_service.py: the FTS stand-in as a subprocess, files, pipes, clients."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import fts3.rest.client.easy as fts3
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

# Test modules take it from here.
from lofar_datalake_testbed.layout import free_port as free_port

BIN = Path(sys.executable).parent


def server_python() -> list[str]:
    """The testbed's server environment's interpreter (the services run there, not here)."""
    from lofar_datalake_testbed.layout import default_dir
    from lofar_datalake_testbed.server_env import server_env

    return [str(server_env(default_dir()).ensure().python)]
FINAL = {"FINISHED", "FAILED", "FINISHEDDIRTY", "CANCELED"}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$")


def token(subject: str) -> str:
    claims = base64.urlsafe_b64encode(json.dumps({"sub": subject}).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJub25lIn0.{claims}.sig"


def clean_env(**extra: str) -> dict[str, str]:
    """No stray grid credentials: the `fts3` client would pick them up on its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("X509_")}
    env.update(extra)
    return env


def adler(data: bytes) -> str:
    return f"ADLER32:{zlib.adler32(data):08x}"


def wait_for(condition, timeout: float = 20.0, what: str = "condition", interval: float = 0.05):
    """The first true value of `condition()`, polled every `interval` s; fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


class Service:
    """One `python -m lofar_datalake_testbed.servers.fts` process on a free loopback port,
    serving https with `pki`'s server certificate to holders of `pki`'s client certificate
    (`pki.proxy`), with `file://` URLs confined to `roots`."""

    def __init__(
        self,
        state_dir: Path,
        pki,
        roots: list[Path],
        *,
        max_active: int = 4,
        ca_bundle: Path | None = None,
        client_cert: Path | None = None,
    ):
        self.state_dir = state_dir
        # The PEM (certificate and key) it presents to storage that only lets holders write.
        self.client_env = {"X509_USER_PROXY": str(client_cert)} if client_cert else {}
        self.pki = pki
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.args = ["--state-dir", str(state_dir), "--port", str(self.port)]
        self.args += ["--cert", str(pki.server_cert), "--key", str(pki.server_key)]
        self.args += ["--client-ca", str(pki.ca_cert)]
        self.args += [arg for root in roots for arg in ("--storage-root", str(root))]
        self.args += ["--max-active", str(max_active)]
        if ca_bundle is not None:
            self.args += ["--ca-bundle", str(ca_bundle)]
        self.process: subprocess.Popen | None = None

    def start(self) -> Service:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.state_dir / "service.out", "ab")
        self.process = subprocess.Popen(
            [*server_python(), "-m", "lofar_datalake_testbed.servers.fts", *self.args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=clean_env(**self.client_env),
        )
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = (self.state_dir / "service.out").read_text()
                raise AssertionError(f"FTS service exited early:\n{output}")
            try:
                if self.get("/", timeout=1).status_code == 200:
                    return self
            except requests.ConnectionError:
                time.sleep(0.05)
        raise AssertionError("FTS service did not become ready")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            raise AssertionError("FTS service ignored SIGTERM") from None

    def get(self, path: str, timeout: float = 5) -> requests.Response:
        """A GET by the holder of the testbed's client certificate."""
        pki = self.pki
        return requests.get(
            f"{self.url}{path}", cert=str(pki.proxy), verify=str(pki.ca_cert), timeout=timeout
        )

    def context(self) -> fts3.Context:
        """The `fts3` client as the pipeline uses it: client certificate, the testbed CA."""
        proxy, ca = str(self.pki.proxy), str(self.pki.ca_cert)
        return fts3.Context(self.url, ucert=proxy, ukey=proxy, capath=ca)

    def wait(self, job_id: str, timeout: float = 20.0) -> dict:
        context = self.context()

        def final():
            status = fts3.get_job_status(context, job_id, list_files=True)
            return status if status["job_state"] in FINAL else None

        return wait_for(final, timeout, f"job {job_id} to end")


def fts_context_for(testbed) -> fts3.Context:
    """The `fts3` client on a running testbed's FTS, with the testbed's client certificate."""
    from lofar_datalake_testbed.components import fts_url

    proxy, ca = str(testbed.pki.proxy), str(testbed.pki.ca_cert)
    return fts3.Context(fts_url(testbed.layout.ports()), ucert=proxy, ukey=proxy, capath=ca)


def grid_ca_dir(ca_cert: Path, directory: Path) -> Path:
    """A grid-style trust directory (X509_CERT_DIR) holding `ca_cert` under its subject hash:
    how grid clients such as `fts3` trust a CA without trusting it for everything else."""
    subject_hash = subprocess.run(
        ["openssl", "x509", "-hash", "-noout", "-in", str(ca_cert)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{subject_hash}.0").write_bytes(ca_cert.read_bytes())
    return directory


class FifoWriter:
    """Feeds a named pipe used as a transfer source: the copy blocks until we say so."""

    def __init__(self, path: Path, data: bytes, *, hold: bool = True) -> None:
        if not path.exists():
            os.mkfifo(path)
        self.path = path
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.thread = threading.Thread(target=self._feed, args=(data,), daemon=True)
        self.thread.start()

    def _feed(self, data: bytes) -> None:
        try:
            with open(self.path, "wb", buffering=0) as pipe:  # waits for the service to open it
                pipe.write(data)
                self.release.wait(30)
        except BrokenPipeError:
            pass  # the reader is gone (killed service): nothing left to feed

    def close(self) -> None:
        self.release.set()
        self.thread.join(2)
        if self.thread.is_alive():  # nobody ever opened the pipe: open it to unblock our open()
            os.close(os.open(self.path, os.O_RDONLY | os.O_NONBLOCK))
            self.thread.join(5)


def make_files(tmp_path: Path, count: int, size: int = 200_000) -> list[tuple[Path, bytes]]:
    out = []
    for index in range(count):
        data = os.urandom(size + index)
        path = tmp_path / "src" / f"file{index}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        out.append((path, data))
    return out


def cli_run(service: Service, tool: str, *args: str, home: Path) -> subprocess.CompletedProcess:
    """An `fts3` CLI tool trusting the testbed CA, with no credential unless `args` give one."""
    return subprocess.run(
        [str(BIN / tool), "-s", service.url, "--capath", str(service.pki.ca_cert), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(HOME=str(home)),  # no ~/.fts3client.cfg either
    )


def cli(service: Service, tool: str, *args: str, home: Path) -> str:
    result = cli_run(service, tool, *args, home=home)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def self_signed_rsa(tmp_path: Path) -> tuple[Path, Path]:
    """The client (M2Crypto) wants an RSA key to sign the delegated proxy with."""

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cli-user")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "user.pem", tmp_path / "user.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


@contextlib.contextmanager
def webdav_servers(
    base: Path, pki, count: int, *, anonymous_read: bool = True, client_ca: Path | None = None
) -> Iterator[list[tuple[str, Path]]]:
    """`python -m lofar_datalake_testbed.servers.webdav` servers over TLS: (url, root) each.
    Writing needs `pki`'s client certificate (`pki.proxy`), or one from `client_ca` if given;
    reading too unless `anonymous_read`. The servers present `pki`'s server certificate."""
    servers, processes = [], []
    for index in range(count):
        root, port = base / f"site{index}", free_port()
        root.mkdir()
        args = ["--root", str(root), "--port", str(port)]
        args += ["--cert", str(pki.server_cert), "--key", str(pki.server_key)]
        args += ["--client-ca", str(client_ca or pki.ca_cert)]
        args += ["--anonymous-read", "yes" if anonymous_read else "no"]
        command = [*server_python(), "-m", "lofar_datalake_testbed.servers.webdav", *args]
        processes.append(
            subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        )
        servers.append((f"https://127.0.0.1:{port}", root))
    try:
        for url, _ in servers:

            def up(url: str = url) -> bool:
                try:
                    reply = requests.get(f"{url}/", verify=str(pki.ca_cert), timeout=1)
                    return reply.status_code < 500  # 403 from a private one is up too
                except requests.ConnectionError:
                    return False

            wait_for(up, what=f"WebDAV at {url}")
        yield servers
    finally:
        for process in processes:
            process.terminate()
        deadline = time.monotonic() + 3
        for process in processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:  # not ours to debug; don't let it slow the suite
                process.kill()
                process.wait(5)
