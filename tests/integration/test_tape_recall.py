"""The archive on tape in the testbed: LTA_TAPE's files are nearline until recalled; a Rucio rule
on the staging area LTA_STAGING makes conveyor-stager hand the recall to FTS, which stages the
file (a drive, the recall time, a pin for the rule's lifetime); a file lost on tape fails with
FTS's reason and leaves the rule STUCK."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from fts_support import wait_for
from tape_support import OnTape, get, put_on_tape

from lofar_datalake_testbed.components import fts_url
from lofar_datalake_testbed.layout import STAGING_RSE, TAPE_RSE
from lofar_datalake_testbed.servers import tape

pytestmark = pytest.mark.integration
RULE_TIMEOUT = 180  # seconds for a rule to end: submission, recall, poll, finisher


def _wait_rule(client, rule_id: str) -> dict:
    def ended() -> dict | None:
        rule = client.get_replication_rule(rule_id)
        return rule if rule["state"] in ("OK", "STUCK") else None

    return wait_for(ended, RULE_TIMEOUT, f"rule {rule_id} to be OK or STUCK", interval=1)


def _recall(client, f: OnTape, lifetime: int = 3600) -> dict:
    [rule_id] = client.add_replication_rule(
        [{"scope": "lofar", "name": f.name}], 1, STAGING_RSE, lifetime=lifetime
    )
    return _wait_rule(client, rule_id)


def _fts_job_of(testbed, url: str) -> tuple[dict, list[dict]]:
    """The FTS job (and its files) that staged `url`, from FTS's job records."""
    cert, ca = str(testbed.pki.proxy), str(testbed.pki.ca_cert)
    base = f"{fts_url(testbed.layout.ports())}/jobs"
    listing = f"{base}?state_in=FINISHED,FAILED&limit=500"
    for job in requests.get(listing, cert=cert, verify=ca, timeout=10).json():
        files = requests.get(f"{base}/{job['job_id']}/files", cert=cert, verify=ca,
                             timeout=10).json()
        if any(f["source_surl"] == url for f in files):
            return job, files
    raise AssertionError(f"no FTS job staged {url}")


def test_a_file_on_tape_is_refused_until_recalled_and_its_namespace_stays_visible(
    testbed, rucio, tmp_path: Path
) -> None:
    [f] = put_on_tape(testbed, tmp_path, 1)
    refused = get(testbed, f.url)
    assert refused.status_code == 503
    assert "nearline" in refused.text and f.relative in refused.text
    head = requests.head(f.url, verify=str(testbed.pki.ca_cert), timeout=10)
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(f.data)


def test_the_tape_storage_asks_for_credentials_to_write_like_the_other_rses(
    testbed, tmp_path: Path
) -> None:
    ports = testbed.layout.ports()
    from lofar_datalake_testbed.components import tape_url

    url = f"{tape_url(ports)}/lofar/anonymous-{tmp_path.name}"
    answer = requests.put(url, data=b"x", verify=str(testbed.pki.ca_cert), timeout=10)
    assert answer.status_code == 403 and "client certificate" in answer.text
    assert not (testbed.layout.rse_dir(TAPE_RSE) / "lofar" / f"anonymous-{tmp_path.name}").exists()


def test_a_rule_on_the_staging_area_recalls_the_file_through_conveyor_stager_and_fts(
    testbed, rucio, tmp_path: Path
) -> None:
    from rucio.client import Client

    client = Client()
    [f] = put_on_tape(testbed, tmp_path, 1)
    assert get(testbed, f.url).status_code == 503

    rule = _recall(client, f, lifetime=900)

    assert rule["state"] == "OK", rule.get("error")
    [replica] = client.list_replicas([{"scope": "lofar", "name": f.name}], all_states=True)
    assert replica["states"] == {TAPE_RSE: "AVAILABLE", STAGING_RSE: "AVAILABLE"}
    read = get(testbed, f.url)
    assert read.status_code == 200 and read.content == f.data
    # Rucio, not a client, drove it: a staging-only FTS job (source == destination) from
    # Rucio's conveyor, pinned for the rule's lifetime.
    job, [record] = _fts_job_of(testbed, f.url)
    assert job["job_metadata"]["issuer"] == "rucio"
    assert record["file_metadata"]["request_type"].upper() == "STAGEIN"
    assert job["job_state"] == "FINISHED" and job["bring_online"] > 0
    assert 0 < job["copy_pin_lifetime"] <= 900
    assert record["source_surl"] == record["dest_surl"] == f.url
    assert record["staging_start"] and record["staging_finished"]
    assert any(p > 0 for p in tape.read_pins(testbed.layout.rse_dir(TAPE_RSE), f.relative).values())


def test_a_file_lost_on_tape_fails_with_ftss_reason_and_the_rule_goes_stuck(
    testbed, rucio, tmp_path: Path
) -> None:
    from rucio.client import Client

    client = Client()
    [f] = put_on_tape(testbed, tmp_path, 1)
    tape.mark_lost(testbed.layout.rse_dir(TAPE_RSE), f.relative)
    assert "lost on tape" in get(testbed, f.url).text

    rule = _recall(client, f)

    assert rule["state"] == "STUCK"
    assert "file lost on tape" in rule["error"] and f.relative in rule["error"]
    [replica] = client.list_replicas([{"scope": "lofar", "name": f.name}], all_states=True)
    assert replica["states"][STAGING_RSE] != "AVAILABLE"
    assert get(testbed, f.url).status_code == 503


def test_seed_tape_puts_an_observation_whose_only_replicas_are_on_lta_tape(
    testbed, rucio, tmp_path: Path
) -> None:
    from rucio.client import Client

    directory = tmp_path / "obs"
    directory.mkdir()
    name = f"L{abs(hash(tmp_path)) % 10**8}_SB000_uv.MS.tar"
    (directory / name).write_bytes(b"tape" * 1000)
    env = {**testbed.client_env(), "PATH": str(Path(sys.executable).parent)}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("lofar-datalake")), "testbed", "seed",
         str(directory), "--tape", "--dir", str(testbed.layout.root)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"-> {TAPE_RSE}" in done.stdout
    [replica] = Client().list_replicas([{"scope": "lofar", "name": name}], all_states=True)
    assert replica["states"] == {TAPE_RSE: "AVAILABLE"}


def test_the_testbed_lists_the_tape_rse_and_its_staging_area(testbed, rucio) -> None:
    from rucio.client import Client

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert testbed.status()
    line = next(row for row in out.getvalue().splitlines() if row.startswith(f"webdav-{TAPE_RSE}"))
    assert " up " in line and "tape, nearline" in line
    assert "rucio-conveyor-stager" in out.getvalue()
    client = Client()
    assert client.get_rse(TAPE_RSE)["rse_type"] == "TAPE"
    assert client.get_rse(STAGING_RSE)["staging_area"] is True
    assert client.list_rse_attributes(TAPE_RSE)["staging_buffer"] == STAGING_RSE
