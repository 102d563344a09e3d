"""Where each submission's files live, and what a finished comparison tells the researcher.

    <state>/service/        the service's own (database, session key): mode 0700, never a run's
    <state>/runs/<id>/      one submission, owned by the researcher's system user, mode 0700:
        workflow/           the submitted workflow, as unpacked or checked out
        compare/            `lofar-datalake compare --out`: both runs, verdict.json, report.html
        home/               the run's HOME, caches and TMPDIR; with a token client its access
                            token (bearer-token, 0600), while the run lasts
        rucio.cfg, ca.pem   the researcher's Rucio client configuration (no secret in it)
        run.log             what compare printed
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOG_TAIL_LINES = 200
STEPS = re.compile(r"(\d+) of (\d+) steps \((\d+)%\) done")


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @classmethod
    def of(cls, state: Path, submission_id: int) -> RunPaths:
        return cls(state / "runs" / str(submission_id))

    @property
    def workflow(self) -> Path:
        return self.root / "workflow"

    @property
    def compare(self) -> Path:
        return self.root / "compare"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def bearer_token(self) -> Path:
        return self.home / "bearer-token"

    @property
    def rucio_config(self) -> Path:
        return self.root / "rucio.cfg"

    @property
    def ca_bundle(self) -> Path:
        return self.root / "ca.pem"

    @property
    def log(self) -> Path:
        return self.root / "run.log"

    @property
    def verdict(self) -> Path:
        return self.compare / "verdict.json"

    @property
    def report(self) -> Path:
        return self.compare / "report.html"


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def progress(paths: RunPaths) -> str:
    """The run's progress in a line: which side of the comparison runs, and Snakemake's count
    of steps done there."""
    side = ""
    for line in tail(paths.log, 400).splitlines():
        if line.startswith("==> "):
            side = line.removeprefix("==> ").split(" in /", 1)[0]
    steps = ""
    for log in sorted(paths.compare.glob("*/snakemake.log"), key=lambda p: p.stat().st_mtime):
        found = STEPS.findall(tail(log, 400))
        if found:
            done, total, percent = found[-1]
            steps = f"{done} of {total} steps ({percent}%)"
    return "; ".join(part for part in (side, steps) if part)


def disk_bytes(path: Path) -> int:
    """Bytes under `path`, each file once (hard links and the links to replicas count once;
    symbolic links not at all: they point at storage the run does not own)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for file in path.rglob("*"):
        try:
            st = file.lstat()
        except OSError:
            continue
        if file.is_symlink() or (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        total += st.st_size if file.is_file() else 0
    return total


def summary(verdict: dict[str, Any]) -> dict[str, Any]:
    """What the researcher's page shows of a verdict: the answer, the products that differ,
    each side's time and bytes moved."""
    products = verdict.get("products") or []
    runs = verdict.get("runs") or {}
    return {
        "equivalent": verdict.get("equivalent"),
        "products": len(products),
        "differing": [{"path": p.get("path"), "method": p.get("method"),
                       "summary": p.get("summary", "")}
                      for p in products if not p.get("equivalent")],
        "runs": {side: {"wall_s": r.get("wall_s"), "exit_code": r.get("exit_code"),
                        "bytes_moved": (r.get("staging") or {}).get("bytes"),
                        "files_staged": (r.get("staging") or {}).get("files")}
                 for side, r in runs.items()},
        "notes": list(verdict.get("notes") or []),
    }


def read_verdict(paths: RunPaths) -> dict[str, Any]:
    try:
        data = json.loads(paths.verdict.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
