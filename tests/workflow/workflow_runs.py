"""Running the workflow on a simulated observation in a directory of its own (support for the
workflow tests; not a test module)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def run_snakemake(
    workdir: Path, *args: str, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def write_config(
    workdir: Path, keep_intermediate: bool = True, calibration: dict[str, Any] | None = None
) -> Path:
    """The shipped config, pointed at the simulation in `workdir`/data."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config |= {
        "observations": "data/observations.tsv",
        "truth": "data/truth",
        "keep_intermediate": keep_intermediate,
    }
    config["local"]["data_dir"] = "data"
    config["calibration"] |= {"skymodel": "data/calibrator.skymodel"} | (calibration or {})
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
