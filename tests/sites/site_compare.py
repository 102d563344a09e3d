"""What the site comparison tests share: running `lofar-datalake compare --demo` at a testbed
site, and the science of a run's products against the simulation's truth (not a test module:
pytest would collect functions named test*)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline_science import check_science

__all__ = ["CLI", "REPO", "Compared", "check_science", "compare_at", "logs_of"]

CLI = str(Path(sys.executable).with_name("lofar-datalake"))
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Compared:
    code: int
    output: str
    out: Path
    verdict: dict[str, Any]

    def data(self) -> Path:
        """The simulated observation the comparison ran on (sheet, sky model, truth)."""
        return Path(self.verdict["workflow"]["data"])


def compare_at(profile: str, out: Path, testbed_dir: Path, timeout: float,
               env: dict[str, str] | None = None) -> Compared:
    """`compare --demo --fresh-observation --profile profiles/<profile>`: a new observation,
    so that every input is staged for real."""
    cmd = [CLI, "compare", "--demo", "--fresh-observation", "--profile",
           str(REPO / "profiles" / profile), "--out", str(out)]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO,
        env={**os.environ, "LOFAR_DATALAKE_TESTBED_DIR": str(testbed_dir), **(env or {})},
    )
    verdict_file = out / "verdict.json"
    verdict = json.loads(verdict_file.read_text()) if verdict_file.is_file() else {}
    return Compared(done.returncode, done.stdout + done.stderr, out, verdict)


def logs_of(run: Path, chars: int = 3000) -> str:
    """The end of Snakemake's log and of every batch job's error output, for a failure."""
    parts = [f"--- snakemake.log\n{(run / 'snakemake.log').read_text()[-chars:]}"
             if (run / "snakemake.log").is_file() else ""]
    for path in sorted((run / ".snakemake").glob("*/*/*.err")) + sorted(
            (run / ".snakemake" / "slurm_logs").rglob("*.log")):
        parts.append(f"--- {path.relative_to(run)}\n{path.read_text()[-1500:]}")
    return "\n".join(parts)[-20000:]
