"""The service's records (service/store.py) in a real embedded PostgreSQL (service/database.py),
started for this module in a state directory laid out as the service's own and stopped at the
end: the queue, the per-researcher limits under concurrent claimers, the recovery after a
restart of the service, the site-health probes' results, and the records surviving a restart
of the database."""

from __future__ import annotations

import datetime as dt
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from lofar_datalake.service import database
from lofar_datalake.service.model import Source, State
from lofar_datalake.service.store import Store

SOURCE = Source("git", "https://git.example.org/lofar/flow.git@0123abc")


@pytest.fixture(scope="module")
def pgdata() -> Iterator[Path]:
    """As the service keeps it: in the state directory's service/, both closed to others.
    Not under pytest's base directory: every pytest session that starts on this machine makes
    /tmp/pytest-of-<user> private again, and PostgreSQL's user would lose its way in mid-initdb."""
    state = Path(tempfile.mkdtemp(prefix="ldl-store-test-"))
    (state / "service").mkdir(mode=0o700)
    path = state / "service" / "db"
    try:
        database.start(path)
        yield path
    finally:
        database.stop(path)
        assert not database.is_running(path)
        shutil.rmtree(state)


@pytest.fixture()
def conninfo(pgdata: Path) -> str:
    """The service's database, emptied (tables dropped) for each test."""
    conninfo = database.start(pgdata)  # running already (a test may have stopped it)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS submissions, probes, schema_version")
    return conninfo


@pytest.fixture()
def store(conninfo: str) -> Iterator[Store]:
    with Store(conninfo) as opened:
        opened.migrate()
        yield opened


def add(store: Store, researcher: str, site: str = "leiden") -> int:
    return store.add(researcher, site, SOURCE, "Snakefile", "config.yaml", ["lofar:L1"]).id


def test_migrating_again_changes_nothing(store: Store) -> None:
    first = add(store, "alice")
    store.migrate()
    store.migrate()
    assert [s.id for s in store.history("alice")] == [first]
    with psycopg.connect(store.conninfo) as conn:
        assert conn.execute("SELECT version FROM schema_version ORDER BY version"
                            ).fetchall() == [(1,), (2,)]


def test_the_probe_matrix_is_the_latest_probe_of_each_site_and_rse(store: Store) -> None:
    store.record_probe("SITE_B", "SITE_A_DISK", True, 4.0)
    old = store.record_probe("SITE_A", "SITE_C_DAV", True, 7.5)
    new = store.record_probe("SITE_A", "SITE_C_DAV", False, 12.25, "refused\nconnection")
    assert new.checked_at >= old.checked_at and new.checked_at.tzinfo is not None
    matrix = store.probe_matrix()
    assert [(r.site, r.rse, r.ok, r.seconds, r.detail) for r in matrix] == [
        ("SITE_A", "SITE_C_DAV", False, 12.25, "refused\nconnection"),
        ("SITE_B", "SITE_A_DISK", True, 4.0, "")]
    # Results older than PROBES_KEPT go as the same pair is probed again.
    with psycopg.connect(store.conninfo, autocommit=True) as conn:
        conn.execute("UPDATE probes SET checked_at = now() - interval '31 days'"
                     " WHERE site = 'SITE_B'")
        store.record_probe("SITE_B", "SITE_A_DISK", True, 3.0)
        assert conn.execute("SELECT count(*) FROM probes WHERE site = 'SITE_B'"
                            ).fetchone() == (1,)


def test_a_submission_is_recorded_as_given_and_read_back_by_its_owner(store: Store) -> None:
    before = dt.datetime.now(dt.UTC)
    added = store.add("alice", "leiden", SOURCE, "workflow/Snakefile", "config/config.yaml",
                      ["lofar:L1", "lofar:L2"])
    found = store.get(added.id, "alice")
    assert found == added
    assert (found.researcher, found.site, found.source) == ("alice", "leiden", SOURCE)
    assert (found.snakefile, found.configfile) == ("workflow/Snakefile", "config/config.yaml")
    assert found.dids == ["lofar:L1", "lofar:L2"]
    assert (found.state, found.attempts, found.progress, found.error) == (State.QUEUED, 0, "", "")
    assert found.started is None and found.finished is None and found.exit_code is None
    assert found.verdict == {}
    assert found.created.utcoffset() == dt.timedelta(0)
    assert before - dt.timedelta(seconds=5) <= found.created <= dt.datetime.now(dt.UTC)


def test_another_researcher_sees_nothing_of_yours(store: Store) -> None:
    mine = add(store, "alice")
    assert store.get(mine, "bob") is None
    assert store.get(mine + 1000, "alice") is None  # as missing as bob's view of alice's
    assert store.history("bob") == []
    assert (store.running("bob"), store.queued("bob"), store.queued("alice")) == (0, 0, 1)


def test_history_is_newest_first_and_keeps_rejected_submissions(store: Store) -> None:
    queued = add(store, "alice")
    rejected = store.add("alice", "nowhere", SOURCE, "Snakefile", "config.yaml", [],
                         state=State.REJECTED, error="site 'nowhere' is not offered")
    newest = add(store, "alice")
    add(store, "bob")
    assert [s.id for s in store.history("alice")] == [newest, rejected.id, queued]
    assert [s.id for s in store.history("alice", limit=2)] == [newest, rejected.id]
    assert (rejected.state, rejected.error) == (State.REJECTED, "site 'nowhere' is not offered")
    assert rejected.finished is not None
    assert store.queued("alice") == 2
    with pytest.raises(ValueError, match="queued or rejected"):
        store.add("alice", "leiden", SOURCE, "Snakefile", "config.yaml", [], state=State.DONE)


def test_claims_take_the_oldest_submission_within_each_researchers_limit(store: Store) -> None:
    a1, a2, b1 = add(store, "alice"), add(store, "alice"), add(store, "bob")
    limits = {"alice": 1, "bob": 1}
    claimed = store.claim(limits)
    assert claimed is not None and claimed.id == a1
    assert (claimed.state, claimed.attempts) == (State.RUNNING, 1)
    assert claimed.started is not None
    assert _id(store.claim(limits)) == b1
    assert store.claim(limits) is None
    assert store.claim(limits) is None
    assert (store.running("alice"), store.queued("alice")) == (1, 1)
    store.finish(a1, State.DONE, 0, {"equivalent": True})
    assert _id(store.claim(limits)) == a2
    assert store.claim(limits) is None


def test_a_busy_researcher_does_not_block_another(store: Store) -> None:
    for _ in range(5):
        add(store, "alice")
    bob = add(store, "bob")  # queued after all of alice's
    assert store.claim({"alice": 1}) is not None
    assert _id(store.claim({"alice": 1})) == bob  # bob is missing from the limits: 1 run


def test_a_researcher_runs_as_many_at_once_as_their_limit(store: Store) -> None:
    ids = [add(store, "alice") for _ in range(4)]
    assert [_id(store.claim({"alice": 3})) for _ in range(4)] == [*ids[:3], None]
    assert store.running("alice") == 3
    assert store.claim({}) is None  # the default, 1, is below what runs
    assert _id(store.claim({"alice": 4})) == ids[3]


def test_concurrent_claimers_never_exceed_a_researchers_limit(conninfo: str,
                                                             store: Store) -> None:
    # Each researcher's submissions one after the other in the queue, and the claimers (each
    # with a connection of its own) claiming at the same moment, round after round: each round
    # they all reach for the same researcher's next submissions.
    limits = {"r0": 1, "r1": 1, "r2": 2, "r3": 3}  # r4: missing, so 1
    researchers = [*limits, "r4"]
    for researcher in researchers:
        for _ in range(40):
            add(store, researcher)
    claimers = 4
    rounds = threading.Barrier(claimers, timeout=60)
    problems: list[str] = []
    ran: list[int] = []

    def claimer() -> None:
        with Store(conninfo) as mine:
            while True:
                rounds.wait()
                submission = mine.claim(limits)
                rounds.wait()  # every claim of this round is made
                if submission is not None:
                    who = submission.researcher
                    if mine.running(who) > limits.get(who, 1):
                        problems.append(f"{who}: {mine.running(who)} running at once")
                rounds.wait()
                if submission is not None:
                    ran.append(submission.id)
                    mine.finish(submission.id, State.DONE, 0, {})
                rounds.wait()  # nothing changes until the next round's claims
                if sum(mine.queued(r) for r in researchers) == 0:
                    return

    threads = [threading.Thread(target=claimer) for _ in range(claimers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert problems == []
    assert sorted(ran) == sorted(s.id for r in researchers for s in store.history(r))
    assert len(set(ran)) == 200
    assert all(store.running(r) == 0 for r in researchers)


def test_a_finished_run_keeps_its_exit_code_verdict_and_error(store: Store) -> None:
    done, failed = add(store, "alice"), add(store, "alice")
    assert store.claim({"alice": 2}) is not None and store.claim({"alice": 2}) is not None
    store.set_progress(done, "[3/7] imaging")
    verdict = {"equivalent": False, "runs": {"datalake": {"exit_code": 0}}, "images": [0.5]}
    store.finish(done, State.DONE, 0, verdict)
    store.finish(failed, State.FAILED, 1, {}, "the local run failed (exit 1)")
    ended = store.get(done, "alice")
    assert ended is not None and ended.finished is not None and ended.started is not None
    assert (ended.state, ended.exit_code, ended.verdict, ended.progress) == (
        State.DONE, 0, verdict, "[3/7] imaging")
    assert ended.started <= ended.finished
    broken = store.get(failed, "alice")
    assert broken is not None
    assert (broken.state, broken.exit_code, broken.error) == (
        State.FAILED, 1, "the local run failed (exit 1)")
    assert store.running("alice") == 0
    with pytest.raises(ValueError, match="done or failed"):
        store.finish(done, State.QUEUED, None, {})


def test_a_restart_queues_interrupted_runs_again_until_their_attempts_are_used_up(
        store: Store) -> None:
    first, second, waiting = add(store, "alice"), add(store, "bob"), add(store, "carol")
    store.claim({})
    store.claim({})
    assert [(s.id, s.state) for s in store.recover(max_attempts=2)] == [
        (first, State.QUEUED), (second, State.QUEUED)]
    resumed = store.get(first, "alice")
    assert resumed is not None and "resumed after a restart" in resumed.progress
    assert (resumed.attempts, resumed.started) == (1, None)
    assert _id(store.claim({})) == first  # still the oldest
    assert _id(store.claim({})) == second
    store.finish(second, State.DONE, 0, {})
    changed = store.recover(max_attempts=2)  # `first` has started twice now
    assert [(s.id, s.state) for s in changed] == [(first, State.FAILED)]
    assert changed[0].error == (
        "the service stopped while this ran, 2 times; it is not retried again")
    assert changed[0].finished is not None
    assert store.get(waiting, "carol") == store.history("carol")[0]
    assert store.queued("carol") == 1  # never ran: untouched
    assert store.recover(max_attempts=2) == []


def test_the_records_survive_a_restart_of_the_database(pgdata: Path, store: Store) -> None:
    queued = add(store, "alice")
    running = add(store, "bob")
    store.claim({})  # alice's
    store.claim({})  # bob's
    store.finish(queued, State.DONE, 0, {"equivalent": True})
    store.set_progress(running, "[1/7] calibrating")
    before = store.history("alice") + store.history("bob")

    assert database.stop(pgdata)
    assert not database.is_running(pgdata)
    assert database.stop(pgdata) is False
    conninfo = database.start(pgdata)
    assert database.is_running(pgdata)

    with Store(conninfo) as reopened:
        reopened.migrate()
        assert reopened.history("alice") + reopened.history("bob") == before
    # The store that was open across the restart fails once, then connects again.
    with pytest.raises(psycopg.OperationalError):
        store.history("alice")
    assert store.history("alice") == before[:1]


@pytest.mark.skipif(os.geteuid() != 0, reason="the server runs as a user of its own as root")
def test_as_root_only_the_servers_user_reaches_the_database(pgdata: Path, conninfo: str) -> None:
    state, data = pgdata.parent.parent, pgdata.stat()
    assert (data.st_uid, data.st_mode & 0o777) == (pwd.getpwnam("embedded_postgres").pw_uid, 0o700)
    for closed in (state, state / "service"):  # passable by the server's group, by nobody else
        assert closed.stat().st_mode & 0o777 == 0o710
        assert closed.stat().st_gid == data.st_gid
    as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]
    psql = str(database.POSTGRES_BIN_PATH / "psql")
    tried = subprocess.run([*as_nobody, psql, conninfo, "-c", "SELECT 1"], capture_output=True,
                           text=True, cwd="/")
    assert tried.returncode != 0, tried.stdout
    assert "Permission denied" in tried.stderr
    listed = subprocess.run([*as_nobody, "ls", state], capture_output=True, text=True, cwd="/")
    assert listed.returncode != 0


def _id(submission: object) -> int | None:
    return getattr(submission, "id", None)
