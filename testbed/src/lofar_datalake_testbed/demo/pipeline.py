"""`lofar-datalake demo`: the main job on the local DataLake, end to end.

A simulated LOFAR observation (calibrator + target beam, known truth) is written to `demo/data/`
of the project, where `config/config.yaml` names it, and put into the DataLake spread over
SITE_B and SITE_C; the workflow then runs at SITE_A in DataLake mode (`--profile
profiles/local`): the subbands are staged to SITE_A by Rucio rules, processed, and the products
are stored back into the DataLake with a second copy at SITE_B. Finally the science is scored
against the simulation's truth, the stage timings are printed, and the commands to go on with,
each runnable as printed from the project directory.

With `--from-tape` the observation (its own obsids, in `demo/data-tape/`) is put on LTA_TAPE
only, nearline: the storage plugin has Rucio recall it straight to SITE_A (Rucio's submitter,
FTS bringing each file online, copying it and releasing its pin), with Snakemake's greedy
scheduler; the recall is summarised from the run's journal, with the pins left on the tape.

With `--linc` the observation (`demo/data-linc/`) is sky-a of the LINC skies: 8 subbands over
120-180 MHz through the station beam, calibrated as LOFAR's LINC pipeline does; the scores
printed are the calibrator's clocks, dTEC and bandpass and the target's beam-corrected fluxes
and positions against the truth.
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import yaml

from .. import tokens
from ..layout import TAPE_RSE, Layout, default_dir
from ..orchestrator import Testbed
from ..seed import seed
from ..servers import tape as tape_library
from .transfers import ROOT, env_command, project_dir, shown, tool

DEMO_DIR = ROOT / "demo"
# The sites a user can run the workflow as on this machine, with what makes each different.
SITE_PROFILES = {
    "profiles/local": "site A (inputs staged by Rucio rules)",
    "profiles/local-site-b": "site B (inputs copied by FTS jobs)",
}


# The observation the tape demo recalls: other obsids than the disk demo's, since Rucio files
# are immutable and those are on disk already.
TAPE_OBSIDS = (740000, 740001)  # calibrator, target
# The observation of `demo --linc`: sky-a of the LINC skies (8 subbands over 120-180 MHz, the
# station beam out to its half-power radius), with obsids of its own.
LINC_OBSIDS = (704000, 704001)


def simulate_demo_data(
    data: Path, obsids: tuple[int, int] = (700000, 700001), linc: bool = False
) -> None:
    from lofar_datalake.simulate.observation import SimulationParams, simulate, simulated_with
    from lofar_datalake.simulate.science_skies import LINC_SKIES

    sky = LINC_SKIES["sky-a"] if linc else SimulationParams(seed=1, sky_seed=1)
    params = replace(sky, calibrator_obsid=obsids[0], target_obsid=obsids[1])
    if (data / "observations.tsv").exists():
        if simulated_with(data, params):
            print(f"==> simulated observation already in {data}", flush=True)
            return
        print(f"==> {data} holds another simulation: simulating it again", flush=True)
    what = (" (8 subbands over 120-180 MHz; bandpass, clocks, ionosphere, station beam)"
            if linc else "")  # fmt: skip
    print(f"==> simulating a LOFAR observation{what} into {data}", flush=True)
    started = time.monotonic()
    simulate(params, data)
    print(f"    done in {time.monotonic() - started:.1f} s", flush=True)


def testbed_args(bed: Testbed) -> list[str]:
    """Snakemake arguments that point the storage plugin at the local DataLake `bed`, in its
    auth mode (the token itself is found through BEARER_TOKEN_FILE, see `tokens`)."""
    return ["--storage-datalake-rucio-config", str(tokens.client_config(bed.layout)),
            "--storage-datalake-ca-bundle", str(bed.pki.ca_cert)]


def write_demo_config(
    run_dir: Path, data: Path, products: str, project: Path = ROOT, linc: bool = False
) -> Path:
    """The project's config, pointed at the observation in `data` (absolute paths: the run has
    its own directory) and storing its products under `products`; with `linc`, calibrating as
    LOFAR's LINC pipeline does (`science_skies.linc_settings`)."""
    config = yaml.safe_load((project / "config" / "config.yaml").read_text())
    config |= {
        "input_mode": "datalake",
        "observations": str(data / "observations.tsv"),
        "truth": str(data / "truth"),
    }
    config["local"]["data_dir"] = str(data)
    config["calibration"]["skymodel"] = str(data / "calibrator.skymodel")
    config["datalake"]["products"] = products
    if linc:
        from lofar_datalake.simulate.science_skies import with_linc_settings

        with_linc_settings(config, data)
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


def site_testbed_args(bed: Testbed, project: Path) -> list[str]:
    """What a site profile (whose `.testbed/...` paths are relative to where Snakemake runs)
    needs on the command line to reach `bed` from `project`: nothing when it is there."""
    if (project / ".testbed").resolve() == bed.layout.root.resolve():
        return []
    return testbed_args(bed)


def _show(text: str, commands: list[list[str] | str]) -> None:
    print(f"==> {text}", flush=True)
    for command in commands:
        print(f"    $ {command if isinstance(command, str) else shlex.join(command)}", flush=True)


def _next_steps(bed: Testbed, project: Path, run: list[str], run_dir: Path, stamp: str,
                own_config: bool = True) -> None:  # fmt: skip
    if Path.cwd().resolve() != project.resolve():
        _show("the commands below run in the project directory:", [["cd", str(project)]])
    products = f"lofar:products/demo-{stamp}"
    listing = [tool("rucio", project), "list-dids", f"{products}/*", "--filter", "type=file"]
    _show(f"products: {shown(run_dir, project)}/results and, in the DataLake, {products}/",
          [f"{env_command(bed, project)}; {shlex.join(listing)}"])
    # Snakemake takes the report's path from the run directory.
    _show(f"the QA report of this run, figures with captions, as "
          f"{shown(run_dir / 'report.html', project)}:", [[*run, "--report", "report.html"]])
    if not own_config:  # config/config.yaml names the default demo observation, not this one
        return
    _show("config/config.yaml names this observation: run the workflow on it yourself as "
          + " or ".join(SITE_PROFILES.values()) + ":",
          [[tool("snakemake", project), "--profile", profile, *site_testbed_args(bed, project)]
           for profile in SITE_PROFILES])


def _recall_summary(bed: Testbed, run_dir: Path) -> None:
    from datalake_core.journal import read_events

    recalls = [e for e in read_events(run_dir) if e["event"] == "recall"]
    if not recalls:
        print("==> nothing was recalled from tape (the files were online already)")
        return
    by_action: dict[str, int] = {}
    for event in recalls:
        by_action[event["action"]] = by_action.get(event["action"], 0) + len(event["files"])
    spent = max(e["time"] for e in recalls) - min(e["time"] for e in recalls)
    tape = recalls[0]["tape_rse"]
    print(f"==> recalled from tape {tape} to {recalls[0]['staging_rse']} by Rucio rules: "
          f"{by_action.get('requested', 0)} requested, {by_action.get('online', 0)} online, "
          f"{by_action.get('failed', 0)} failed, in {spent:.0f} s")
    pinned = tape_library.live_pins(bed.layout.rse_dir(TAPE_RSE))
    print(f"    files still pinned on {tape} after the run: {pinned}")


def run_pipeline_demo(state_dir: Path | None = None, from_tape: bool = False,
                      linc: bool = False) -> int:  # fmt: skip
    bed = Testbed(Layout(state_dir or default_dir()))
    if not bed.status():
        print("the testbed is not fully up; run `lofar-datalake testbed up` first")
        return 1
    project = project_dir()
    if from_tape:
        data = project / "demo" / "data-tape"
        simulate_demo_data(data, TAPE_OBSIDS)
        print(f"==> putting the observation on tape ({TAPE_RSE} only: nearline until recalled)",
              flush=True)
        seed(bed, data, rses=[TAPE_RSE])
    elif linc:
        data = project / "demo" / "data-linc"
        simulate_demo_data(data, LINC_OBSIDS, linc=True)
        print("==> putting the observation into the DataLake (SITE_B_DISK, SITE_C_DAV)",
              flush=True)
        seed(bed, data)
    else:
        data = project / "demo" / "data"
        simulate_demo_data(data)
        print("==> putting the observation into the DataLake (SITE_B_DISK, SITE_C_DAV)",
              flush=True)
        seed(bed, data)

    stamp = time.strftime("%Y%m%dT%H%M%S")
    run_dir = project / "demo" / stamp
    run_dir.mkdir(parents=True)
    config = write_demo_config(run_dir, data, f"products/demo-{stamp}", project, linc)
    # Absolute DataLake paths: with --directory, Snakemake reads the profile's relative ones
    # from the run directory.
    # On tape, the greedy selector starts equal jobs in the order their inputs are recalled
    # (README, Data on tape); Snakemake's default ilp picks an order of its own.
    run = [tool("snakemake", project), "--profile", "profiles/local",
           "--directory", shown(run_dir, project), "--configfile", shown(config, project),
           *(["--scheduler", "greedy"] if from_tape else []), *testbed_args(bed)]
    _show(f"running the workflow at SITE_A in DataLake mode, in {shown(run_dir, project)}:", [run])
    started = time.monotonic()
    env = {**os.environ, **bed.client_env()}
    print(f"    authenticating with: {tokens.auth_mode(bed.layout)}", flush=True)
    done = subprocess.run(run, cwd=project, env=env, check=False)
    if done.returncode != 0:
        print(f"the workflow failed (exit {done.returncode}); logs in {run_dir}/logs")
        return done.returncode
    print(f"    workflow done in {time.monotonic() - started:.0f} s", flush=True)
    if from_tape:
        _recall_summary(bed, run_dir)
    _stage_table(run_dir)
    _science(run_dir)
    _next_steps(bed, project, run, run_dir, stamp, own_config=not linc)
    return 0
