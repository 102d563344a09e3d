"""The FTS service stages as FTS3 does, against the testbed's tape endpoint: staging-only jobs end
FINISHED once their files are online, the tape library's drives and recall time show in FTS's
job records (`staging_start`, `staging_finished`), pins expire after `copy_pin_lifetime`, and a
tape file can be copied to disk once staged, its pin released after the copy as FTS3 does."""

from __future__ import annotations

from pathlib import Path

import fts3.rest.client.easy as fts3
import pytest
from fts_support import fts_context_for, wait_for
from tape_support import get, most_staging_at_once, put_on_tape, stage, wait_job, when

from lofar_datalake_testbed.components import RECALL_SECONDS, TAPE_DRIVES
from lofar_datalake_testbed.layout import TAPE_RSE
from lofar_datalake_testbed.servers import tape

pytestmark = pytest.mark.integration
ROUNDING = 1  # FTS's timestamps have whole seconds


def test_a_staging_only_job_finishes_once_its_files_are_online_and_they_read_back(
    testbed, rucio, tmp_path: Path
) -> None:
    files = put_on_tape(testbed, tmp_path, 2)
    status = wait_job(testbed, stage(testbed, files, pin_lifetime=600))
    assert status["job_state"] == "FINISHED"
    for record in status["files"]:
        assert record["file_state"] == "FINISHED"
        assert when(record["staging_finished"]) >= when(record["staging_start"])
    for f in files:
        assert get(testbed, f.url).content == f.data


def test_recalls_queue_for_the_drives_and_take_the_recall_time_by_ftss_records(
    testbed, rucio, tmp_path: Path
) -> None:
    count = 2 * TAPE_DRIVES
    files = put_on_tape(testbed, tmp_path, count)
    status = wait_job(testbed, stage(testbed, files, pin_lifetime=600))
    assert status["job_state"] == "FINISHED"
    records = status["files"]
    # All were asked for at once (the window), and came online at most TAPE_DRIVES per
    # recall time: the k-th file online no sooner than its round of the drives allows.
    assert most_staging_at_once(records) == count
    start = min(when(r["staging_start"]) for r in records)
    online = sorted((when(r["staging_finished"]) - start).total_seconds() for r in records)
    for k, seconds in enumerate(online):
        assert seconds >= (k // TAPE_DRIVES + 1) * RECALL_SECONDS - ROUNDING, online


def test_pins_expire_after_the_copy_pin_lifetime(testbed, rucio, tmp_path: Path) -> None:
    [f] = put_on_tape(testbed, tmp_path, 1)
    pin_lifetime = 3
    status = wait_job(testbed, stage(testbed, [f], pin_lifetime=pin_lifetime))
    assert status["job_state"] == "FINISHED"
    root = testbed.layout.rse_dir(TAPE_RSE)
    [(pin_id, expiry)] = tape.read_pins(root, f.relative).items()
    assert pin_id.startswith(status["job_id"])
    finished = when(status["files"][0]["staging_finished"]).timestamp()
    assert expiry - finished <= pin_lifetime + 1  # pinned for the job's lifetime, not longer
    wait_for(lambda: get(testbed, f.url).status_code == 503, 30, "the pin to expire", 0.5)
    assert tape.state(root, f.relative) == tape.NEARLINE


def test_a_lost_file_fails_its_staging_with_a_reason_naming_it(
    testbed, rucio, tmp_path: Path
) -> None:
    lost, kept = put_on_tape(testbed, tmp_path, 2)
    tape.mark_lost(testbed.layout.rse_dir(TAPE_RSE), lost.relative)
    status = wait_job(testbed, stage(testbed, [lost, kept], pin_lifetime=600))
    by_url = {r["source_surl"]: r for r in status["files"]}
    assert status["job_state"] == "FINISHEDDIRTY"
    assert by_url[kept.url]["file_state"] == "FINISHED"
    failed = by_url[lost.url]
    assert failed["file_state"] == "FAILED"
    assert "file lost on tape" in failed["reason"] and lost.url in failed["reason"]


def test_a_tape_file_is_staged_then_copied_to_disk_in_one_job_and_its_pin_released(
    testbed, rucio, tmp_path: Path
) -> None:
    [f] = put_on_tape(testbed, tmp_path, 1)
    target = testbed.layout.rse_dir("SITE_A_DISK") / "tape-copies" / f"{tmp_path.name}.tar"
    job = fts3.new_job([fts3.new_transfer(f.url, target.as_uri())], bring_online=600,
                       copy_pin_lifetime=60)
    status = wait_job(testbed, str(fts3.submit(fts_context_for(testbed), job)))
    assert status["job_state"] == "FINISHED", status["files"][0]["reason"]
    [record] = status["files"]
    assert when(record["staging_finished"]) <= when(record["start_time"])
    assert target.read_bytes() == f.data
    # Released once copied (FTS3's url-copy does so), long before the pin's 60 s: the file is
    # nearline again and no pin of this job is left on the tape.
    root = testbed.layout.rse_dir(TAPE_RSE)
    assert not [p for p in tape.read_pins(root, f.relative) if p.startswith(status["job_id"])]
    assert tape.state(root, f.relative) == tape.NEARLINE
    assert get(testbed, f.url).status_code == 503
