"""Jobs, files and delegations in SQLite under the state directory, so they survive restarts.

Each record is a JSON document plus the few columns the scheduler filters on. One connection
behind a lock is plenty for a single-machine testbed and makes every transition atomic.
The bearer token a job was submitted with is kept in a table of its own, never part of a job
or file record (so never in an answer), stored with the job in one transaction and dropped once
the job has ended; the database is private to the service (0600).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .jobspec import Submission

Record = dict[str, Any]

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT UNIQUE NOT NULL,
    job_state TEXT NOT NULL,
    job_finished TEXT,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    file_id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    file_index INTEGER NOT NULL,
    file_state TEXT NOT NULL,
    priority INTEGER NOT NULL,
    retry_timestamp TEXT,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS files_by_job ON files (job_id);
CREATE INDEX IF NOT EXISTS files_by_state ON files (file_state);
CREATE TABLE IF NOT EXISTS job_tokens (
    job_id TEXT PRIMARY KEY,
    token TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS delegations (
    delegation_id TEXT PRIMARY KEY,
    user_dn TEXT NOT NULL,
    termination_time TEXT NOT NULL
);
"""

JOB_COLUMNS = ("job_id", "job_state", "job_finished")
FILE_COLUMNS = ("job_id", "file_index", "file_state", "priority", "retry_timestamp")


class DuplicateJob(Exception):
    pass


def _job(row: sqlite3.Row) -> Record:
    return {**json.loads(row["doc"]), **{k: row[k] for k in JOB_COLUMNS}}


def _file(row: sqlite3.Row) -> Record:
    return {
        **json.loads(row["doc"]),
        "file_id": row["file_id"],
        **{k: row[k] for k in FILE_COLUMNS},
    }


def _doc(record: Record, columns: tuple[str, ...]) -> str:
    return json.dumps({k: v for k, v in record.items() if k not in columns and k != "file_id"})


class Tx:
    """Load a job with its files, let the state machine edit them, write back what changed."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._seen: dict[tuple[str, Any], str] = {}

    def load(self, job_id: str) -> tuple[Record, list[Record]] | None:
        row = self._db.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            return None
        job = _job(row)
        files = [
            _file(r)
            for r in self._db.execute(
                "SELECT * FROM files WHERE job_id = ? ORDER BY file_id", (job_id,)
            )
        ]
        self._seen[("job", job_id)] = json.dumps(job, sort_keys=True)
        for f in files:
            self._seen[("file", f["file_id"])] = json.dumps(f, sort_keys=True)
        return job, files

    def save(self, job: Record, files: list[Record]) -> None:
        if self._seen.get(("job", job["job_id"])) != json.dumps(job, sort_keys=True):
            self._db.execute(
                "UPDATE jobs SET job_state = ?, job_finished = ?, doc = ? WHERE job_id = ?",
                (job["job_state"], job["job_finished"], _doc(job, JOB_COLUMNS), job["job_id"]),
            )
        for f in files:
            if self._seen.get(("file", f["file_id"])) == json.dumps(f, sort_keys=True):
                continue
            self._db.execute(
                "UPDATE files SET file_state = ?, priority = ?, retry_timestamp = ?, doc = ?"
                " WHERE file_id = ?",
                (
                    f["file_state"],
                    f["priority"],
                    f["retry_timestamp"],
                    _doc(f, FILE_COLUMNS),
                    f["file_id"],
                ),
            )


class Store:
    def __init__(self, path: Path) -> None:
        self._lock = threading.RLock()
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        path.chmod(0o600)  # SQLite gives its -wal and -shm files the same mode
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        # A finished job's token is deleted: overwritten, not left in free pages or the WAL.
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def tx(self) -> Iterator[Tx]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield Tx(self._db)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def update(self, job_id: str, change: Callable[[Record, list[Record]], Any]) -> Any:
        """Apply `change` to a job and its files in one transaction and save them; its result,
        or None when there is no such job."""
        with self.tx() as tx:
            loaded = tx.load(job_id)
            if loaded is None:
                return None
            job, files = loaded
            result = change(job, files)
            tx.save(job, files)
            return result

    def insert(self, submission: Submission, token: str | None = None) -> None:
        """Store a new job with its files, and the bearer token it was submitted with."""
        job = submission.job
        with self.tx():
            try:
                self._db.execute(
                    "INSERT INTO jobs (job_id, job_state, job_finished, doc) VALUES (?, ?, ?, ?)",
                    (job["job_id"], job["job_state"], None, _doc(job, JOB_COLUMNS)),
                )
            except sqlite3.IntegrityError:
                raise DuplicateJob(job["job_id"]) from None
            if token is not None:
                self._db.execute("INSERT INTO job_tokens VALUES (?, ?)", (job["job_id"], token))
            for f in submission.files:
                self._db.execute(
                    "INSERT INTO files (job_id, file_index, file_state, priority, retry_timestamp,"
                    " doc) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        f["job_id"],
                        f["file_index"],
                        f["file_state"],
                        f["priority"],
                        None,
                        _doc(f, FILE_COLUMNS),
                    ),
                )

    def job(self, job_id: str) -> Record | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            return _job(row) if row else None

    def files(self, job_id: str) -> list[Record]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM files WHERE job_id = ? ORDER BY file_id", (job_id,)
            ).fetchall()
            return [_file(r) for r in rows]

    def list_jobs(
        self, states: list[str] | None, unfinished_only: bool, limit: int | None
    ) -> list[Record]:
        query, args = "SELECT * FROM jobs WHERE 1=1", list[Any]()
        if states:
            query += f" AND job_state IN ({','.join('?' * len(states))})"
            args += states
        if unfinished_only:
            query += " AND job_finished IS NULL"
        query += " ORDER BY seq DESC"
        if limit is not None:
            query += " LIMIT ?"
            args.append(limit)
        with self._lock:
            return [_job(r) for r in self._db.execute(query, args).fetchall()]

    def runnable(self, limit: int, now: str) -> list[tuple[int, str]]:
        """Pending files whose retry time has come: highest priority, then oldest job first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT f.file_id, f.job_id FROM files f JOIN jobs j ON j.job_id = f.job_id"
                " WHERE f.file_state = 'SUBMITTED'"
                " AND (f.retry_timestamp IS NULL OR f.retry_timestamp <= ?)"
                " ORDER BY f.priority DESC, j.seq, f.file_id LIMIT ?",
                (now, limit),
            ).fetchall()
            return [(r["file_id"], r["job_id"]) for r in rows]

    def in_state(self, state: str) -> list[tuple[int, str]]:
        """(file_id, job_id) of the files in `state`: highest priority, then oldest job first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT f.file_id, f.job_id FROM files f JOIN jobs j ON j.job_id = f.job_id"
                " WHERE f.file_state = ? ORDER BY f.priority DESC, j.seq, f.file_id",
                (state,),
            ).fetchall()
            return [(r["file_id"], r["job_id"]) for r in rows]

    def active(self) -> list[Record]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM files WHERE file_state = 'ACTIVE'").fetchall()
            return [_file(r) for r in rows]

    def token(self, job_id: str) -> str | None:
        """The bearer token the job was submitted with (None for certificate users)."""
        with self._lock:
            row = self._db.execute(
                "SELECT token FROM job_tokens WHERE job_id = ?", (job_id,)
            ).fetchone()
            return str(row["token"]) if row else None

    def drop_token(self, job_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM job_tokens WHERE job_id = ?", (job_id,))

    def delegation(self, delegation_id: str) -> Record | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM delegations WHERE delegation_id = ?", (delegation_id,)
            ).fetchone()
            return dict(row) if row else None

    def put_delegation(self, delegation_id: str, user_dn: str, termination_time: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO delegations VALUES (?, ?, ?)",
                (delegation_id, user_dn, termination_time),
            )

    def delete_delegation(self, delegation_id: str) -> bool:
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM delegations WHERE delegation_id = ?", (delegation_id,)
            )
            return cursor.rowcount > 0
