"""What the provider did in one run, as JSON lines: the replica each input was read from and how,
the rules and FTS jobs that staged files, the outputs stored. Provenance manifests and
`lofar-datalake compare` read it; it holds DIDs, RSEs, sizes and times, never credentials.

Each Snakemake process writes its own file, `.snakemake/datalake/journal-<run id>.jsonl` under
the working directory, created on the first event (the provider is made before Snakemake enters
the working directory).
"""

from __future__ import annotations

import enum
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JOURNAL_DIR = Path(".snakemake") / "datalake"


class Way(enum.StrEnum):
    """How an input was made local."""

    PRESENT = "already present and verified"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    COPY = "copy"
    HTTPS = "https"


@dataclass(frozen=True)
class Staged:
    """The outcome of staging one input; its text is the `how` of the journal's input event."""

    way: Way
    source: str | None = None  # the RSE (or local copy) read from; None when already present

    def __str__(self) -> str:
        return self.way.value if self.source is None else f"{self.way.value} from {self.source}"

    @property
    def moved(self) -> bool:
        """Whether bytes were copied: a link, or a file already there, moves none."""
        return self.way in (Way.COPY, Way.HTTPS)

    @classmethod
    def parse(cls, text: str) -> Staged:
        way, found, source = text.partition(" from ")
        return cls(Way(way), source if found else None)


class Journal:
    def __init__(self, run_id: str, directory: Path | None = None) -> None:
        self.run_id = run_id
        self._directory = directory
        self._path: Path | None = None
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        if self._path is None:
            directory = self._directory or Path.cwd() / JOURNAL_DIR
            directory.mkdir(parents=True, exist_ok=True)
            self._path = directory / f"journal-{self.run_id}.jsonl"
        return self._path

    def record(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, "time": time.time(), "run": self.run_id, **fields},
                          default=str)
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a") as handle:
                handle.write(line + "\n")


def read_events(workdir: Path, since: float = 0.0) -> list[dict[str, Any]]:
    """Every event recorded under `workdir` at or after `since` (POSIX seconds), by time."""
    events = [e for e in _all_events(workdir / JOURNAL_DIR) if float(e.get("time", 0)) >= since]
    return sorted(events, key=lambda e: float(e["time"]))


def _all_events(directory: Path) -> Iterator[dict[str, Any]]:
    for path in sorted(directory.glob("journal-*.jsonl")):
        with open(path) as handle:
            for line in handle:
                line = line.strip()
                if line:
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a line cut by a killed process
