"""The job and file endpoints: submit, list, query, cancel, reprioritise.

Answers follow fts-rest-flask where clients look: per-job `http_status` strings, 207 when some
of several requested jobs are missing, `?files=a,b` to embed those file fields in each job.
"""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import auth, confine, states
from .answers import (
    NOT_MODIFIED,
    OK,
    Answer,
    HttpError,
    Record,
    missing,
    multistatus,
    public,
    read_body,
)
from .jobspec import SubmitError, build, decode_body, timestamp, utcnow
from .store import DuplicateJob, Store
from .worker import Engine


class JobsApi:
    def __init__(
        self,
        store: Store,
        engine: Engine,
        identify: Callable[[dict[str, Any]], auth.Identity],
        storage_roots: Sequence[Path] = (),
    ) -> None:
        self._store = store
        self._engine = engine
        self._identify = identify
        self._roots = confine.resolve_roots(storage_roots)
        self._host = socket.getfqdn()

    def submit(self, environ: dict[str, Any], query: dict[str, str]) -> Answer:
        identity = self._identify(environ)
        now = utcnow()
        if identity.method == "certificate":  # X.509 clients must have delegated first
            stored = self._store.delegation(identity.delegation_id)
            expiry = stored["termination_time"] if stored else None
            problem = auth.delegation_usable(expiry, now)
            if problem:
                raise HttpError(419, f"{problem} ({identity.delegation_id})")
        try:
            submission = build(
                decode_body(read_body(environ)),
                user_dn=identity.user_dn,
                cred_id=identity.delegation_id,
                vo=identity.vo,
                now=now,
                host=self._host,
            )
            urls = [u for f in submission.files for u in (f["source_surl"], f["dest_surl"])]
            confine.check(urls, self._roots)
            # Token users' copies present their token to storage (real FTS needs no delegation
            # from them either); certificate users' copies run with the service's certificate.
            self._store.insert(submission, token=identity.token)
        except SubmitError as exc:
            raise HttpError(exc.status, exc.message) from None
        except DuplicateJob:
            raise HttpError(409, "The sid provided by the user is duplicated") from None
        self._engine.wake()
        job = submission.job
        return 200, {"job_id": job["job_id"], "job_state": job["job_state"]}

    def list_jobs(self, environ: dict[str, Any], query: dict[str, str]) -> Answer:
        states_in = [s for s in query.get("state_in", "").split(",") if s]
        window = query.get("time_window")
        try:
            limit = int(query["limit"]) if "limit" in query else None
            hours, _, minutes = (window or "0").partition(":")
            cutoff = utcnow() - dt.timedelta(hours=int(hours), minutes=int(minutes or 0))
        except ValueError:
            raise HttpError(400, "Invalid limit or time_window") from None
        if limit is not None and not 0 <= limit <= 500:
            raise HttpError(400, "The limit must be positive and less or equal than 500")
        unfinished = not states_in or (limit is None and not window)
        jobs = self._store.list_jobs(states_in or None, unfinished, limit)
        if window and limit is None:
            jobs = [j for j in jobs if j["job_finished"] and j["job_finished"] >= timestamp(cutoff)]
        filters = {k: query.get(k) for k in ("user_dn", "vo_name", "source_se", "dest_se")}
        filters["cred_id"] = query.get("dlg_id")
        jobs = [j for j in jobs if all(v is None or j.get(k) == v for k, v in filters.items())]
        fields = [f for f in query.get("fields", "").split(",") if f]
        if fields:
            return 200, [
                {f: j[f] for f in fields if f in j and not f.startswith("_")} for j in jobs
            ]
        return 200, [public(j) for j in jobs]

    def get_jobs(self, environ: dict[str, Any], query: dict[str, str], ids: str) -> Answer:
        requested = ids.split(",")
        fields = [f for f in query.get("files", "").split(",") if f and not f.startswith("_")]
        answers = []
        for job_id in filter(None, requested):
            job = self._store.job(job_id)
            if job is None:
                answers.append(missing(job_id))
                continue
            answer = public(job)
            if fields:
                files = self._store.files(job_id)
                answer["files"] = [{f: r[f] for f in fields if f in r} for r in files]
            answer["http_status"] = OK
            answers.append(answer)
        return multistatus(requested, answers)

    def _each_job(self, ids: str, change: Callable[[Record, list[Record]], bool]) -> Answer:
        """Apply `change` to each live job; terminal ones are left alone and answer 304."""
        requested = ids.split(",")
        answers = []
        for job_id in filter(None, requested):
            with self._store.tx() as tx:
                loaded = tx.load(job_id)
                if loaded is None:
                    answers.append(missing(job_id))
                    continue
                job, files = loaded
                changed = job["job_state"] not in states.FINAL_JOB and change(job, files)
                tx.save(job, files)
            answer = public(job)
            if changed:
                answer.update(http_status=OK, http_message=None)
            else:
                answer.update(
                    http_status=NOT_MODIFIED, http_message="The job is in a terminal state"
                )
            answers.append(answer)
        # FTS answers a lone terminal job with a bare 304, which cannot carry the body the
        # `fts3` client and Rucio parse; 200 with http_status "304 Not Modified" keeps both happy.
        return multistatus(requested, answers)

    def cancel(self, environ: dict[str, Any], query: dict[str, str], ids: str) -> Answer:
        def change(job: Record, files: list[Record]) -> bool:
            running = states.cancel(job, files, utcnow())
            if running:
                self._engine.abort(running)
            return running is not None

        answer = self._each_job(ids, change)
        for job_id in filter(None, ids.split(",")):
            job = self._store.job(job_id)
            if job is not None and job["job_state"] in states.FINAL_JOB:
                self._store.drop_token(job_id)  # a running copy has its own reference
        return answer

    def modify(self, environ: dict[str, Any], query: dict[str, str], ids: str) -> Answer:
        body = decode_body(read_body(environ)) if environ.get("CONTENT_LENGTH") else {}
        try:
            priority = (body or {}).get("params", {}).get("priority")
            priority = None if priority is None else int(priority)
        except (AttributeError, TypeError, ValueError):
            raise HttpError(400, "Invalid priority value") from None

        def change(job: Record, files: list[Record]) -> bool:
            if priority:
                states.set_priority(job, files, max(1, min(5, priority)))
            return True

        return self._each_job(ids, change)

    def cancel_all(self, environ: dict[str, Any], query: dict[str, str]) -> Answer:
        raise HttpError(403, "User does not have root privileges")

    # --- files -----------------------------------------------------------------------------

    def _job_or_404(self, job_id: str) -> Record:
        job = self._store.job(job_id)
        if job is None:
            raise HttpError(404, f'No job with the id "{job_id}" has been found')
        return job

    def get_files(self, environ: dict[str, Any], query: dict[str, str], job: str) -> Answer:
        self._job_or_404(job)
        return 200, [public(f) for f in self._store.files(job)]

    def get_file(
        self, environ: dict[str, Any], query: dict[str, str], job: str, file: str
    ) -> Answer:
        self._job_or_404(job)
        record = states.find(self._store.files(job), int(file))
        if record is None:
            raise HttpError(404, f'No file with the id "{file}" has been found')
        return 200, public(record)

    def get_retries(
        self, environ: dict[str, Any], query: dict[str, str], job: str, file: str
    ) -> Answer:
        self.get_file(environ, query, job, file)
        return 200, []

    def cancel_files(
        self, environ: dict[str, Any], query: dict[str, str], job: str, files: str
    ) -> Answer:
        with self._store.tx() as tx:
            loaded = tx.load(job)
            if loaded is None:
                raise HttpError(404, f'No job with the id "{job}" has been found')
            record, rows = loaded
            if record["job_type"] != "N":
                raise HttpError(
                    400, f"Multihop or reuse jobs must be cancelled at once ({record['job_type']})"
                )
            ids = [int(i) for i in files.split(",") if i]
            if not ids:
                raise HttpError(400, "No file id given")
            answers, running = states.cancel_files(record, rows, ids, utcnow())
            tx.save(record, rows)
        self._engine.abort(running)
        return 200, answers if len(answers) > 1 else answers[0]

    def get_dm(self, environ: dict[str, Any], query: dict[str, str], job: str) -> Answer:
        self._job_or_404(job)
        return 200, []  # no data-management (deletion, staging) operations are supported

    def get_field(
        self, environ: dict[str, Any], query: dict[str, str], job: str, field: str
    ) -> Answer:
        record = public(self._job_or_404(job))
        if field not in record:
            raise HttpError(404, "No such field")
        return 200, record[field]
