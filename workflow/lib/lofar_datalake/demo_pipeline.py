"""`lofar-datalake demo`: the main job on the local DataLake, end to end.

A simulated LOFAR observation (calibrator + target beam, known truth) is put into the DataLake
spread over SITE_B and SITE_C; the workflow then runs at SITE_A in DataLake mode
(`--profile profiles/local`): the subbands are staged to SITE_A by Rucio rules, processed, and the
products are stored back into the DataLake with a second copy at SITE_B. Finally the science is
scored against the simulation's truth and the stage timings are printed.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from .testbed.layout import Layout, default_dir
from .testbed.orchestrator import Testbed
from .testbed.seed import seed

ROOT = Path(__file__).resolve().parents[3]  # workflow/lib/lofar_datalake -> project root
DEMO_DIR = ROOT / "demo"


def simulate_demo_data(data: Path) -> None:
    if (data / "observations.tsv").exists():
        print(f"==> simulated observation already in {data}", flush=True)
        return
    from .simulate.observation import SimulationParams, simulate

    print(f"==> simulating a LOFAR observation into {data}", flush=True)
    started = time.monotonic()
    simulate(SimulationParams(seed=1, sky_seed=1), data)
    print(f"    done in {time.monotonic() - started:.1f} s", flush=True)


def testbed_args(bed: Testbed) -> list[str]:
    """Snakemake arguments that point the storage plugin at the local DataLake `bed`."""
    return ["--storage-datalake-rucio-config", str(bed.layout.client_config),
            "--storage-datalake-ca-bundle", str(bed.pki.ca_cert)]


def write_demo_config(run_dir: Path, data: Path, products: str) -> Path:
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config |= {
        "input_mode": "datalake",
        "observations": str(data / "observations.tsv"),
        "truth": str(data / "truth"),
    }
    config["local"]["data_dir"] = str(data)
    config["calibration"]["skymodel"] = str(data / "calibrator.skymodel")
    config["datalake"]["products"] = products
    path = run_dir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _stage_table(run_dir: Path) -> None:
    print("==> stage wall time and peak memory (benchmark files)")
    rows: dict[str, list[tuple[float, float]]] = {}
    for tsv in sorted((run_dir / "benchmarks").rglob("*.tsv")):
        stage = tsv.relative_to(run_dir / "benchmarks").parts[0]
        with open(tsv, newline="") as handle:
            record = next(csv.DictReader(handle, delimiter="\t"))
        max_rss = float(record["max_rss"]) if record["max_rss"] not in ("-", "NA") else 0.0
        rows.setdefault(stage, []).append((float(record["s"]), max_rss))
    for stage, values in rows.items():
        wall = sum(v[0] for v in values)
        rss = max(v[1] for v in values)
        print(f"    {stage:<18} {len(values):>3} job(s) {wall:7.1f} s   peak {rss:7.0f} MB")


def _science(run_dir: Path) -> None:
    print("==> science against the simulation's truth")
    for path in sorted((run_dir / "results").glob("*/qa/*.json")):
        scores = json.loads(path.read_text())
        keep = {
            k: round(v, 4) if isinstance(v, float) else v for k, v in scores.items() if k != "truth"
        }
        print(f"    {path.name}: {keep}")


def run_pipeline_demo(state_dir: Path | None = None) -> int:
    bed = Testbed(Layout(state_dir or default_dir()))
    if not bed.status():
        print("the testbed is not fully up; run `lofar-datalake testbed up` first")
        return 1
    data = DEMO_DIR / "data"
    simulate_demo_data(data)
    print("==> putting the observation into the DataLake (SITE_B_DISK, SITE_C_DAV)", flush=True)
    seed(bed, data)

    stamp = time.strftime("%Y%m%dT%H%M%S")
    run_dir = DEMO_DIR / stamp
    run_dir.mkdir(parents=True)
    config = write_demo_config(run_dir, data, products=f"products/demo-{stamp}")
    command = [
        str(Path(sys.executable).with_name("snakemake")),
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(run_dir),
        "--profile",
        str(ROOT / "profiles" / "local"),
        "--configfile",
        str(config),
        *testbed_args(bed),
    ]
    print("==> running the workflow at SITE_A in DataLake mode:", flush=True)
    print("    " + " ".join(command), flush=True)
    started = time.monotonic()
    env = {**os.environ, "X509_USER_PROXY": str(bed.pki.proxy)}
    done = subprocess.run(command, env=env, check=False)
    if done.returncode != 0:
        print(f"the workflow failed (exit {done.returncode}); logs in {run_dir}/logs")
        return done.returncode
    print(f"    workflow done in {time.monotonic() - started:.0f} s", flush=True)
    _stage_table(run_dir)
    _science(run_dir)
    print(f"==> products: {run_dir}/results and, in the DataLake, lofar:products/demo-{stamp}/")
    print(
        '    eval "$(.venv/bin/lofar-datalake testbed env)"; '
        f".venv/bin/rucio list-dids 'lofar:products/demo-{stamp}/*' --filter type=file"
    )
    print(
        f"    QA report: .venv/bin/snakemake -s Snakefile --directory {run_dir} "
        f"--configfile {config} --profile profiles/local --report report.html"
    )
    return 0
