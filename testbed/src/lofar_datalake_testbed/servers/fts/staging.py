"""Bring-online as FTS3 does it, against the testbed's tape storage areas.

FTS3 stages a job's files when the job asks for it (`bring_online` > 0 or `copy_pin_lifetime`
> 0): they start in STAGING; FTS issues the bring-online request to the storage (the file
becomes STARTED, `staging_start` is set) and polls until the file is online
(`staging_finished`); then the file is copied (SUBMITTED), or, in a staging-only job (source ==
destination, what Rucio's conveyor-stager submits), it is FINISHED. A file that cannot be
brought online fails with the storage's reason, and one still not online `bring_online` seconds
after its request fails with FTS's timeout.

The storage side is the tape library the testbed's tape endpoints stand for (servers/tape.py).
`--tape URL=DIR` names each tape endpoint and its directory. A file already online is pinned
again and done at once; a nearline one waits for one of `--tape-drives` drives, each taking
`--recall-seconds` per file, and is then pinned for `copy_pin_lifetime` seconds (without one,
for the storage's default pin lifetime). A file on any other storage is online at once. Once a
file staged by a transfer job (not a staging-only one) is copied, its pin is released, as FTS3's
url-copy does: nothing stays pinned for a copy that has been made. The
job records keep `staging_start` and `staging_finished` per file, as FTS's do, so how many
files were recalled at once, and how long each took, can be read back from them.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from .. import tape
from . import states
from .jobspec import timestamp, utcnow
from .store import Store

log = logging.getLogger("lofar_datalake.fts.staging")

Record = dict[str, Any]
POLL_SECONDS = 0.5
DEFAULT_PIN_SECONDS = 3600  # what the storage pins for when the job names no pin lifetime
STARTED = "STARTED"


@dataclass(frozen=True)
class TapeArea:
    """A tape endpoint (`https://host:port`) and the directory its files live in."""

    url: str
    root: Path

    @classmethod
    def parse(cls, text: str) -> TapeArea:
        url, sep, directory = text.partition("=")
        parsed = urlparse(url)
        if not sep or not parsed.scheme or not parsed.netloc or not directory:
            raise ValueError(f"--tape {text!r}: expected URL=DIRECTORY, e.g. https://host:port=/dir")
        return cls(f"{parsed.scheme}://{parsed.netloc}", Path(directory).resolve())


@dataclass(frozen=True)
class Library:
    """The tape library behind the tape endpoints: where files live, drives, recall time."""

    areas: tuple[TapeArea, ...]
    recall_seconds: float = 2.0
    drives: int = 2

    def locate(self, url: str) -> tuple[TapeArea, str] | None:
        parsed = urlparse(url)
        for area in self.areas:
            if f"{parsed.scheme}://{parsed.netloc}" == area.url:
                return area, unquote(parsed.path).lstrip("/")
        return None


def _staged(job: Record, files: list[Record], file_id: int, now: dt.datetime) -> None:
    """Online: a staging-only file is done, any other goes on to be copied."""
    record = states.find(files, file_id)
    if record is None:
        return
    stamp = timestamp(now)
    record["staging_finished"] = stamp
    if record["source_surl"] == record["dest_surl"]:
        record.update(file_state="FINISHED", start_time=record["staging_start"], finish_time=stamp)
        record["reason"] = None
        states.settle(job, files, now)
    else:
        record["file_state"] = "SUBMITTED"


def _failed(job: Record, files: list[Record], file_id: int, now: dt.datetime, reason: str) -> None:
    record = states.find(files, file_id)
    if record is None:
        return
    stamp = timestamp(now)
    record.update(file_state="FAILED", staging_finished=stamp, finish_time=stamp, reason=reason)
    record["recoverable"] = False
    if job["job_type"] == "R":
        states._promote_next(files, record, same_index=True)
    states.settle(job, files, now)


def lost_reason(url: str) -> str:
    return f"SOURCE [2] BRINGONLINE failed for {url}: file lost on tape (No such file or directory)"


def missing_reason(url: str) -> str:
    return f"SOURCE [2] BRINGONLINE failed for {url}: No such file or directory"


class Stager:
    """Issues the bring-online requests of STAGING files and runs the library's drives."""

    def __init__(
        self,
        store: Store,
        library: Library,
        on_online: Callable[[], None] = lambda: None,
        on_file_changed: Callable[[str, int], None] = lambda job_id, file_id: None,
    ) -> None:
        """`on_online`: a file may now be copied; `on_file_changed(job_id, file_id)`: a file's
        staging state changed, perhaps to a final one (FINISHED, FAILED) to be published."""
        self._store = store
        self._library = library
        self._on_online = on_online
        self._on_file_changed = on_file_changed
        self._host = socket.getfqdn()
        self._queue: queue.Queue[tuple[str, int]] = queue.Queue()
        self._stopping = threading.Event()
        self._threads = [threading.Thread(target=self._loop, name="fts-staging", daemon=True)]
        self._threads += [
            threading.Thread(target=self._drive, name=f"tape-drive-{n}", daemon=True)
            for n in range(library.drives)
        ]

    def start(self) -> None:
        """Recalls under way when the service stopped start again from the beginning."""
        for file_id, job_id in self._store.in_state(STARTED):
            self._queue.put((job_id, file_id))
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stopping.wait(POLL_SECONDS):
            try:
                for file_id, job_id in self._store.in_state("STAGING"):
                    self._store.update(job_id, partial(self._issue, file_id=file_id))
                    self._on_file_changed(job_id, file_id)
            except Exception:  # e.g. a locked database: try again at the next poll
                log.exception("issuing bring-online requests failed")

    def _issue(self, job: Record, files: list[Record], file_id: int) -> None:
        record = states.find(files, file_id)
        if record is None or record["file_state"] != "STAGING":
            return
        if job["job_state"] in states.FINAL_JOB:
            return
        now = utcnow()
        record.update(staging_start=timestamp(now), staging_host=self._host)
        located = self._library.locate(record["source_surl"])
        if located is None:  # disk storage: online already
            _staged(job, files, file_id, now)
            self._on_online()
            return
        area, relative = located
        found = tape.state(area.root, relative)
        if found == tape.MISSING:
            _failed(job, files, file_id, now, missing_reason(record["source_surl"]))
        elif found == tape.ONLINE:
            tape.pin(area.root, relative, _pin_id(record), _pin_lifetime(job))
            _staged(job, files, file_id, now)
            self._on_online()
        else:
            record["file_state"] = STARTED
            self._queue.put((job["job_id"], file_id))
        log.info("file %d of job %s: bring-online %s (%s)", file_id, job["job_id"],
                 record["source_surl"], record["file_state"])

    def _drive(self) -> None:
        while not self._stopping.is_set():
            try:
                job_id, file_id = self._queue.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
            try:
                self._recall(job_id, file_id)
            except Exception:
                log.exception("recall of file %d of job %s failed", file_id, job_id)

    def _recall(self, job_id: str, file_id: int) -> None:
        job = self._store.job(job_id)
        record = next((f for f in self._store.files(job_id) if f["file_id"] == file_id), None)
        if job is None or record is None or record["file_state"] != STARTED:
            return  # canceled meanwhile
        timeout = int(job.get("bring_online") or 0)
        started = dt.datetime.strptime(record["staging_start"], "%Y-%m-%dT%H:%M:%S")
        if timeout > 0 and (utcnow() - started).total_seconds() > timeout:
            reason = f"SOURCE [62] BRINGONLINE timeout after {timeout} s: {record['source_surl']}"
            self._finish(job_id, file_id, reason)
            return
        if self._stopping.wait(self._library.recall_seconds):
            return  # recalled again after the restart
        located = self._library.locate(record["source_surl"])
        if located is None:
            return
        area, relative = located
        found = tape.state(area.root, relative)
        if found in (tape.LOST, tape.MISSING):
            self._finish(job_id, file_id, lost_reason(record["source_surl"]))
            return
        tape.pin(area.root, relative, _pin_id(record), _pin_lifetime(job))
        self._finish(job_id, file_id, None)

    def _finish(self, job_id: str, file_id: int, reason: str | None) -> None:
        def change(job: Record, files: list[Record]) -> None:
            record = states.find(files, file_id)
            if record is None or record["file_state"] != STARTED:
                return
            if reason is None:
                _staged(job, files, file_id, utcnow())
            else:
                _failed(job, files, file_id, utcnow(), reason)

        self._store.update(job_id, change)
        log.info("file %d of job %s: %s", file_id, job_id, reason or "online")
        self._on_file_changed(job_id, file_id)
        self._on_online()


def release_source_pin(library: Library, job: Record, record: Record) -> None:
    """After a successful copy: a source the job had staged is unpinned (FTS3's url-copy
    releases with the bring-online token; the testbed's token is the pin id)."""
    if not _stages(job) or record["source_surl"] == record["dest_surl"]:
        return
    located = library.locate(record["source_surl"])
    if located is not None:
        area, relative = located
        tape.unpin(area.root, relative, _pin_id(record))
        log.info("file %d of job %s: source pin released", record["file_id"], job["job_id"])


def _stages(job: Record) -> bool:
    return int(job.get("bring_online") or 0) > 0 or int(job.get("copy_pin_lifetime") or 0) > 0


def _pin_id(record: Record) -> str:
    return f"{record['job_id']}:{record['file_id']}"


def _pin_lifetime(job: Record) -> int:
    lifetime = int(job.get("copy_pin_lifetime") or 0)
    return lifetime if lifetime > 0 else DEFAULT_PIN_SECONDS
