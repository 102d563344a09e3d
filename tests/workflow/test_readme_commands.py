"""What the README and `lofar-datalake demo` tell a newcomer to run runs as shown.

After `make demo` (the local DataLake up; the demo observation simulated, put into the DataLake
and processed once by `lofar-datalake demo`), every command the demo prints at its end is run
as printed from the project root: the products listing, the run's QA report, and the workflow
on the same observation at each embedded site, which must succeed and leave its products,
scored against the simulation's truth. The README's site commands must be among those printed.

The project is a copy in a temporary directory (code and environment linked, config copied),
whose `.testbed` is the session's DataLake, so nothing is written into this checkout.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from datalake_core.journal import read_events
from datalake_core.rucio_adapter import Did
from lofar_datalake_testbed.demo.pipeline import SITE_PROFILES

if TYPE_CHECKING:
    from lofar_datalake_testbed.orchestrator import Testbed

pytestmark = [pytest.mark.workflow, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
PROMPT = "    $ "  # how the demo prints a command to be run as printed
DOCS = ("README.md", "config/README.md", "profiles/README.md")


@dataclass
class Demo:
    bed: Testbed
    root: Path
    project: Path
    env: dict[str, str]
    done: subprocess.CompletedProcess[str]
    stamp: int

    @property
    def commands(self) -> list[str]:
        return [line[len(PROMPT):] for line in self.done.stdout.splitlines()
                if line.startswith(PROMPT)]

    def printed(self, pattern: str) -> list[str]:
        return [c for c in self.commands if re.search(pattern, c)]


def _project(path: Path, bed: Testbed, products: str) -> Path:
    """A checkout as a user has it, with its own products prefix in the config (Rucio files are
    immutable, and the session's DataLake outlives one run)."""
    path.mkdir(parents=True)
    for name in ("Snakefile", "workflow", "profiles"):
        (path / name).symlink_to(REPO / name)
    (path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    (path / ".testbed").symlink_to(bed.layout.root)
    shutil.copytree(REPO / "config", path / "config")
    config = path / "config" / "config.yaml"
    values = yaml.safe_load(config.read_text())
    values["datalake"]["products"] = products
    config.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def _newcomer_env(bed: Testbed) -> dict[str, str]:
    """A fresh shell: no Rucio or storage settings; `lofar-datalake` finds the session's
    DataLake as it would find `.testbed/`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RUCIO_", "X509_", "SNAKEMAKE_STORAGE_DATALAKE_"))}
    return {**env, "LOFAR_DATALAKE_TESTBED_DIR": str(bed.layout.root)}


def _run(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=1200)


def _failure(done: subprocess.CompletedProcess[str]) -> str:
    return done.stdout[-4000:] + done.stderr[-4000:]


@pytest.fixture(scope="module")
def demo(testbed_session: Testbed, tmp_path_factory: pytest.TempPathFactory):
    bed = testbed_session
    bed.up()
    root = tmp_path_factory.mktemp("readme-commands")
    stamp = time.time_ns()
    project = _project(root / "project", bed, f"products/readme-{stamp}")
    env = _newcomer_env(bed)
    done = _run(".venv/bin/lofar-datalake demo", project, env)
    assert done.returncode == 0, _failure(done)
    yield Demo(bed, root, project, env, done, stamp)
    for work in root.glob("*/work"):
        shutil.rmtree(work, ignore_errors=True)


def _site_command(demo: Demo, profile: str) -> str:
    [command] = demo.printed(rf"--profile {re.escape(profile)}( |$)(?!.*--directory)")
    return command


def _normalised(command: str) -> list[str]:
    words = shlex.split(command, comments=True)
    return [Path(words[0]).name, *words[1:]]


def _documented_site_commands() -> list[str]:
    """The lines of the docs' shell blocks that run Snakemake with one of the embedded sites."""
    found = []
    for doc in DOCS:
        for block in re.findall(r"```sh\n(.*?)```", (REPO / doc).read_text(), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                if line.split()[:1] not in (["snakemake"], [".venv/bin/snakemake"]):
                    continue
                if set(shlex.split(line, comments=True)) & set(SITE_PROFILES):
                    found.append(line)
    return found


def test_the_docs_site_commands_are_the_ones_the_demo_prints(demo):
    printed = [_normalised(_site_command(demo, profile)) for profile in SITE_PROFILES]
    documented = _documented_site_commands()
    assert set(SITE_PROFILES) <= {w for line in documented for w in shlex.split(line)}
    for line in documented:
        assert _normalised(line) in printed, line


def test_the_printed_products_listing_runs_as_printed(demo):
    [listing] = demo.printed(r"list-dids")
    done = _run(listing, demo.project, demo.env)
    assert done.returncode == 0, _failure(done)
    [pattern] = [w for w in shlex.split(listing) if w.endswith("/*")]
    assert f"{pattern[:-1]}provenance.json" in done.stdout, done.stdout


def test_the_printed_qa_report_command_runs_as_printed(demo):
    [report] = demo.printed(r"--report")
    words = shlex.split(report)
    run_dir = demo.project / words[words.index("--directory") + 1]
    done = _run(report, demo.project, demo.env)
    assert done.returncode == 0, _failure(done)
    html = (run_dir / "report.html").read_text()
    figures = list((run_dir / "results").glob("*/qa/*.png"))
    assert figures and all(figure.name in html for figure in figures)


def _target(project: Path) -> str:
    sheet = (project / "config" / "observations.tsv").read_text().splitlines()
    [target] = {row.split("\t")[0] for row in sheet[1:] if row.split("\t")[1] == "target"}
    return target


@pytest.mark.parametrize("profile", list(SITE_PROFILES))
def test_the_printed_site_command_runs_on_the_demo_observation(demo, profile, rucio):
    # Each site in a checkout of its own that has been through `make demo`: the same
    # observation, already in the DataLake.
    name = Path(profile).name
    products = f"products/readme-{demo.stamp}-{name}"
    project = _project(demo.root / name, demo.bed, products)
    (project / "demo").mkdir()
    (project / "demo" / "data").symlink_to(demo.project / "demo" / "data")
    done = _run(_site_command(demo, profile), project, demo.env)
    assert done.returncode == 0, _failure(done)

    target = _target(project)
    results = project / "results"
    for product in (f"{target}/image/{target}-image.fits", f"{target}/catalogue/{target}.srl.fits",
                    "provenance.json"):
        assert (results / product).is_file(), product
    # The config's truth was used: the bright simulated sources were all found.
    scores = json.loads((results / target / "qa" / f"{target}_sources.json").read_text())
    assert scores["n_bright_found"] == scores["n_bright"] >= 1

    settings = yaml.safe_load((project / profile / "config.yaml").read_text())
    site_rse = settings["storage-datalake-site-rse"]
    inputs = [e for e in read_events(project) if e["event"] == "input"]
    assert inputs and {e["rse"] for e in inputs} == {site_rse}
    image = Did("lofar", f"{products}/{target}/image/{target}-image.fits")
    [replica] = rucio.list_replicas([image])
    assert replica["states"].get(settings["storage-datalake-output-rse"]) == "AVAILABLE"


def test_before_make_demo_the_site_command_stops_at_the_missing_demo_file(demo):
    # What the README says happens without `make demo`: a checkout without demo/data/.
    project = _project(demo.root / "no-demo", demo.bed, f"products/readme-{demo.stamp}-none")
    done = _run(f"{_site_command(demo, next(iter(SITE_PROFILES)))} -n", project, demo.env)
    assert done.returncode != 0
    assert "demo/data/calibrator.skymodel" in done.stdout + done.stderr, _failure(done)
