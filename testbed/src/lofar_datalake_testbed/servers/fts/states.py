"""The FTS job/file state machine, as plain functions over one job and its file rows.

Every function mutates the dicts it is given and is called inside one store transaction, so a
transition and the job state it implies are written together.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from .jobspec import SERVER_DEFAULT_RETRY, timestamp

Record = dict[str, Any]

LIVE_FILE = ("STAGING", "STARTED", "SUBMITTED", "READY", "ACTIVE")
FINAL_JOB = ("FINISHED", "FAILED", "FINISHEDDIRTY", "CANCELED")
CANCEL_REASON = "Job canceled by the user"
MANY_FAILED = "One or more files failed. Please have a look at the details for more information"
MAX_INTERRUPTIONS = 3
# FTS retries after `retry_delay` seconds; 0 means "soon", which a 1 s pause keeps from spinning.
MIN_RETRY_DELAY = 1


def find(files: list[Record], file_id: int) -> Record | None:
    return next((f for f in files if f["file_id"] == file_id), None)


def max_retries(job: Record) -> int:
    """FTS: >0 that many retries, 0 the server default, <0 none."""
    retry = int(job.get("retry") or 0)
    if retry > 0:
        return retry
    return SERVER_DEFAULT_RETRY if retry == 0 else 0


def claim(
    job: Record, files: list[Record], file_id: int, now: dt.datetime, host: str
) -> Record | None:
    record = find(files, file_id)
    # STAGING files are brought online first (staging.py), then SUBMITTED.
    if record is None or record["file_state"] != "SUBMITTED" or job["job_state"] in FINAL_JOB:
        return None
    stamp = timestamp(now)
    record.update(file_state="ACTIVE", start_time=stamp, finish_time=None, transfer_host=host)
    record["reason"] = None
    job["job_state"] = "ACTIVE"
    return record


def succeed(
    job: Record, files: list[Record], file_id: int, now: dt.datetime, size: int, seconds: float
) -> bool:
    record = find(files, file_id)
    if record is None or record["file_state"] != "ACTIVE":
        return False  # canceled meanwhile: the cancel already decided the outcome
    record.update(
        file_state="FINISHED",
        finish_time=timestamp(now),
        filesize=size,
        tx_duration=round(seconds, 3),
        throughput=round(size / max(seconds, 1e-6) / 2**20, 3),  # MiB/s
        reason=None,
        _dest_touched=False,
    )
    if job["job_type"] == "H":
        _promote_next(files, record, same_index=False)
    settle(job, files, now)
    return True


def fail(
    job: Record,
    files: list[Record],
    file_id: int,
    now: dt.datetime,
    reason: str,
    recoverable: bool,
) -> bool:
    """Record a failed attempt: retry it later, fall back to the next source, or fail the file."""
    record = find(files, file_id)
    if record is None or record["file_state"] != "ACTIVE":
        return False
    record["_dest_touched"] = False
    if recoverable and record["retry"] < max_retries(job):
        delay = max(int(job.get("retry_delay") or 0), MIN_RETRY_DELAY)
        record.update(
            file_state="SUBMITTED",
            retry=record["retry"] + 1,
            reason=reason,
            retry_timestamp=timestamp(now + dt.timedelta(seconds=delay)),
        )
        return True
    record.update(
        file_state="FAILED", finish_time=timestamp(now), reason=reason, recoverable=recoverable
    )
    if job["job_type"] == "R":
        _promote_next(files, record, same_index=True)
    settle(job, files, now)
    return True


def _promote_next(files: list[Record], done: Record, *, same_index: bool) -> None:
    """Schedule the next alternative source (same file_index) or the next hop."""
    for record in sorted(files, key=lambda f: f["file_id"]):
        if record["file_id"] <= done["file_id"] or record["file_state"] != "NOT_USED":
            continue
        if same_index and record["file_index"] != done["file_index"]:
            continue
        record["file_state"] = "SUBMITTED"
        return


def settle(job: Record, files: list[Record], now: dt.datetime) -> None:
    """Give the job its final state once no file can move any more."""
    if job["job_state"] in FINAL_JOB or any(f["file_state"] in LIVE_FILE for f in files):
        return
    if all(f["file_state"] == "CANCELED" for f in files):
        state = "CANCELED"
    elif job["job_type"] == "H":
        state = "FINISHED" if all(f["file_state"] == "FINISHED" for f in files) else "FAILED"
    else:
        groups: dict[int, bool] = {}
        for f in files:
            groups[f["file_index"]] = groups.get(f["file_index"], False) or (
                f["file_state"] == "FINISHED"
            )
        done = sum(groups.values())
        state = "FINISHED" if done == len(groups) else ("FAILED" if done == 0 else "FINISHEDDIRTY")
    failed = [f for f in files if f["file_state"] == "FAILED"]
    if state == "FINISHED":
        reason = None
    elif state == "CANCELED":
        reason = CANCEL_REASON
    else:
        reason = failed[0]["reason"] if len(failed) == 1 else MANY_FAILED
    job.update(job_state=state, job_finished=timestamp(now), reason=reason)


def cancel(job: Record, files: list[Record], now: dt.datetime) -> list[int] | None:
    """Cancel a whole job; returns the ids of files being copied (to abort), None if final."""
    if job["job_state"] in FINAL_JOB:
        return None
    stamp = timestamp(now)
    job.update(job_state="CANCELED", cancel_job=True, job_finished=stamp, reason=CANCEL_REASON)
    running = []
    for record in files:
        if record["file_state"] in LIVE_FILE:
            if record["file_state"] == "ACTIVE":
                running.append(record["file_id"])
            record.update(file_state="CANCELED", reason=CANCEL_REASON, finish_time=stamp)
    return running


def cancel_files(
    job: Record, files: list[Record], file_ids: list[int], now: dt.datetime
) -> tuple[list[str], list[int]]:
    """FTS's per-file cancel: answers one state per requested id, plus the copies to abort."""
    stamp = timestamp(now)
    answers, running = [], []
    for file_id in file_ids:
        record = find(files, file_id)
        if record is None:
            answers.append("File does not belong to the job")
        elif record["file_state"] not in LIVE_FILE:
            answers.append(record["file_state"])
        else:
            if record["file_state"] == "ACTIVE":
                running.append(file_id)
            record.update(file_state="CANCELED", reason=CANCEL_REASON, finish_time=stamp)
            answers.append("CANCELED")
    if not any(f["file_state"] in LIVE_FILE for f in files) and job["job_state"] not in FINAL_JOB:
        if any(f["file_state"] == "CANCELED" for f in files):
            job.update(job_state="CANCELED", cancel_job=True, job_finished=stamp)
            job["reason"] = CANCEL_REASON
        else:
            settle(job, files, now)
    return answers, running


def requeue(job: Record, files: list[Record], file_id: int) -> bool:
    """Put a copy stopped by a service shutdown back in the queue (not an attempt)."""
    record = find(files, file_id)
    if record is None or record["file_state"] != "ACTIVE":
        return False
    record.update(file_state="SUBMITTED", start_time=None, transfer_host=None, _dest_touched=False)
    return True


def recover(job: Record, files: list[Record], file_id: int, now: dt.datetime) -> bool:
    """A copy was ACTIVE when the service died: resume it, unless that keeps happening."""
    record = find(files, file_id)
    if record is None or record["file_state"] != "ACTIVE":
        return False
    interruptions = int(record.get("_interruptions") or 0) + 1
    record["_interruptions"] = interruptions
    if interruptions < MAX_INTERRUPTIONS:
        return requeue(job, files, file_id)
    reason = (
        f"TRANSFER [4] transfer interrupted {interruptions} times by restarts of the FTS service"
    )
    return fail(job, files, file_id, now, reason, recoverable=False)


def set_priority(job: Record, files: list[Record], priority: int) -> None:
    job["priority"] = priority
    for record in files:
        record["priority"] = priority
