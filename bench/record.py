"""What every benchmark result records besides its figures, and how it is written: the
machine (CPU model, cores, RAM), the load average before and after, the date and the git
commit; medians with the repetitions and their spread; the performance targets, judged in one place.

Results go to bench/results/<name>.json (committed, small); bench/summary.py renders the
README's Performance table from them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"


@dataclass(frozen=True)
class Target:
    """A performance target: `subject op bound`, e.g. a ratio <= 1.10."""

    on: str  # "ratio" or "value": what of a figure is compared
    op: str  # "<=" or ">="
    bound: float
    text: str

    def met(self, subject: float | None) -> bool | None:
        if subject is None:
            return None
        return subject <= self.bound if self.op == "<=" else subject >= self.bound

    def as_dict(self) -> dict[str, Any]:
        return {"on": self.on, "op": self.op, "target": self.bound, "text": self.text}


# The performance targets, one place for every benchmark and for the summary.
END_TO_END = Target("ratio", "<=", 1.10, "<= 1.10x local copy")
REMOTE_VS_SERIAL = Target("ratio", ">=", 4.0, ">= 4x serial rucio download")
REMOTE_VS_CP = Target("ratio", ">=", 0.5, ">= 0.5x cp aggregate")
SITE_COPY = Target("ratio", "<=", 1.1, "<= 1.1x cp")
REQUESTS_PER_1000 = Target("value", "<=", 3, "<= 3 per 1,000")
ADDED_S_PER_1000 = Target("value", "<=", 0.3, "<= 0.3 s per 1,000")


def spread(values: Sequence[float], digits: int = 3) -> dict[str, Any]:
    """A median with what it is a median of: n, min, max and every value."""
    if not values:
        raise ValueError("no values to take a median of")
    return {"median": round(float(statistics.median(values)), digits), "n": len(values),
            "min": round(float(min(values)), digits), "max": round(float(max(values)), digits),
            "values": [round(float(v), digits) for v in values]}


def paired_ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """numerator/denominator of each repetition (both timed back to back)."""
    return [n / d for n, d in zip(numerators, denominators, strict=True) if d > 0]


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in _lines("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor() or "unknown")
    mem_kib = next((int(line.split()[1]) for line in _lines("/proc/meminfo")
                    if line.startswith("MemTotal:")), 0)
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gib": round(mem_kib / 2**20, 1),
            "python": platform.python_version(), "kernel": platform.release()}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def git_commit() -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=False)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain",
                            "--untracked-files=no"], capture_output=True, text=True, check=False)
    commit = done.stdout.strip() or "unknown"
    return commit + (" (with uncommitted changes in the tree)" if dirty.stdout.strip() else "")


class Provenance:
    """Started before a benchmark, finished after it: where and when it ran, under what load."""

    def __init__(self) -> None:
        self.started = dt.datetime.now(dt.UTC)
        self.load_before = load_average()

    def finish(self) -> dict[str, Any]:
        return {"date": self.started.isoformat(timespec="seconds"),
                "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "git_commit": git_commit(), "machine": machine(),
                "load_average_before": self.load_before, "load_average_after": load_average()}


def write(path: Path, result: dict[str, Any], provenance: Provenance) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**result, "provenance": provenance.finish()}, indent=1,
                               default=str) + "\n")
    print(f"results: {path}", flush=True)


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


@contextlib.contextmanager
def scratch(prefix: str, keep: Path | None = None) -> Iterator[Path]:
    """A directory for a benchmark's own testbed and runs, removed afterwards unless `keep`
    names one. Open for traversal (0711): the embedded PostgreSQL runs as a user of its own and
    reaches its data by absolute path."""
    root = keep or Path(tempfile.mkdtemp(prefix=prefix))
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o711)
    try:
        yield root
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)
