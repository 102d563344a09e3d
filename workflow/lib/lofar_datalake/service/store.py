"""The service's records in PostgreSQL: submissions, their queue and their results, and the
site-health probes' results (health.py).

The only module that speaks SQL. The queue lives in the database, not in the service's memory,
so a restart loses nothing: queued submissions are still queued, and those that were running
when the service stopped are put back in the queue or failed (`recover`). Workers in one or
several processes claim from the same queue; each researcher's concurrent-runs limit holds
across all of them (`claim`).

A Store is one connection. Its calls take turns, so threads may share one; workers that should
claim at the same time use a Store each.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import Jsonb

from .model import ProbeResult, Source, State, Submission

# The first key of this service's advisory locks (the second: the researcher's name hashed,
# or 0 for migrations); an arbitrary constant ("LDL").
LOCKS = 0x4C444C
RESUMED = "resumed after a restart of the service (it was running when the service stopped)"

# Each migration's statements; the `schema_version` table says how many are applied.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE submissions (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            researcher text NOT NULL,
            site text NOT NULL,
            source_kind text NOT NULL,
            source_ref text NOT NULL,
            snakefile text NOT NULL,
            configfile text NOT NULL,
            dids jsonb NOT NULL,
            state text NOT NULL
                CHECK (state IN ('rejected', 'queued', 'running', 'done', 'failed')),
            created timestamptz NOT NULL DEFAULT now(),
            started timestamptz,
            finished timestamptz,
            attempts integer NOT NULL DEFAULT 0,
            progress text NOT NULL DEFAULT '',
            exit_code integer,
            error text NOT NULL DEFAULT '',
            verdict jsonb NOT NULL DEFAULT '{}'
        )""",
        "CREATE INDEX submissions_by_researcher ON submissions (researcher, state, id)",
        "CREATE INDEX submissions_queue ON submissions (id) WHERE state = 'queued'",
    ),
    (  # 2: the site-health probes (health.py), one row per probe
        """CREATE TABLE probes (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            site text NOT NULL,
            rse text NOT NULL,
            ok boolean NOT NULL,
            checked_at timestamptz NOT NULL DEFAULT now(),
            seconds double precision NOT NULL,
            detail text NOT NULL DEFAULT ''
        )""",
        "CREATE INDEX probes_latest ON probes (site, rse, checked_at DESC, id DESC)",
    ),
)
PROBES_KEPT = "30 days"  # older probes of a site x RSE are deleted as new ones are recorded


class Store:
    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self._lock = threading.Lock()
        self._conn = self._connect()

    def _connect(self) -> psycopg.Connection[DictRow]:
        return psycopg.connect(self.conninfo, autocommit=True, row_factory=dict_row,
                               options="-c TimeZone=UTC")

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[DictRow]]:
        with self._lock:
            if self._conn.broken:  # the database restarted: the call that found out failed
                self._conn = self._connect()
            with self._conn.transaction():
                yield self._conn

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    def migrate(self) -> None:
        """Create or update the tables; a no-op when they are current."""
        with self._transaction() as conn:
            # Two services migrating at once would both create the tables.
            conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (LOCKS,))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
            row = conn.execute("SELECT coalesce(max(version), 0) AS v FROM schema_version")
            applied = _one(row)["v"]
            for version, statements in enumerate(MIGRATIONS[applied:], start=applied + 1):
                for statement in statements:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))

    def add(self, researcher: str, site: str, source: Source, snakefile: str, configfile: str,
            dids: Sequence[str], state: State = State.QUEUED, error: str = "") -> Submission:
        """Record a submission: queued, or rejected with the reason (researchers see their
        rejected submissions in their history too)."""
        if state not in (State.QUEUED, State.REJECTED):
            raise ValueError(f"a submission is added queued or rejected, not {state.value}")
        with self._transaction() as conn:
            row = conn.execute(
                "INSERT INTO submissions (researcher, site, source_kind, source_ref, snakefile,"
                " configfile, dids, state, error, finished)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, CASE WHEN %s THEN now() END)"
                " RETURNING *",
                (researcher, site, source.kind, source.ref, snakefile, configfile,
                 Jsonb(list(dids)), state.value, error, state.final))
            return _submission(_one(row))

    def get(self, submission_id: int, researcher: str) -> Submission | None:
        """The submission if it is `researcher`'s; another's is as missing as a missing one."""
        with self._transaction() as conn:
            row = conn.execute("SELECT * FROM submissions WHERE id = %s AND researcher = %s",
                               (submission_id, researcher)).fetchone()
        return _submission(row) if row is not None else None

    def history(self, researcher: str, limit: int = 100) -> list[Submission]:
        """The researcher's submissions, newest first."""
        with self._transaction() as conn:
            rows = conn.execute("SELECT * FROM submissions WHERE researcher = %s"
                                " ORDER BY id DESC LIMIT %s", (researcher, limit)).fetchall()
        return [_submission(row) for row in rows]

    def claim(self, limits: Mapping[str, int]) -> Submission | None:
        """Take the oldest queued submission whose researcher runs fewer than their limit
        (`limits[researcher]`, 1 for researchers missing there) and mark it running. None when
        there is none, or only of researchers another worker claims for at this very moment (a
        later call finds theirs)."""
        passed: list[str] = []  # researchers at their limit, or being claimed for elsewhere
        with self._transaction() as conn:
            while True:
                # SKIP LOCKED: what another worker is taking right now is not waited for.
                row = conn.execute(
                    "SELECT id, researcher FROM submissions AS s"
                    " WHERE state = 'queued' AND researcher <> ALL(%s)"
                    " AND (SELECT count(*) FROM submissions AS r"
                    "      WHERE r.researcher = s.researcher AND r.state = 'running')"
                    "     < coalesce((%s::jsonb ->> s.researcher)::integer, 1)"
                    " ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
                    (passed, Jsonb(dict(limits)))).fetchone()
                if row is None:
                    return None
                researcher = row["researcher"]
                # The count above may be stale: another worker may have started one of this
                # researcher's submissions since. Under the researcher's lock, with every claim
                # for them committed or not yet begun, count again. Trying, not waiting for, the
                # lock: its holder may be waiting for a researcher's lock this worker holds.
                if self._lock_researcher(conn, researcher) and (
                        self._count(conn, researcher, State.RUNNING)
                        < limits.get(researcher, 1)):
                    started = conn.execute(
                        "UPDATE submissions SET state = 'running', started = now(),"
                        " attempts = attempts + 1 WHERE id = %s RETURNING *", (row["id"],))
                    return _submission(_one(started))
                passed.append(researcher)

    def running(self, researcher: str) -> int:
        with self._transaction() as conn:
            return self._count(conn, researcher, State.RUNNING)

    def queued(self, researcher: str) -> int:
        with self._transaction() as conn:
            return self._count(conn, researcher, State.QUEUED)

    def set_progress(self, submission_id: int, text: str) -> None:
        with self._transaction() as conn:
            conn.execute("UPDATE submissions SET progress = %s WHERE id = %s",
                         (text, submission_id))

    def finish(self, submission_id: int, state: State, exit_code: int | None,
               verdict: dict[str, Any], error: str = "") -> None:
        """A run ended: DONE (the comparison ran, whatever its verdict) or FAILED."""
        if state not in (State.DONE, State.FAILED):
            raise ValueError(f"a run finishes done or failed, not {state.value}")
        with self._transaction() as conn:
            conn.execute(
                "UPDATE submissions SET state = %s, finished = now(), exit_code = %s,"
                " verdict = %s, error = %s WHERE id = %s",
                (state.value, exit_code, Jsonb(verdict), error, submission_id))

    def recover(self, max_attempts: int) -> list[Submission]:
        """At the service's start: what was running lost its worker with the service. Queue it
        again while it has started fewer than `max_attempts` times, else fail it. Returns the
        submissions changed. Only while no worker of this database runs."""
        with self._transaction() as conn:
            queued = conn.execute(
                "UPDATE submissions SET state = 'queued', started = NULL, progress = %s"
                " WHERE state = 'running' AND attempts < %s RETURNING *",
                (RESUMED, max_attempts)).fetchall()
            failed = conn.execute(
                "UPDATE submissions SET state = 'failed', finished = now(),"
                " error = 'the service stopped while this ran, ' || attempts"
                "   || ' times; it is not retried again'"
                " WHERE state = 'running' RETURNING *").fetchall()
        return sorted((_submission(row) for row in [*queued, *failed]), key=lambda s: s.id)

    def record_probe(self, site: str, rse: str, ok: bool, seconds: float,
                     detail: str = "") -> ProbeResult:
        """A probe's result, timed now; the same pair's results older than PROBES_KEPT go."""
        with self._transaction() as conn:
            row = conn.execute(
                "INSERT INTO probes (site, rse, ok, seconds, detail) VALUES (%s, %s, %s, %s, %s)"
                " RETURNING *", (site, rse, ok, seconds, detail))
            recorded = _probe(_one(row))
            conn.execute("DELETE FROM probes WHERE site = %s AND rse = %s"
                         " AND checked_at < now() - %s::interval", (site, rse, PROBES_KEPT))
        return recorded

    def probe_matrix(self) -> list[ProbeResult]:
        """The latest probe of each (site, RSE) ever probed, ordered by site and RSE."""
        with self._transaction() as conn:
            rows = conn.execute("SELECT DISTINCT ON (site, rse) * FROM probes"
                                " ORDER BY site, rse, checked_at DESC, id DESC").fetchall()
        return [_probe(row) for row in rows]

    @staticmethod
    def _lock_researcher(conn: psycopg.Connection[DictRow], researcher: str) -> bool:
        row = conn.execute("SELECT pg_try_advisory_xact_lock(%s, hashtext(%s)) AS locked",
                           (LOCKS, researcher))
        return bool(_one(row)["locked"])

    @staticmethod
    def _count(conn: psycopg.Connection[DictRow], researcher: str, state: State) -> int:
        row = conn.execute("SELECT count(*) AS n FROM submissions"
                           " WHERE researcher = %s AND state = %s", (researcher, state.value))
        return int(_one(row)["n"])


def _one(cursor: psycopg.Cursor[DictRow]) -> DictRow:
    row = cursor.fetchone()
    assert row is not None  # statements that always return a row
    return row


def _submission(row: DictRow) -> Submission:
    return Submission(
        id=row["id"], researcher=row["researcher"], site=row["site"],
        source=Source(row["source_kind"], row["source_ref"]), snakefile=row["snakefile"],
        configfile=row["configfile"], dids=list(row["dids"]), state=State(row["state"]),
        created=row["created"], started=row["started"], finished=row["finished"],
        attempts=row["attempts"], progress=row["progress"], exit_code=row["exit_code"],
        error=row["error"], verdict=dict(row["verdict"]))


def _probe(row: DictRow) -> ProbeResult:
    return ProbeResult(site=row["site"], rse=row["rse"], ok=row["ok"],
                       checked_at=row["checked_at"], seconds=row["seconds"],
                       detail=row["detail"])
