"""What the site comparison tests share: running `lofar-datalake compare --demo` at a testbed
site, and the science of a run's products against the simulation's truth (not a test module:
pytest would collect functions named test*)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lofar_datalake.pipeline import crossmatch
from lofar_datalake.pipeline.catalogue import read_catalogue
from lofar_datalake.pipeline.qa import image_frequency
from lofar_datalake.simulate import truth

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


def check_science(run: Path, data: Path) -> None:
    """Every simulated target source found by the run at its true position and flux."""
    with open(data / "observations.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    obs = next(r["observation"] for r in rows if r["role"] == "target")
    catalogue = read_catalogue(run / f"results/{obs}/catalogue/{obs}.srl.csv")
    matches = crossmatch.crossmatch(
        truth.read_target_sources(data / "truth"), np.asarray(catalogue["RA"]),
        np.asarray(catalogue["DEC"]), np.asarray(catalogue["Total_flux"]),
        image_frequency(run / f"results/{obs}/image/{obs}-image.fits"), radius_arcsec=10.0,
    )  # fmt: skip
    assert matches, "no simulated sources to match"
    for m in matches:
        assert m.found and m.separation_arcsec <= 2.0 and abs(m.flux_ratio - 1) <= 0.05, m
