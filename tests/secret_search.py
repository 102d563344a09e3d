"""Looking for a planted secret (not a test module): in files, and in what anyone on the
machine could read while a run goes on (process lists, a batch system's queue, the environments
jobs are started with), sampled.
Shared by the secret tests of the integration and site suites (pytest puts this directory on
sys.path for tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path


def files_containing(secret: str, roots: Iterable[Path], skip: Iterable[Path] = ()) -> list[Path]:
    """Every file under `roots` (recursively, symlinks not followed) whose bytes hold `secret`,
    except those in `skip` (the credential files that must hold it)."""
    needle = secret.encode()
    skipped = set(skip)
    found = []
    for root in roots:
        for directory, _, names in os.walk(root):
            for name in names:
                path = Path(directory) / name
                if path in skipped or path.is_symlink() or not path.is_file():
                    continue
                try:
                    if needle in path.read_bytes():
                        found.append(path)
                except OSError:
                    continue
    return found


@dataclass
class Sampler:
    """Samples text a person on the machine could read while a run goes on (`ps` argument
    lists, a batch system's job records), every `every` seconds, until stopped."""

    probes: dict[str, Callable[[], str]]
    every: float = 0.5
    seen: dict[str, set[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, probe in self.probes.items():
                try:
                    self.seen.setdefault(name, set()).add(probe())
                except (OSError, subprocess.SubprocessError):
                    continue
            self._stop.wait(self.every)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def containing(self, secret: str) -> list[str]:
        return [name for name, texts in self.seen.items() if any(secret in t for t in texts)]

    def lines(self, name: str) -> set[str]:
        """Every line one probe's samples held."""
        return {line for text in self.seen.get(name, ()) for line in text.splitlines()}


def process_args() -> str:
    """`ps` with full argument lists (-ww: else cut at the terminal width)."""
    return subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True,
                          timeout=20).stdout


def job_environments(marker: bytes = b"--target-jobs") -> str:
    """The environments of the job processes Snakemake starts (their command line holds
    `marker`), one variable a line: what a batch system records with each job (Slurm's
    `--export=ALL`), read from /proc."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker not in (proc / "cmdline").read_bytes():
                continue
            found.append((proc / "environ").read_bytes().replace(b"\0", b"\n").decode(
                errors="replace"))
        except OSError:
            continue
    return "\n".join(found)
