"""The FTS3-REST stand-in as a real service, driven by the unchanged `fts3` client (API and CLI)
and by Rucio's own FTS3 transfertool, copying real files between file:// and WebDAV storage."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import zlib
from pathlib import Path

import fts3.rest.client.easy as fts3
import pytest
from fts3.rest.client.exceptions import ClientError
from fts_support import (
    TIMESTAMP,
    FifoWriter,
    Service,
    adler,
    clean_env,
    cli,
    cli_run,
    make_files,
    server_python,
    token,
    wait_for,
    webdav_servers,
)

from lofar_datalake_testbed import fts_delegation
from lofar_datalake_testbed import pki as testbed_pki

PROBE = Path(__file__).with_name("fts_rucio_probe.py")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, pki: testbed_pki.Pki):
    state, roots = tmp_path_factory.mktemp("fts-state"), [tmp_path_factory.getbasetemp()]
    svc = Service(state, pki, roots, ca_bundle=pki.ca_cert, client_cert=pki.proxy).start()
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def webdav(tmp_path_factory: pytest.TempPathFactory, pki: testbed_pki.Pki):
    """Two WebDAV storages over TLS, as the testbed runs them: (url, root) each."""
    with webdav_servers(tmp_path_factory.mktemp("dav"), pki, count=2) as servers:
        yield servers


def test_file_copy_finishes_with_identical_bytes(service, tmp_path):
    [(src, data)] = make_files(tmp_path, 1)
    dst = tmp_path / "dst" / "deep" / "copy.bin"
    context = service.context()
    meta = {"request_id": "r-1", "scope": "lofar", "nested": {"list": [1, 2]}}
    transfer = fts3.new_transfer(src.as_uri(), dst.as_uri(), checksum=adler(data), metadata=meta)
    job_meta = {"issuer": "test", "multi_sources": False}
    job_id = fts3.submit(context, fts3.new_job([transfer], verify_checksum=True, metadata=job_meta))

    status = service.wait(job_id)
    assert status["job_state"] == "FINISHED"
    assert status["job_metadata"] == job_meta
    [record] = status["files"]
    assert record["file_state"] == "FINISHED"
    assert record["file_metadata"] == meta
    assert record["filesize"] == len(data)
    for field in ("start_time", "finish_time"):
        assert TIMESTAMP.match(record[field])
    assert TIMESTAMP.match(status["submit_time"]) and TIMESTAMP.match(status["job_finished"])
    assert dst.read_bytes() == data
    assert not list(dst.parent.glob("*.part"))


def test_multi_file_job(service, tmp_path):
    sources = make_files(tmp_path, 5)
    transfers = [
        fts3.new_transfer(src.as_uri(), (tmp_path / "dst" / src.name).as_uri(), checksum=adler(d))
        for src, d in sources
    ]
    job_id = fts3.submit(service.context(), fts3.new_job(transfers))
    status = service.wait(job_id)
    assert status["job_state"] == "FINISHED"
    assert [f["file_state"] for f in status["files"]] == ["FINISHED"] * 5
    for src, data in sources:
        assert (tmp_path / "dst" / src.name).read_bytes() == data


def test_missing_source_fails_naming_the_source(service, tmp_path):
    missing = tmp_path / "src" / "missing.bin"
    transfer = fts3.new_transfer(missing.as_uri(), (tmp_path / "dst.bin").as_uri())
    status = service.wait(fts3.submit(service.context(), fts3.new_job([transfer])))
    assert status["job_state"] == "FAILED"
    [record] = status["files"]
    assert record["file_state"] == "FAILED"
    assert record["reason"].startswith("SOURCE [2] ")
    assert str(missing) in record["reason"]
    assert status["reason"] == record["reason"]


def test_wrong_checksum_fails_and_leaves_no_destination(service, tmp_path):
    [(src, _)] = make_files(tmp_path, 1)
    dst = tmp_path / "dst" / "bad.bin"
    transfer = fts3.new_transfer(src.as_uri(), dst.as_uri(), checksum="ADLER32:0badc0de")
    # verify_checksum=False with a checksum value means "target" in FTS: it is still checked.
    status = service.wait(fts3.submit(service.context(), fts3.new_job([transfer])))
    assert status["job_state"] == "FAILED"
    assert "checksum mismatch" in status["files"][0]["reason"].lower()
    assert not dst.exists()
    assert not dst.parent.exists() or not list(dst.parent.iterdir())  # no temporary file either


def test_existing_destination_needs_overwrite(service, tmp_path):
    [(src, data)] = make_files(tmp_path, 1)
    dst = tmp_path / "dst.bin"
    dst.write_bytes(b"old")
    transfer = fts3.new_transfer(src.as_uri(), dst.as_uri())
    status = service.wait(fts3.submit(service.context(), fts3.new_job([transfer])))
    assert "Destination file exists and overwrite is not enabled" in status["files"][0]["reason"]
    assert dst.read_bytes() == b"old"
    job = fts3.new_job([fts3.new_transfer(src.as_uri(), dst.as_uri())], overwrite=True)
    assert service.wait(fts3.submit(service.context(), job))["job_state"] == "FINISHED"
    assert dst.read_bytes() == data


def test_alternative_sources_use_the_first_that_works(service, tmp_path):
    [(src, data)] = make_files(tmp_path, 1)
    missing = tmp_path / "src" / "gone.bin"
    transfer = fts3.new_transfer(missing.as_uri(), (tmp_path / "a.bin").as_uri())
    transfer["sources"].append(src.as_uri())
    status = service.wait(fts3.submit(service.context(), fts3.new_job([transfer])))
    assert (status["job_state"], status["job_type"]) == ("FINISHED", "R")
    states = {f["source_surl"]: f["file_state"] for f in status["files"]}
    assert states == {missing.as_uri(): "FAILED", src.as_uri(): "FINISHED"}
    assert (tmp_path / "a.bin").read_bytes() == data

    # When the first source works, the others are never tried.
    transfer = fts3.new_transfer(src.as_uri(), (tmp_path / "b.bin").as_uri())
    transfer["sources"].append(missing.as_uri())
    status = service.wait(fts3.submit(service.context(), fts3.new_job([transfer])))
    states = {f["source_surl"]: f["file_state"] for f in status["files"]}
    assert states == {src.as_uri(): "FINISHED", missing.as_uri(): "NOT_USED"}


def test_recoverable_failure_is_retried(service, tmp_path):
    [(src, data)] = make_files(tmp_path, 1)
    src.write_bytes(b"not yet the right content")
    transfer = fts3.new_transfer(src.as_uri(), (tmp_path / "r.bin").as_uri(), checksum=adler(data))
    context = service.context()
    job_id = fts3.submit(context, fts3.new_job([transfer], retry=1, retry_delay=2))

    def retrying():
        [record] = fts3.get_job_status(context, job_id, list_files=True)["files"]
        return record if record["retry"] == 1 else None

    record = wait_for(retrying, what="a retry to be scheduled")
    assert record["file_state"] == "SUBMITTED"
    assert "checksum mismatch" in record["reason"].lower()
    src.write_bytes(data)  # fixed before the retry runs
    status = service.wait(job_id)
    assert (status["job_state"], status["files"][0]["retry"]) == ("FINISHED", 1)
    assert (tmp_path / "r.bin").read_bytes() == data


def test_bulk_status_with_a_missing_job(service, tmp_path):
    [(src, _)] = make_files(tmp_path, 1)
    context = service.context()
    job_id = fts3.submit(
        context, fts3.new_job([fts3.new_transfer(src.as_uri(), src.as_uri() + ".c")])
    )
    service.wait(job_id)
    both = fts3.get_jobs_statuses(context, [job_id, job_id], list_files=True)
    assert [j["http_status"] for j in both] == ["200 Ok", "200 Ok"]
    assert both[0]["files"][0]["file_state"] == "FINISHED"

    missing = "00000000-0000-0000-0000-000000000000"
    # Like with a real FTS, the client turns a 207 Multi-Status into a ClientError...
    with pytest.raises(ClientError, match=missing):
        fts3.get_jobs_statuses(context, [job_id, missing])
    # ...while the answer itself carries one status per job, as Rucio's poller reads it.
    answer = service.get(f"//jobs/{job_id},{missing}?files=file_state")
    assert answer.status_code == 207
    assert [(j["job_id"], j["http_status"]) for j in answer.json()] == [
        (job_id, "200 Ok"),
        (missing, "404 Not Found"),
    ]


def test_cancel_stops_the_running_copy_and_the_queue(pki, tmp_path):
    service = Service(tmp_path / "state", pki, [tmp_path], max_active=1).start()
    writer = FifoWriter(tmp_path / "slow.pipe", b"x" * 4096)
    try:
        out = tmp_path / "out"
        queued = [
            fts3.new_transfer(src.as_uri(), (out / src.name).as_uri())
            for src, _ in make_files(tmp_path, 3)
        ]
        slow = fts3.new_transfer((tmp_path / "slow.pipe").as_uri(), (out / "slow.bin").as_uri())
        context = service.context()
        job_id = fts3.submit(context, fts3.new_job([slow, *queued]))
        wait_for(lambda: list(out.glob(".slow.bin.*.part")), what="the copy to start writing")
        files = fts3.get_job_status(context, job_id, list_files=True)["files"]
        assert [f["file_state"] for f in files] == ["ACTIVE", "SUBMITTED", "SUBMITTED", "SUBMITTED"]

        assert fts3.cancel(context, job_id)["job_state"] == "CANCELED"
        status = fts3.get_job_status(context, job_id, list_files=True)
        assert status["job_state"] == "CANCELED"
        assert {(f["file_state"], f["reason"]) for f in status["files"]} == {
            ("CANCELED", "Job canceled by the user")
        }
        writer.close()  # the blocked read returns, and the copy sees it was canceled
        wait_for(lambda: not list(out.glob("*")), what="the partial output to go")

        # The slot is free again.
        [(src, data)] = make_files(tmp_path / "again", 1)
        job = fts3.new_job([fts3.new_transfer(src.as_uri(), (out / "next.bin").as_uri())])
        assert service.wait(fts3.submit(context, job))["job_state"] == "FINISHED"
        assert (out / "next.bin").read_bytes() == data
    finally:
        writer.close()
        service.stop()


def test_jobs_survive_a_restart_and_a_crash(pki, tmp_path):
    service = Service(tmp_path / "state", pki, [tmp_path], max_active=1).start()
    try:
        [(src, data)] = make_files(tmp_path, 1)
        out = tmp_path / "out"
        done_id = fts3.submit(
            service.context(), fts3.new_job([fts3.new_transfer(src.as_uri(), (out / "a").as_uri())])
        )
        before = service.wait(done_id)

        service.stop()  # a clean stop...
        service.start()
        assert service.wait(done_id) == before

        pipe = tmp_path / "slow.pipe"
        writer = FifoWriter(pipe, b"y" * 4096)
        slow = fts3.new_transfer(pipe.as_uri(), (out / "slow.bin").as_uri())
        queued = fts3.new_transfer(src.as_uri(), (out / "queued.bin").as_uri())
        job_id = fts3.submit(service.context(), fts3.new_job([slow, queued]))
        wait_for(lambda: list(out.glob(".slow.bin.*.part")), what="the copy to start writing")
        service.stop(signal.SIGKILL)  # ...and a crash in the middle of a copy
        writer.close()
        assert list(out.glob(".slow.bin.*.part"))

        service.start()
        assert not list(out.glob("*.part"))  # the interrupted copy's leftovers are cleaned up
        status = fts3.get_job_status(service.context(), job_id, list_files=True)
        assert status["job_state"] == "ACTIVE"
        content = os.urandom(300_000)
        FifoWriter(pipe, content, hold=False)  # the resumed copy reads the pipe to its end
        status = service.wait(job_id)
        assert status["job_state"] == "FINISHED"
        assert (out / "slow.bin").read_bytes() == content
        assert (out / "queued.bin").read_bytes() == data
        assert service.wait(done_id) == before
    finally:
        service.stop()


def test_cli_tools(service, tmp_path):
    [(src, data)] = make_files(tmp_path, 1)
    home = tmp_path / "home"
    home.mkdir()
    submit = ["fts-rest-transfer-submit", src.as_uri()]

    # Without a certificate, or with a token instead, the service answers nothing.
    refused = cli_run(service, *submit, (tmp_path / "c0").as_uri(), home=home)
    assert refused.returncode != 0 and "client certificate" in refused.stdout + refused.stderr
    bearer = ["--access-token", token("cli-user")]
    refused = cli_run(service, "fts-rest-whoami", *bearer, home=home)
    assert refused.returncode != 0 and "tokens are not accepted" in refused.stdout + refused.stderr
    assert not (tmp_path / "c0").exists()

    # With the testbed's certificate the CLI delegates first (X.509 path of the client).
    x509 = ["--cert", str(service.pki.proxy), "--key", str(service.pki.proxy)]
    assert "User DN: /O=lofar-datalake testbed/CN=lofar" in cli(
        service, "fts-rest-whoami", *x509, home=home
    )
    out = cli(service, *submit, *x509, (tmp_path / "c1").as_uri(), home=home)
    job_id = re.search(r"Job id: (\S+)", out).group(1)
    assert service.wait(job_id)["job_state"] == "FINISHED"
    assert (tmp_path / "c1").read_bytes() == data
    shown = json.loads(cli(service, "fts-rest-transfer-status", *x509, "--json", job_id, home=home))
    assert shown["files"][0]["file_state"] == "FINISHED"
    assert "FINISHED" in cli(service, "fts-rest-transfer-cancel", *x509, job_id, home=home)
    whoami = service.get("/whoami").json()
    delegation = service.get(f"/delegation/{whoami['delegation_id']}")
    assert TIMESTAMP.match(delegation.json()["termination_time"])
    log = (service.state_dir / "fts.log").read_text()
    assert bearer[1] not in log and "BEGIN CERTIFICATE" not in log


def test_rucio_fts3_transfertool(service, tmp_path):
    """Rucio's FTS3Transfertool submits, polls (bulk_query), queries, reprioritises, cancels,
    presenting `[conveyor] usercert` to the https endpoint."""
    [(src, data)] = make_files(tmp_path, 1)
    config = tmp_path / "rucio.cfg"
    # Client mode (a [client] section, no [database]) makes Rucio's config lookups fall back to
    # their defaults instead of asking a database.
    config.write_text(
        "[common]\nloglevel = WARNING\n[client]\nrucio_host = http://127.0.0.1:1\n"
        "auth_host = http://127.0.0.1:1\naccount = root\nauth_type = userpass\n"
        f"[conveyor]\nusercert = {service.pki.proxy}\n"
    )
    # Rucio never delegates: the testbed does it for the conveyor, as `testbed up` does.
    fts_delegation.delegate(service.url, service.pki.proxy, service.pki.ca_cert)
    # A storage that accepts connections and never answers: the live job stays ACTIVE (gfal2
    # asks the source for its checksum first, which a pipe could not answer).
    stalled = socket.create_server(("127.0.0.1", 0))
    missing_source = (tmp_path / "src" / "missing.bin").as_uri()
    args = {
        "fts": service.url,
        "sources": {"SITE_C": missing_source, "SITE_A": src.as_uri()},
        "dest": (tmp_path / "rucio" / "file.bin").as_uri(),
        "adler32": f"{zlib.adler32(data):08x}",
        "size": len(data),
        "missing": "00000000-0000-0000-0000-000000000001",
        "stalled": f"https://127.0.0.1:{stalled.getsockname()[1]}/stalled.bin",
    }
    try:
        result = subprocess.run(
            [*server_python(), str(PROBE), json.dumps(args)],
            capture_output=True,
            text=True,
            timeout=120,
            env=clean_env(RUCIO_CONFIG=str(config)),
        )
    finally:
        stalled.close()
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])

    params = out["job_params"]
    assert params["job_metadata"]["multi_sources"] is True
    assert (params["verify_checksum"], params["overwrite"]) == ("both", True)
    report = out["report"]
    assert (report["job_state"], report["file_state"]) == ("FINISHED", "FINISHED")
    assert report["source_surl"] == src.as_uri()  # the missing first replica was skipped
    assert report["file_metadata"]["src_rse"] == "SITE_C"  # echoed exactly as Rucio sent it
    assert out["missing"] is None  # Rucio's "lost transfer"
    assert out["query"] == "FINISHED"
    assert out["details"] == ["FAILED", "FINISHED"]
    assert out["finished_cancel"] == "304 Not Modified"
    assert out["whoami"] == "/O=lofar-datalake testbed/CN=lofar"
    assert (out["priority"], out["live_cancel"]) == (5, "CANCELED")
    assert (tmp_path / "rucio" / "file.bin").read_bytes() == data


def test_https_copies_between_webdav_servers(service, webdav, tmp_path):
    (url_a, root_a), (url_b, root_b) = webdav
    data = os.urandom(3 * 2**20 + 5)
    (root_a / "in").mkdir()
    (root_a / "in" / "data.bin").write_bytes(data)
    (root_b / "taken.bin").write_bytes(b"old")
    local = tmp_path / "local.bin"
    local.write_bytes(data)
    good, bad = adler(data), "ADLER32:00000001"
    davs_b = url_b.replace("https://", "davs://")
    transfers = [
        fts3.new_transfer(f"{url_a}/in/data.bin", f"{davs_b}/out/data.bin", checksum=good),
        fts3.new_transfer(f"{url_a}/in/data.bin", f"{url_b}/out/bad.bin", checksum=bad),
        fts3.new_transfer(f"{url_a}/in/data.bin", f"{url_b}/taken.bin", checksum=good),
        fts3.new_transfer(f"{url_a}/in/none.bin", f"{url_b}/out/none.bin", checksum=good),
        fts3.new_transfer(local.as_uri(), f"{url_b}/up/data.bin", checksum=good),
        fts3.new_transfer(f"{url_a}/in/data.bin", (tmp_path / "down.bin").as_uri(), checksum=good),
    ]
    job = fts3.new_job(transfers, verify_checksum="both")
    status = service.wait(fts3.submit(service.context(), job), timeout=30)
    by_dest = {f["dest_surl"].rsplit("/", 1)[1]: f for f in status["files"]}
    assert status["job_state"] == "FINISHEDDIRTY"

    assert (root_b / "out" / "data.bin").read_bytes() == data
    assert (root_b / "up" / "data.bin").read_bytes() == data
    assert (tmp_path / "down.bin").read_bytes() == data
    assert "checksum mismatch" in by_dest["bad.bin"]["reason"].lower()
    assert not (root_b / "out" / "bad.bin").exists()  # the remote copy was removed again
    assert "overwrite is not enabled" in by_dest["taken.bin"]["reason"]
    assert (root_b / "taken.bin").read_bytes() == b"old"
    assert by_dest["none.bin"]["reason"].startswith("SOURCE [2] Result HTTP 404")
