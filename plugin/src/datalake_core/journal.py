"""What the provider did in one run, as JSON lines: the replica each input was read from and how,
the rules and FTS jobs that staged files, the outputs stored. Provenance manifests and
`lofar-datalake compare` read it; it holds DIDs, RSEs, sizes and times, never credentials.
Each kind of line is a record here (`InputEvent`, `SiteTransferEvent`, ...) with one
serialiser, so writers and readers agree on its keys.

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
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar

JOURNAL_DIR = Path(".snakemake") / "datalake"


class Way(enum.StrEnum):
    """How an input was made local."""

    PRESENT = "already present and verified"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    COPY = "copy"
    HTTPS = "https"
    XROOTD = "root"


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
        return self.way in (Way.COPY, Way.HTTPS, Way.XROOTD)

    @classmethod
    def parse(cls, text: str) -> Staged:
        way, found, source = text.partition(" from ")
        return cls(Way(way), source if found else None)


@dataclass(frozen=True, kw_only=True)
class Event:
    """One journal line. `time` and `run` are stamped by the journal that writes it; the
    subclasses' fields are the line's other keys, in this order."""

    KIND: ClassVar[str] = ""
    # Keys left out of the line while unset (site transfers name either rules or FTS jobs).
    OPTIONAL: ClassVar[tuple[str, ...]] = ()
    time: float = 0.0
    run: str = ""

    def to_json(self) -> dict[str, Any]:
        line: dict[str, Any] = {"event": self.KIND, "time": self.time, "run": self.run}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name not in line and (value is not None or f.name not in self.OPTIONAL):
                line[f.name] = str(value) if isinstance(value, Staged) else value
        return line

    @staticmethod
    def from_json(line: dict[str, Any]) -> Event | None:
        """The event a line holds; None for a kind this version does not know."""
        kind = KINDS.get(str(line.get("event")))
        if kind is None:
            return None
        values = {f.name: line[f.name] for f in fields(kind) if f.name in line}
        if isinstance(values.get("how"), str):
            values["how"] = Staged.parse(values["how"])
        return kind(**values)


@dataclass(frozen=True, kw_only=True)
class InputEvent(Event):
    """An input made local: the replica read and how."""

    KIND = "input"
    did: str
    bytes: int = 0
    adler32: str | None = None
    md5: str | None = None
    how: Staged = Staged(Way.PRESENT)
    rse: str | None = None
    pfn: str | None = None
    at_site: bool = True
    start: float | None = None

    @property
    def began(self) -> float:
        return self.start or self.time


@dataclass(frozen=True, kw_only=True)
class OutputEvent(Event):
    KIND = "output"
    did: str
    bytes: int = 0
    adler32: str | None = None
    rse: str | None = None
    action: str = ""
    rules: list[str] = field(default_factory=list)
    dataset: str | None = None


@dataclass(frozen=True, kw_only=True)
class OutputFailedEvent(Event):
    """An upload that failed; `kept` is where the product was kept, if it was."""

    KIND = "output_failed"
    did: str
    rse: str | None = None
    adler32: str | None = None
    reason: str = ""
    kept: str | None = None
    registered: str = ""


@dataclass(frozen=True, kw_only=True)
class BadReplicaEvent(Event):
    """A replica whose bytes differ from the catalogue, listed for an operator to declare."""

    KIND = "bad_replica"
    did: str
    rse: str
    pfn: str
    reason: str = ""
    lfn_list: str = ""


@dataclass(frozen=True, kw_only=True)
class SiteTransferEvent(Event):
    """Files brought to the site's RSE by Rucio rules (`rules`) or by FTS jobs."""

    KIND = "site_transfer"
    OPTIONAL = ("rules", "fts_jobs", "fts_endpoint", "attempts")
    policy: str
    destination: str
    start: float = 0.0
    files: list[str] = field(default_factory=list)
    bytes: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    rules: list[str] | None = None
    fts_jobs: list[str] | None = None
    fts_endpoint: list[str] | None = None
    attempts: dict[str, int] | None = None


@dataclass(frozen=True, kw_only=True)
class FtsRetryEvent(Event):
    KIND = "fts_retry"
    destination: str
    attempt: int
    attempts: int
    delay: float
    failed: dict[str, list[str]] = field(default_factory=dict)  # each source's reason


@dataclass(frozen=True, kw_only=True)
class RecallEvent(Event):
    """Files recalled from a tape RSE to its staging area by Rucio rules: `requested` (with
    the rules, new or reused), `online`, or `failed` (FTS's reason per file, from the rule)."""

    KIND = "recall"
    action: str  # requested | online | failed
    tape_rse: str
    staging_rse: str
    files: list[str] = field(default_factory=list)
    bytes: int = 0
    rules: list[str] = field(default_factory=list)
    reused: int = 0
    failed: dict[str, str] = field(default_factory=dict)


KINDS: dict[str, type[Event]] = {k.KIND: k for k in (
    InputEvent, OutputEvent, OutputFailedEvent, BadReplicaEvent, SiteTransferEvent,
    FtsRetryEvent, RecallEvent)}



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

    def record(self, event: Event) -> None:
        stamped = replace(event, time=time.time(), run=self.run_id)
        line = json.dumps(stamped.to_json(), default=str)
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a") as handle:
                handle.write(line + "\n")


def read_journal(workdir: Path, since: float = 0.0) -> list[Event]:
    """Every event recorded under `workdir` at or after `since` (POSIX seconds), by time; lines
    of kinds this version does not know are left out."""
    events = (Event.from_json(line) for line in read_events(workdir, since))
    return [e for e in events if e is not None]


def read_events(workdir: Path, since: float = 0.0) -> list[dict[str, Any]]:
    """The lines as written (JSON objects) at or after `since` (POSIX seconds), by time."""
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
