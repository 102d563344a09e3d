"""The testbed's server environment: a venv of its own under the state directory.

The Rucio *server* package (`rucio`) and the client package a DataLake user installs
(`rucio-clients`) ship the same `rucio` modules, so they cannot share an environment. The user's
environment holds clients only; the Rucio server and daemons, embedded PostgreSQL and the storage
and FTS services run from this venv, with the pinned set in `servers/requirements.lock` and a copy
of the `servers` package (the only testbed code that runs there).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

PACKAGE = "lofar_datalake_testbed"
# What the server processes import from this package; nothing else is copied.
SERVER_SIDE = ("__init__.py", "layout.py", "rucio_config.py", "tokens.py", "servers")
ENV_VAR = "LOFAR_DATALAKE_SERVER_ENV"
_PIP = ("--quiet", "--disable-pip-version-check", "--no-input")


@dataclass(frozen=True)
class ServerEnv:
    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    def bin(self, name: str) -> str:
        found = self.root / "bin" / name
        if not found.exists():
            raise FileNotFoundError(f"{name} is not in the testbed's server environment "
                                    f"{self.root}")
        return str(found)

    @property
    def site_packages(self) -> Path:
        rel = Path(sysconfig.get_path("purelib")).relative_to(sysconfig.get_path("data"))
        return self.root / rel

    @property
    def rucio_migrations(self) -> Path:
        """Rucio's alembic scripts, as installed with the server."""
        return self.site_packages / "rucio" / "db" / "sqla" / "migrate_repo"

    def module(self, name: str, *args: str) -> list[str]:
        """argv that runs `python -m lofar_datalake_testbed.servers.<name> ARGS` there."""
        return [str(self.python), "-m", f"{PACKAGE}.servers.{name}", *args]

    def ensure(self) -> ServerEnv:
        """Create or update the venv (pinned packages once, server code whenever it changed)."""
        lock = _package_dir() / "servers" / "requirements.lock"
        wanted = hashlib.sha256(lock.read_bytes()).hexdigest()
        stamp = self.root / ".requirements-sha256"
        if not (stamp.exists() and stamp.read_text() == wanted and self.python.exists()):
            print(f"  installing the testbed's servers into {self.root} (once, ~1 min)", flush=True)
            if not self.python.exists():
                subprocess.run([sys.executable, "-m", "venv", str(self.root)], check=True)
            subprocess.run(
                [str(self.python), "-m", "pip", "install", *_PIP, "-r", str(lock)], check=True
            )
            stamp.write_text(wanted)
        self._copy_server_code()
        return self

    def _copy_server_code(self) -> None:
        source, target = _package_dir(), self.site_packages / PACKAGE
        digest = _tree_digest(source, SERVER_SIDE)
        mark = target / ".source-sha256"
        if mark.exists() and mark.read_text() == digest:
            return
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for name in SERVER_SIDE:
            item = source / name
            if item.is_dir():
                shutil.copytree(item, target / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(item, target / name)
        mark.write_text(digest)


def _package_dir() -> Path:
    return Path(str(resources.files(PACKAGE)))


def _tree_digest(root: Path, names: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for name in names:
        paths = [root / name] if (root / name).is_file() else sorted((root / name).rglob("*"))
        for path in paths:
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def server_env(state_dir: Path) -> ServerEnv:
    """`<state>/server-env`, or $LOFAR_DATALAKE_SERVER_ENV (testbeds that share one, e.g. the
    tests' private testbeds and the demo's)."""
    shared = os.environ.get(ENV_VAR)
    return ServerEnv(Path(shared).resolve() if shared else state_dir / "server-env")
