"""The FTS stand-in's submission rules and job/file state machine, without any I/O."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from lofar_datalake_testbed.servers.fts import states
from lofar_datalake_testbed.servers.fts.jobspec import BASE_ID, SubmitError, build, checksum_mode

NOW = dt.datetime(2030, 1, 2, 3, 4, 5)


def _build(files, **params):
    return build(
        {"files": files, "params": params},
        user_dn="/CN=anonymous",
        cred_id="abc",
        vo="lofar",
        now=NOW,
        host="localhost",
    )


def _job(files, **params):
    """A submission as the store would hand it back: files numbered from 1."""
    submission = _build(files, **params)
    for number, record in enumerate(submission.files, start=1):
        record["file_id"] = number
    return submission.job, submission.files


def _transfer(*sources, dest="file:///d/x", **extra):
    return {"sources": list(sources), "destinations": [dest], **extra}


@pytest.mark.parametrize(
    ("verify", "has_checksum", "mode"),
    [
        (False, True, "target"),  # the easy API's default with its default "ADLER32"
        (False, False, "none"),
        (True, False, "both"),
        ("n", True, "none"),  # the CLI sends first letters
        ("source", True, "source"),
        (None, False, "none"),
    ],
)
def test_checksum_mode_follows_fts(verify, has_checksum, mode):
    assert checksum_mode(verify, has_checksum) == mode


def test_submission_echoes_metadata_and_defaults():
    meta = {"issuer": "rucio", "multi_sources": False, "nested": {"a": [1, 2]}}
    job, files = _job([_transfer("file:///s/x", metadata={"request_id": "r1"})], job_metadata=meta)
    assert job["job_metadata"] == meta
    assert files[0]["file_metadata"] == {"request_id": "r1"}
    assert files[0]["checksum"] == "ADLER32"  # FTS's default algorithm
    assert job["job_state"] == files[0]["file_state"] == "SUBMITTED"
    assert job["submit_time"] == "2030-01-02T03:04:05"
    assert (job["job_type"], job["priority"], job["verify_checksum"]) == ("N", 3, "n")


def test_pin_lifetime_means_staging_like_fts():
    job, files = _job([_transfer("file:///s/x")], copy_pin_lifetime=172800)  # what Rucio sends
    assert job["job_state"] == files[0]["file_state"] == "STAGING"


def test_several_sources_are_alternatives():
    job, files = _job([_transfer("file:///s/1", "file:///s/2", "file:///s/3")])
    assert job["job_type"] == "R"
    assert [f["file_state"] for f in files] == ["SUBMITTED", "NOT_USED", "NOT_USED"]
    assert {f["file_index"] for f in files} == {0}


def test_deterministic_job_id_matches_rucio():
    job, _ = _job([_transfer("file:///s/x")], id_generator="deterministic", sid="req-1")
    expected = uuid.uuid5(uuid.uuid5(BASE_ID, "lofar"), "req-1")  # Rucio's __get_deterministic_id
    assert job["job_id"] == str(expected)


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"files": []},
        {"files": [{"sources": [], "destinations": ["file:///d"]}]},
        {"files": [{"sources": ["no-scheme"], "destinations": ["file:///d"]}]},
        {
            "files": [_transfer("file:///s")],
            "params": {"overwrite": True, "overwrite_on_retry": True},
        },
        {"files": [_transfer("file:///s")], "params": {"priority": "high"}},
        {"files": [_transfer("file:///a", "file:///b")], "params": {"multihop": True}},
    ],
)
def test_malformed_submissions_are_400(body):
    with pytest.raises(SubmitError) as caught:
        build(body, user_dn="u", cred_id="c", vo="v", now=NOW, host="h")
    assert caught.value.status == 400


def test_success_finishes_the_job():
    job, files = _job([_transfer("file:///s/x")])
    assert states.claim(job, files, 1, NOW, "host") is not None
    assert job["job_state"] == "ACTIVE"
    assert states.succeed(job, files, 1, NOW, 10, 0.5)
    assert (job["job_state"], files[0]["file_state"]) == ("FINISHED", "FINISHED")
    assert job["job_finished"] == files[0]["finish_time"] == "2030-01-02T03:04:05"


def test_failed_source_falls_back_to_the_next_one():
    job, files = _job([_transfer("file:///s/1", "file:///s/2")])
    states.claim(job, files, 1, NOW, "host")
    states.fail(job, files, 1, NOW, "SOURCE [2] gone", recoverable=False)
    assert [f["file_state"] for f in files] == ["FAILED", "SUBMITTED"]
    assert job["job_state"] == "ACTIVE"
    states.claim(job, files, 2, NOW, "host")
    states.succeed(job, files, 2, NOW, 10, 0.5)
    assert job["job_state"] == "FINISHED"


def test_partial_failure_is_finisheddirty_with_the_reason():
    job, files = _job([_transfer("file:///s/1"), _transfer("file:///s/2", dest="file:///d/2")])
    for file_id in (1, 2):
        states.claim(job, files, file_id, NOW, "host")
    states.succeed(job, files, 1, NOW, 10, 0.5)
    states.fail(job, files, 2, NOW, "TRANSFER [5] checksum mismatch", recoverable=False)
    assert job["job_state"] == "FINISHEDDIRTY"
    assert job["reason"] == "TRANSFER [5] checksum mismatch"


def test_recoverable_failures_are_retried_after_the_delay():
    job, files = _job([_transfer("file:///s/x")], retry=1, retry_delay=30)
    states.claim(job, files, 1, NOW, "host")
    states.fail(job, files, 1, NOW, "TRANSFER [5] mismatch", recoverable=True)
    assert (files[0]["file_state"], files[0]["retry"]) == ("SUBMITTED", 1)
    assert files[0]["retry_timestamp"] == "2030-01-02T03:04:35"
    states.claim(job, files, 1, NOW, "host")
    states.fail(job, files, 1, NOW, "TRANSFER [5] mismatch", recoverable=True)
    assert (files[0]["file_state"], job["job_state"]) == ("FAILED", "FAILED")


def test_negative_retry_means_none():
    job, files = _job([_transfer("file:///s/x")], retry=-1)
    states.claim(job, files, 1, NOW, "host")
    states.fail(job, files, 1, NOW, "TRANSFER [5] x", recoverable=True)
    assert files[0]["file_state"] == "FAILED"


def test_cancel_reports_running_copies_and_ignores_final_jobs():
    job, files = _job([_transfer("file:///s/1"), _transfer("file:///s/2", dest="file:///d/2")])
    states.claim(job, files, 1, NOW, "host")
    assert states.cancel(job, files, NOW) == [1]
    assert job["job_state"] == "CANCELED"
    assert {f["file_state"] for f in files} == {"CANCELED"}
    assert not states.succeed(job, files, 1, NOW, 10, 0.5)  # a late success changes nothing
    assert states.cancel(job, files, NOW) is None


def test_multihop_runs_hops_in_order():
    job, files = _job(
        [_transfer("file:///a", dest="file:///b"), _transfer("file:///b", dest="file:///c")],
        multihop=True,
    )
    assert job["job_type"] == "H"
    assert [f["file_state"] for f in files] == ["SUBMITTED", "NOT_USED"]
    states.claim(job, files, 1, NOW, "host")
    states.succeed(job, files, 1, NOW, 1, 0.1)
    assert files[1]["file_state"] == "SUBMITTED"


def test_interrupted_copies_resume_then_give_up():
    job, files = _job([_transfer("file:///s/x")])
    for _ in range(states.MAX_INTERRUPTIONS - 1):
        states.claim(job, files, 1, NOW, "host")
        states.recover(job, files, 1, NOW)
        assert files[0]["file_state"] == "SUBMITTED"
    states.claim(job, files, 1, NOW, "host")
    states.recover(job, files, 1, NOW)
    assert files[0]["file_state"] == "FAILED"
    assert "interrupted" in files[0]["reason"]
