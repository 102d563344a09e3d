"""Rules between RSEs complete with real bytes moved: Rucio conveyor daemons -> FTS service."""

from __future__ import annotations

import os
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from datalake_core.checksums import adler32_of_file
from datalake_core.rucio_adapter import DataLakeError, Did

pytestmark = pytest.mark.integration


def _unique(name: str) -> Did:
    return Did("lofar", f"tests/{time.time_ns()}/{name}")


def _posix_path(testbed, replica_pfns: dict, rse: str) -> Path:
    """Where the replica's bytes sit on disk: the RSE directory + the PFN's path below it."""
    for pfn in replica_pfns:
        parsed = urlparse(pfn)
        if parsed.scheme == "file":
            return Path(parsed.path)
        if parsed.scheme == "https":
            return testbed.layout.rse_dir(rse) / parsed.path.lstrip("/")
    raise AssertionError(f"no usable PFN in {replica_pfns}")


def test_rules_to_two_sites_move_real_bytes(testbed, rucio, tmp_path):
    source = tmp_path / "subband.tar"
    source.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    did = _unique("L123456_SB000_uv.MS.tar")
    checksum = rucio.upload(source, did, "SITE_A_DISK")

    started = time.monotonic()
    rule_b = rucio.add_rule([did], "SITE_B_DISK")
    rule_c = rucio.add_rule([did], "SITE_C_DAV")
    assert rucio.wait_rule(rule_b, timeout=90).state == "OK"
    assert rucio.wait_rule(rule_c, timeout=90).state == "OK"
    elapsed = time.monotonic() - started

    [replica] = rucio.list_replicas([did])
    assert replica["adler32"] == checksum
    assert {rse for rse, state in replica["states"].items() if state == "AVAILABLE"} == {
        "SITE_A_DISK",
        "SITE_B_DISK",
        "SITE_C_DAV",
    }
    original = source.read_bytes()
    for rse in ("SITE_B_DISK", "SITE_C_DAV"):
        pfns = [p for p, info in replica["pfns"].items() if info["rse"] == rse]
        on_disk = _posix_path(testbed, pfns, rse)
        assert on_disk.read_bytes() == original, f"bytes differ on {rse}"
        assert adler32_of_file(on_disk) == checksum
    # The copies were made by the FTS service (not by a mock transfertool): it has the jobs.
    finished = _fts_finished_destinations(testbed)
    for rse in ("SITE_B_DISK", "SITE_C_DAV"):
        assert any(did.name in surl and rse_marker(testbed, rse) in surl for surl in finished)
    print(f"two rules OK in {elapsed:.1f} s")


def test_download_from_webdav_site_is_intact(testbed, rucio, tmp_path):
    source = tmp_path / "payload.bin"
    source.write_bytes(os.urandom(1024 * 1024))
    did = _unique("payload.bin")
    checksum = rucio.upload(source, did, "SITE_C_DAV")
    fetched = rucio.download(did, "SITE_C_DAV", tmp_path / "dl")
    assert adler32_of_file(fetched) == checksum
    assert fetched.read_bytes() == source.read_bytes()


def test_rule_for_unknown_did_is_a_clear_error(rucio):
    with pytest.raises(DataLakeError, match="SITE_B_DISK"):
        rucio.add_rule([Did("lofar", "tests/does-not-exist.tar")], "SITE_B_DISK")


def rse_marker(testbed, rse: str) -> str:
    """A substring every PFN of this RSE contains: its directory (file) or its port (https)."""
    return (
        str(testbed.layout.rse_dir(rse))
        if rse != "SITE_C_DAV"
        else (f":{testbed.layout.ports()['dav_' + rse]}/")
    )


def _fts_finished_destinations(testbed) -> list[str]:
    """Destination URLs of the files the FTS service finished (as FTS, finished jobs are listed
    only with a `limit`)."""
    import requests
    from fts3.rest.client import easy
    from fts_support import fts_context_for

    context = fts_context_for(testbed)
    jobs = requests.get(
        f"{context.endpoint}/jobs",
        params={"state_in": "FINISHED", "limit": 500},
        cert=str(testbed.pki.proxy),
        verify=str(testbed.pki.ca_cert),
        timeout=10,
    ).json()
    statuses = easy.get_jobs_statuses(context, [j["job_id"] for j in jobs], list_files=True)
    return [
        f["dest_surl"]
        for s in statuses
        for f in s.get("files", [])
        if f.get("file_state") == "FINISHED"
    ]
