"""The demo pipeline in token mode: the workflow at SITE_A in DataLake mode, as `make demo
AUTH=token` runs it, with a WLCG bearer token as its only credential (no password, no client
certificate): Rucio, the FTS service and the storage all take the token from the file
`BEARER_TOKEN_FILE` names. The products land in the DataLake and the science passes; the token
reaches no file the run writes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from datalake_core.job_credential import DEFAULT_PATH
from datalake_core.rucio_adapter import Did
from lofar_datalake.simulate.observation import SimulationParams, simulate
from lofar_datalake_testbed import tokens
from lofar_datalake_testbed.demo import pipeline as demo_pipeline
from lofar_datalake_testbed.seed import seed

pytestmark = [pytest.mark.workflow, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
PARAMS = SimulationParams(seed=5, sky_seed=5, calibrator_obsid=730000, target_obsid=730001)
TARGET = f"L{PARAMS.target_obsid}"


def _token_only_env(bed, token_file: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("X509_USER_PROXY", "SNAKEMAKE_STORAGE_DATALAKE_PASSWORD", "BEARER_TOKEN")}
    return {**env, "RUCIO_CONFIG": str(bed.layout.token_client_config),
            "BEARER_TOKEN_FILE": str(token_file)}


def test_the_pipeline_runs_on_the_datalake_with_a_token_alone(testbed, rucio, tmp_path):
    data = tmp_path / "data"
    simulate(PARAMS, data)
    seed(testbed, data, rses=("SITE_B_DISK", "SITE_C_DAV"))
    token, _ = tokens.fetch_token(testbed.layout, testbed.pki.ca_cert)
    token_file = tmp_path / "bt"
    token_file.write_text(token)
    token_file.chmod(0o600)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    products = f"products/token-{time.time_ns()}"
    config = demo_pipeline.write_demo_config(run_dir, data, products, REPO)
    done = subprocess.run(
        [SNAKEMAKE, "--profile", "profiles/local", "--directory", str(run_dir), "--configfile",
         str(config), "--storage-datalake-rucio-config", str(testbed.layout.token_client_config),
         "--storage-datalake-ca-bundle", str(testbed.pki.ca_cert)],
        cwd=REPO, env=_token_only_env(testbed, token_file), capture_output=True, text=True,
        timeout=1200)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    stored = set(rucio.list_files("lofar", f"{products}/*"))
    assert f"{products}/{TARGET}/image/{TARGET}-image.fits" in stored
    assert f"{products}/provenance.json" in stored
    scores = json.loads((run_dir / "results" / TARGET / "qa" / f"{TARGET}_sources.json")
                        .read_text())
    assert scores["n_bright_found"] == scores["n_bright"] > 0  # against the simulation's truth
    assert abs(scores["median_flux_ratio"] - 1) < 0.1
    [image] = rucio.list_replicas([Did("lofar", f"{products}/{TARGET}/image/{TARGET}-image.fits")])
    assert image["states"].get("SITE_A_DISK") == "AVAILABLE"
    # The jobs' credential holds the token by design: private, and the only file that does.
    credential = run_dir / DEFAULT_PATH
    assert credential.stat().st_mode & 0o077 == 0
    for path in run_dir.rglob("*"):
        if path.is_file() and path != credential and path.stat().st_size < 50 * 2**20:
            assert token.encode() not in path.read_bytes(), path
    assert token not in done.stdout + done.stderr
