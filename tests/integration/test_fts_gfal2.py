"""The FTS service moves bytes with gfal2, as FTS does: one helper process per copy driving
Debian's gfal2 (file, http/davs, root plugins), presenting the job's own credential, checking
checksums as the storage reports them (Want-Digest), against real WebDAV servers, a real token
issuer and real faults: a corrupt source, a storage that alters what it stores, a storage
server killed in the middle of a copy."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import fts3.rest.client.easy as fts3
import pytest
import requests
from fts_support import Service, adler, free_port, fts_context_for, server_python, wait_for
from token_support import Issuer, token_options

ALTERING = Path(__file__).with_name("altering_webdav.py")
CREDENTIALS = ("certificate", "token")


@dataclass
class Storage:
    """One WebDAV server process on `root`, private (reading needs a credential too), that
    accepts the testbed CA's certificates and the issuer's tokens; restartable on its port."""

    root: Path
    command: list[str]
    url: str
    ca: Path
    process: subprocess.Popen | None = None

    def start(self) -> Storage:
        log = open(self.root.parent / f"{self.root.name}.out", "ab")
        self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
        log.close()

        def up() -> bool:
            try:
                return requests.get(f"{self.url}/", verify=str(self.ca), timeout=1).ok or True
            except requests.ConnectionError:
                return False

        wait_for(up, what=f"WebDAV at {self.url}")
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


@contextlib.contextmanager
def storage(base: Path, name: str, pki, issuer: Issuer, *, altering: bool = False):
    root = base / name
    root.mkdir(parents=True)
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    program = [str(ALTERING)] if altering else ["-m", "lofar_datalake_testbed.servers.webdav"]
    args = ["--root", str(root), "--port", str(port), "--client-ca", str(pki.ca_cert)]
    args += ["--cert", str(pki.server_cert), "--key", str(pki.server_key)]
    args += ["--anonymous-read", "no", *token_options(issuer, url)]
    server = Storage(root, [*server_python(), *program, *args], url, pki.ca_cert).start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="module")
def sites(tmp_path_factory, pki, issuer) -> Iterator[tuple[Storage, Storage, Storage]]:
    """Two storages, and a third that alters the bytes it stores."""
    base = tmp_path_factory.mktemp("storage")
    with (
        storage(base, "a", pki, issuer) as a,
        storage(base, "b", pki, issuer) as b,
        storage(base, "altering", pki, issuer, altering=True) as altered,
    ):
        yield a, b, altered


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> Path:
    """The directory `file://` URLs may use (the service's storage root)."""
    return tmp_path_factory.mktemp("local")


@pytest.fixture(scope="module")
def fts(tmp_path_factory, pki, issuer, local) -> Iterator[Service]:
    """FTS presenting its certificate (X509_USER_PROXY) for certificate jobs and accepting the
    issuer's tokens, whose jobs present the token instead."""
    state = tmp_path_factory.mktemp("fts-state")
    svc = Service(state, pki, [local], ca_bundle=pki.ca_cert, client_cert=pki.proxy)
    svc.args += token_options(issuer, svc.url)
    svc.start()
    yield svc
    svc.stop()


def submit(fts: Service, job: dict, credential: str, issuer: Issuer) -> str:
    """Submit as the certificate holder (the fts3 client, which delegates first) or as the
    token holder `writer` (a bearer token alone, no delegation)."""
    if credential == "certificate":
        return fts3.submit(fts.context(), job)
    reply = requests.post(
        f"{fts.url}/jobs",
        json=job,
        headers={"Authorization": f"Bearer {issuer.token('writer')}"},
        verify=str(fts.pki.ca_cert),
        timeout=10,
    )
    assert reply.status_code == 200, reply.text
    return reply.json()["job_id"]


def files_of(fts: Service, job_id: str) -> dict[str, dict]:
    return {f["dest_surl"].rsplit("/", 1)[1]: f for f in fts.get(f"/jobs/{job_id}/files").json()}


@pytest.mark.parametrize("credential", CREDENTIALS)
def test_https_and_file_copies_succeed_with_the_jobs_credential(
    fts, sites, local, issuer, credential
):
    (a, b, _), data = sites, os.urandom(5 * 2**20 + 7)
    name = f"{credential}.bin"
    (a.root / "in").mkdir(exist_ok=True)
    (a.root / "in" / name).write_bytes(data)
    (local / "up").mkdir(exist_ok=True)
    (local / "up" / name).write_bytes(data)
    davs_b = b.url.replace("https://", "davs://")
    good = adler(data)
    transfers = [
        fts3.new_transfer(f"{a.url}/in/{name}", f"{davs_b}/https/{name}", checksum=good),
        fts3.new_transfer((local / "up" / name).as_uri(), f"{b.url}/file/{name}", checksum=good),
        fts3.new_transfer(f"{a.url}/in/{name}", (local / "down" / name).as_uri(), checksum=good),
    ]
    job_id = submit(fts, fts3.new_job(transfers, verify_checksum="both"), credential, issuer)
    status = fts.wait(job_id, timeout=60)
    assert status["job_state"] == "FINISHED", fts.get(f"/jobs/{job_id}/files").json()
    assert (b.root / "https" / name).read_bytes() == data
    assert (b.root / "file" / name).read_bytes() == data
    assert (local / "down" / name).read_bytes() == data
    assert not list((local / "down").glob(".*.part"))


def test_a_corrupt_source_fails_and_nothing_is_written(fts, sites, local):
    a, b, _ = sites
    data = os.urandom(300_000)
    (a.root / "corrupt.bin").write_bytes(data)
    catalogue = adler(b"the bytes the catalogue was told about")
    transfers = [
        fts3.new_transfer(f"{a.url}/corrupt.bin", f"{b.url}/corrupt.bin", checksum=catalogue),
        fts3.new_transfer(
            f"{a.url}/corrupt.bin", (local / "corrupt.bin").as_uri(), checksum=catalogue
        ),
    ]
    status = fts.wait(fts3.submit(fts.context(), fts3.new_job(transfers, verify_checksum="both")))
    assert status["job_state"] == "FAILED"
    expected, actual = catalogue.split(":")[1], adler(data).split(":")[1]
    for record in files_of(fts, status["job_id"]).values():
        reason = record["reason"]
        assert reason.startswith("SOURCE [5] SOURCE CHECKSUM MISMATCH"), reason
        assert f"{actual} != {expected}" in reason and f"{a.url}/corrupt.bin" in reason
    assert not (b.root / "corrupt.bin").exists()
    assert not list(local.glob("*corrupt.bin*"))


def test_a_destination_that_alters_the_bytes_fails_and_keeps_no_copy(fts, sites):
    a, _, altered = sites
    data = os.urandom(400_000)
    (a.root / "good.bin").write_bytes(data)
    # The source matches the catalogue; then, with or without that value, "both" compares
    # what the two storages report.
    with_value = fts3.new_transfer(
        f"{a.url}/good.bin", f"{altered.url}/given.bin", checksum=adler(data)
    )
    without = fts3.new_transfer(f"{a.url}/good.bin", f"{altered.url}/compared.bin")
    job = fts3.new_job([with_value, without], verify_checksum="both")
    status = fts.wait(fts3.submit(fts.context(), job))
    assert status["job_state"] == "FAILED"
    records = files_of(fts, status["job_id"])
    for name in ("given.bin", "compared.bin"):
        reason = records[name]["reason"]
        assert reason.startswith("DESTINATION [5] DESTINATION CHECKSUM MISMATCH"), reason
        assert "Source and destination ADLER32 do not match" in reason
        assert f"({adler(data).split(':')[1]} != " in reason and altered.url in reason
        assert reason.endswith("the destination was removed"), reason
        assert not (altered.root / name).exists()


def test_a_storage_killed_mid_transfer_fails_the_file_and_the_retry_succeeds(fts, sites, local):
    a, _, _ = sites
    data = os.urandom(192 * 2**20)
    (a.root / "big.bin").write_bytes(data)
    destination = local / "killed" / "big.bin"
    transfer = fts3.new_transfer(f"{a.url}/big.bin", destination.as_uri(), checksum=adler(data))
    context = fts.context()
    job_id = fts3.submit(context, fts3.new_job([transfer], retry=1, retry_delay=8))

    def under_way() -> bool:
        return any(p.stat().st_size for p in destination.parent.glob(".*.part"))

    try:
        wait_for(under_way, timeout=30, interval=0.005, what="the copy to be under way")
        a.kill()  # SIGKILL: the storage's process is gone in the middle of the copy

        def retrying():
            [record] = fts3.get_job_status(context, job_id, list_files=True)["files"]
            return record if record["retry"] == 1 and record["file_state"] == "SUBMITTED" else None

        record = wait_for(retrying, timeout=60, what="the failure and a retry to be scheduled")
        assert record["reason"].startswith(("SOURCE [", "TRANSFER [")), record["reason"]
        assert a.url in record["reason"], record["reason"]
        assert not destination.exists() and not list(destination.parent.glob(".*.part"))
    finally:
        a.start()  # the storage comes back on its port before the retry
    status = fts.wait(job_id, timeout=90)
    assert (status["job_state"], status["files"][0]["retry"]) == ("FINISHED", 1)
    assert destination.read_bytes() == data
    (a.root / "big.bin").unlink()


@contextlib.contextmanager
def xrootd_storage(base: Path) -> Iterator[tuple[str, Path]]:
    """A plain XRootD server (Debian's xrootd-server, adler32 checksums, loopback clients only,
    no authentication) serving `base/data`, run as nobody as XRootD insists: (url, root)."""
    data, run = base / "data", base / "run"
    for directory in (data, run):
        directory.mkdir(parents=True)
        shutil.chown(directory, "nobody")
    base.chmod(0o755)
    port = free_port()
    config = base / "xrootd.cfg"
    config.write_text(
        f"all.export /\noss.localroot {data}\nall.adminpath {run}\nall.pidpath {run}\n"
        f"xrd.homepath {run}\nxrd.port {port}\nxrd.network nodnr\nxrd.allow host localhost\n"
        "xrd.allow host 127.0.0.1\nxrootd.chksum adler32\n"
    )
    log = open(base / "xrootd.out", "ab")
    process = subprocess.Popen(
        ["xrootd", "-c", str(config), "-n", "fts-gfal2", "-R", "nobody"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()

    def up() -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return True
        return False

    try:
        wait_for(up, what="XRootD")
        yield f"root://127.0.0.1:{port}", data
    finally:
        process.terminate()
        process.wait(10)


@pytest.mark.skipif(shutil.which("xrootd") is None, reason="needs Debian's xrootd-server")
def test_root_copies_go_through_gfal2s_xrootd_plugin(fts, local):
    data = os.urandom(2 * 2**20 + 3)
    (local / "to-xrootd.bin").write_bytes(data)
    with xrootd_storage(Path(tempfile.mkdtemp(prefix="fts-xrootd-"))) as (url, root):
        try:
            transfers = [
                fts3.new_transfer(
                    (local / "to-xrootd.bin").as_uri(), f"{url}//up/x.bin", checksum=adler(data)
                ),
            ]
            job = fts3.new_job(transfers, verify_checksum="both")
            status = fts.wait(fts3.submit(fts.context(), job), timeout=60)
            assert status["job_state"] == "FINISHED", fts.get(
                f"/jobs/{status['job_id']}/files"
            ).json()
            assert (root / "up" / "x.bin").read_bytes() == data
            back = fts3.new_transfer(
                f"{url}//up/x.bin", (local / "from-xrootd.bin").as_uri(), checksum=adler(data)
            )
            job = fts3.new_job([back], verify_checksum="both")
            assert fts.wait(fts3.submit(fts.context(), job), timeout=60)["job_state"] == "FINISHED"
            assert (local / "from-xrootd.bin").read_bytes() == data
        finally:
            shutil.rmtree(root.parent, ignore_errors=True)


def _helpers(fts: Service) -> list[int]:
    """The service's gfal2 copy processes (its children running gfal_copy.py)."""
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if not entry.name.isdigit() or b"gfal_copy.py" not in (entry / "cmdline").read_bytes():
                continue
            status = (entry / "status").read_text()
            if f"\nPPid:\t{fts.process.pid}\n" in status:
                found.append(int(entry.name))
    return found


def test_a_token_job_hands_its_token_to_gfal2_through_no_argument_or_environment(
    fts, local, issuer
):
    stalled = socket.create_server(("127.0.0.1", 0))  # accepts, never answers: the copy waits
    token = issuer.token("writer")
    try:
        transfer = fts3.new_transfer(
            f"https://127.0.0.1:{stalled.getsockname()[1]}/x.bin", (local / "t.bin").as_uri()
        )
        reply = requests.post(
            f"{fts.url}/jobs",
            json=fts3.new_job([transfer]),
            headers={"Authorization": f"Bearer {token}"},
            verify=str(fts.pki.ca_cert),
            timeout=10,
        )
        job_id = reply.json()["job_id"]
        [helper] = wait_for(lambda: _helpers(fts), what="the gfal2 copy process")
        argv = Path(f"/proc/{helper}/cmdline").read_bytes()
        environment = Path(f"/proc/{helper}/environ").read_bytes()
        for text in (argv, environment):
            assert token.encode() not in text and token.split(".")[2].encode() not in text
        # The token instead of the service's certificate, as FTS does for token jobs.
        assert b"X509_USER_PROXY=" not in environment
        assert fts3.cancel(fts.context(), job_id)["job_state"] == "CANCELED"
        wait_for(lambda: not Path(f"/proc/{helper}").exists(), what="the copy to be killed")
    finally:
        stalled.close()
    assert not list(local.glob("*t.bin*"))


def _wait(context, job_id: str) -> dict:
    def ended() -> dict | None:
        status = fts3.get_job_status(context, job_id, list_files=True)
        return status if status["job_state"] in {"FINISHED", "FAILED", "CANCELED"} else None

    return wait_for(ended, timeout=60, what=f"job {job_id} to end")


def test_the_testbeds_fts_writes_and_reads_its_xrootd_rse_over_root(testbed):
    """The testbed's own FTS (components.fts_service) through gfal2's xrootd plugin to and from
    SITE_D_XRD, whose writes need the pipeline's certificate over gsi: a file RSE's bytes go
    out over root:// and come back, adler32 compared as both storages report it."""
    layout = testbed.layout
    xrootd = f"root://127.0.0.1:{layout.ports()['xrd_SITE_D_XRD']}/"
    data = os.urandom(1_000_003)
    name = f"fts-gfal2-{os.getpid()}.bin"
    source = layout.rse_dir("SITE_A_DISK") / "fts-gfal2" / name
    source.parent.mkdir(exist_ok=True)
    source.write_bytes(data)
    back = layout.rse_dir("SITE_B_DISK") / "fts-gfal2" / name
    context = fts_context_for(testbed)
    try:
        for src, dst in ((source.as_uri(), f"{xrootd}/fts-gfal2/{name}"),
                         (f"{xrootd}/fts-gfal2/{name}", back.as_uri())):  # fmt: skip
            job = fts3.new_job(
                [fts3.new_transfer(src, dst, checksum=adler(data))], verify_checksum="both"
            )
            status = _wait(context, fts3.submit(context, job))
            assert status["job_state"] == "FINISHED", status["files"][0]["reason"]
        assert (layout.rse_dir("SITE_D_XRD") / "fts-gfal2" / name).read_bytes() == data
        assert back.read_bytes() == data
    finally:
        for path in (source, back, layout.rse_dir("SITE_D_XRD") / "fts-gfal2" / name):
            path.unlink(missing_ok=True)
