"""Runs the queued file transfers, at most `max_active` at a time.

One dispatcher thread claims runnable files (priority, then submission order) and hands each to
a copy thread, which runs the copy in a gfal2 helper process (mover.py) and kills it on cancel;
every outcome goes back through the state machine in one store transaction.
A job submitted with a bearer token is copied with that token (never logged), which is dropped
once the job has ended.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from . import messages, mover, states
from .jobspec import CHECKSUM_MODES, timestamp, utcnow
from .store import Store

log = logging.getLogger("lofar_datalake.fts.worker")

POLL_SECONDS = 0.5  # also how late a retry may start after its retry_timestamp
STOP_GRACE_SECONDS = 10.0


class Engine:
    def __init__(
        self,
        store: Store,
        gfal: mover.Gfal | None = None,
        *,
        max_active: int = 4,
        on_copied: Callable[[dict[str, Any], dict[str, Any]], None] = lambda job, record: None,
    ) -> None:
        """`on_copied(job, file record)`: a file was copied (e.g. release its source's pin)."""
        self._store = store
        self._on_copied = on_copied
        self._max_active = max_active
        self._gfal = gfal or mover.Gfal()
        self._host = socket.getfqdn()
        self._running: dict[int, threading.Event] = {}
        self._wake = threading.Condition()
        self._woken = False
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fts-dispatch", daemon=True)

    def start(self) -> None:
        self._recover()
        self._thread.start()

    def stop(self) -> None:
        """Stop copying; interrupted files go back to the queue for the next start.

        Copies run in daemon threads: one stuck in a read that never returns cannot hold the
        process up, and the restart recovery cleans up after it.
        """
        self._stopping.set()
        self.wake()
        if self._thread.is_alive():
            self._thread.join()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while self._running and time.monotonic() < deadline:
            time.sleep(0.05)

    def wake(self) -> None:
        with self._wake:
            self._woken = True
            self._wake.notify()

    def abort(self, file_ids: list[int]) -> None:
        for file_id in file_ids:
            event = self._running.get(file_id)
            if event is not None:
                event.set()

    def _recover(self) -> None:
        """Files ACTIVE in the store were being copied when the service died."""
        for record in self._store.active():
            file_id = record["file_id"]
            if record.get("_dest_touched"):  # only then can the destination hold our bytes
                mover.remove_partial(
                    record["dest_surl"],
                    _tag(file_id),
                    self._gfal,
                    bearer=self._store.token(record["job_id"]),
                )
            self._store.update(
                record["job_id"], partial(states.recover, file_id=file_id, now=utcnow())
            )
            log.warning("file %d of job %s was interrupted by a restart", file_id, record["job_id"])

    def _loop(self) -> None:
        while not self._stopping.is_set():
            with self._wake:
                if not self._woken:
                    self._wake.wait(POLL_SECONDS)
                self._woken = False
            if self._stopping.is_set():
                return
            try:
                self._dispatch()
            except Exception:  # e.g. a locked database: keep the queue alive, try again soon
                log.exception("dispatching transfers failed")

    def _dispatch(self) -> None:
        free = self._max_active - len(self._running)
        if free <= 0:
            return
        now = utcnow()
        for file_id, job_id in self._store.runnable(free, timestamp(now)):
            claimed = self._store.update(
                job_id, partial(_claimed, file_id=file_id, now=now, host=self._host)
            )
            if claimed is None:
                continue
            job, record = claimed
            event = threading.Event()
            self._running[file_id] = event
            threading.Thread(
                target=self._run, args=(job, record, event), name=f"fts-copy-{file_id}", daemon=True
            ).start()

    def _run(self, job: dict[str, Any], record: dict[str, Any], cancel: threading.Event) -> None:
        file_id, job_id = record["file_id"], job["job_id"]
        request = mover.CopyRequest(
            source=record["source_surl"],
            destination=record["dest_surl"],
            checksum=record["checksum"],
            verify=CHECKSUM_MODES.get(job["verify_checksum"], "none"),
            overwrite=_overwrite(job, record),
            tag=_tag(file_id),
            timeout=float(job.get("_timeout") or mover.DEFAULT_TIMEOUT),
        )
        try:
            result = mover.copy(
                request,
                abort=lambda: cancel.is_set() or self._stopping.is_set(),
                gfal=self._gfal,
                on_write=lambda: self._store.update(job_id, lambda j, fs: _touch(fs, file_id)),
                bearer=self._store.token(job_id),
            )
        except mover.Aborted:
            if not cancel.is_set():  # service shutdown, not a cancel: run it again next time
                self._store.update(job_id, lambda j, fs: states.requeue(j, fs, file_id))
            log.info("file %d of job %s: aborted", file_id, job_id)
        except mover.TransferError as exc:
            self._failed(job_id, file_id, str(exc), exc.recoverable)
        except Exception as exc:  # a bug must not leave the file ACTIVE for ever
            log.exception("file %d of job %s: internal error", file_id, job_id)
            self._failed(job_id, file_id, f"TRANSFER [5] internal error: {exc!r}", False)
        else:
            counted = self._store.update(
                job_id,
                lambda j, fs: states.succeed(j, fs, file_id, utcnow(), result.size, result.seconds),
            )
            log.info(
                "file %d of job %s: %s %d bytes in %.2f s, %s",
                file_id,
                job_id,
                "FINISHED" if counted else "copied after its job was canceled:",
                result.size,
                result.seconds,
                result.checksum,
            )
            self._on_copied(job, record)
        finally:
            messages.file_ended(self._store, job_id, file_id)
            self._running.pop(file_id, None)
            self._forget_token_once_ended(job_id)
            self.wake()

    def _forget_token_once_ended(self, job_id: str) -> None:
        job = self._store.job(job_id)
        if job is None or job["job_state"] in states.FINAL_JOB:
            self._store.drop_token(job_id)

    def _failed(self, job_id: str, file_id: int, reason: str, recoverable: bool) -> None:
        log.info("file %d of job %s: %s", file_id, job_id, reason)
        self._store.update(
            job_id, lambda j, fs: states.fail(j, fs, file_id, utcnow(), reason, recoverable)
        )


def _tag(file_id: int) -> str:
    return f"fts{file_id}"


def _claimed(
    job: dict[str, Any], files: list[dict[str, Any]], file_id: int, now: Any, host: str
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    record = states.claim(job, files, file_id, now, host)
    if record is None:
        return None
    last_hop = record["file_index"] == max(f["file_index"] for f in files)
    return dict(job), {**record, "_last_hop": last_hop}


def _touch(files: list[dict[str, Any]], file_id: int) -> None:
    record = states.find(files, file_id)
    if record is not None:
        record["_dest_touched"] = True


def _overwrite(job: dict[str, Any], record: dict[str, Any]) -> bool:
    flag = job.get("overwrite_flag")
    if flag == "Y":
        return True
    if flag == "R":
        return int(record.get("retry") or 0) > 0
    # overwrite_hop: intermediate hops may be overwritten, the final destination may not
    return flag in ("M", "Q") and job["job_type"] == "H" and not record["_last_hop"]
