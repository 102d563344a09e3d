"""A researcher's visit to `lofar-datalake serve`, in headless Chromium: log in, submit the
non-LOFAR example workflow (tests/workflow/example) as an archive and the LOFAR pipeline as a git
repository at one commit, watch both run at SITE_A, and read their verdicts.

The LOFAR pipeline reads a simulated observation from the public `lofar` scope (ingested by the
DataLake's own account, as the archive's data is) and stores its products in the researcher's
own scope, with the tokens of her token client as her only credential; its sources are
checked against the simulation's truth. The screenshots are the README's:
`LOFAR_DATALAKE_SCREENSHOTS=docs/service` keeps them."""

from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml
from pipeline_science import check_science
from service_support import REPO, STATIONS, Service, make_service, open_directory

from lofar_datalake.service import sandbox
from lofar_datalake.simulate.observation import SimulationParams, simulate
from lofar_datalake_testbed.seed import seed

pytestmark = pytest.mark.integration

PARAMS = SimulationParams(seed=8, sky_seed=8, calibrator_obsid=780000, target_obsid=780001)
EXAMPLE = REPO / "tests" / "workflow" / "example"
# What a researcher's repository of the pipeline holds: the workflow, its profile of per-rule
# resources, and their own config and observation sheet (written below).
PIPELINE_FILES = ("Snakefile", "workflow", "profiles/default")
RUN_LIMIT_S = 1500
SUBMIT_LIMIT_S = 300


@pytest.fixture(scope="module")
def service(testbed_session):
    testbed_session.up()
    # Alice's runs get tokens from her token client: the pipeline stores its products, and
    # writing to the DataLake's storage takes a credential a Rucio password is not.
    yield from make_service(testbed_session, read_scopes={"alice": ["lofar"]},
                            token_clients=("alice",))


@pytest.fixture(scope="module")
def observation(testbed_session) -> Path:
    """A simulated observation in the `lofar` scope, on SITE_B and SITE_C: SITE_A stages it."""
    data = open_directory("lofar-datalake-observation-")
    simulate(PARAMS, data)
    seed(testbed_session, data, rses=("SITE_B_DISK", "SITE_C_DAV"))
    yield data
    shutil.rmtree(data, ignore_errors=True)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=Alice",
                           "-c", "user.email=alice@example.org", *args], check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def pipeline_repository(service: Service, observation: Path) -> tuple[str, str]:
    """The pipeline in a git repository of the researcher's, with her config: the observation's
    sheet (DIDs in `lofar`), its calibrator model and truth, products in her scope."""
    alice = service.researchers["alice"]
    repo = open_directory("lofar-datalake-pipeline-repo-")
    for name in PIPELINE_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, repo / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(source, repo / name)
    mine = repo / "observation"
    mine.mkdir()
    shutil.copy(observation / "observations.tsv", mine)
    shutil.copy(observation / "calibrator.skymodel", mine)
    shutil.copytree(observation / "truth", mine / "truth")
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config |= {"input_mode": "datalake", "observations": "observation/observations.tsv",
               "truth": "observation/truth"}
    config["calibration"]["skymodel"] = "observation/calibrator.skymodel"
    config["datalake"] = {"scope": alice.scope, "products": f"{alice.prefix}/pipeline"}
    (repo / "config").mkdir()
    (repo / "config" / "alice.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "the pipeline on my observation")
    commit = git(repo, "rev-parse", "HEAD")
    # Hers on this machine, as a repository on a shared file system would be: git reads no
    # repository that another user owns.
    owner = sandbox.user_for("alice") if sandbox.isolated() else None
    for path in [repo, *repo.rglob("*")]:
        if owner is not None:
            shutil.chown(path, owner, owner)
    yield f"file://{repo}", commit
    shutil.rmtree(repo, ignore_errors=True)


def example_archive(service: Service, where: Path) -> Path:
    """tests/workflow/example as a researcher would pack it, with her config."""
    alice = service.researchers["alice"]
    (where / "config.yaml").write_text(yaml.safe_dump(
        {"scope": alice.scope, "prefix": alice.prefix, "stations": ",".join(STATIONS)}))
    archive = where / "weather-stations.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(EXAMPLE / "Snakefile", "Snakefile")
        tar.add(where / "config.yaml", "config.yaml")
    return archive


def submit(browser, service: Service, *, dids: list[str], configfile: str,
           archive: Path | None = None, git_url: str = "", git_commit: str = "",
           snakefile: str = "") -> int:
    browser.page.goto(f"{service.url}/")
    if archive is not None:
        browser.upload("#archive", archive)
    browser.page.fill("#git_url", git_url)
    browser.page.fill("#git_commit", git_commit)
    browser.page.fill("#snakefile", snakefile)
    browser.page.fill("#configfile", configfile)
    browser.page.fill("#dids", "\n".join(dids))
    browser.page.select_option("#site", "SITE_A")
    browser.page.click("#submit button[type=submit]")
    # The service checks the submission before it answers (Rucio, git, Snakemake parsing it).
    browser.page.wait_for_url(re.compile(r"/submissions/\d+$"), timeout=SUBMIT_LIMIT_S * 1000)
    return int(browser.page.url.rsplit("/", 1)[1])


def watch(browser, service: Service, submission: int) -> dict:
    """Stay on the submission's page (it reloads itself while the run lasts) until it shows a
    verdict or an error; the record as the API gives it then."""
    browser.page.wait_for_selector("#verdict, #error", timeout=RUN_LIMIT_S * 1000)
    return service.api("GET", f"/api/submissions/{submission}", "alice").json()


def failure(service: Service, record: dict) -> str:
    log = service.api("GET", f"/api/submissions/{record['id']}/log", "alice").text
    compare = service.state / "runs" / str(record["id"]) / "compare"
    runs = [f"--- {p}\n{p.read_text()[-5000:]}" for p in sorted(compare.glob("*/snakemake.log"))]
    return "\n".join([f"{record['state']}: {record['error']}", log[-3000:], *runs])


def test_a_researcher_submits_the_example_and_the_pipeline_in_a_browser_and_reads_both_verdicts(
        service, observation, pipeline_repository, tmp_path):
    from browser import Browser

    shots = tmp_path / "shots"
    with Browser(trust=Path(service.cert), height=1000) as browser:
        browser.open(f"{service.url}/login")
        browser.page.fill("#username", "alice")
        browser.page.fill("#password", service.researchers["alice"].password)
        browser.page.click("button[type=submit]")
        browser.page.wait_for_selector("#limits")

        # The example: an archive, three weather stations' series from her own scope.
        example = submit(browser, service, dids=service.researchers["alice"].dids(),
                         configfile="config.yaml", archive=example_archive(service, tmp_path))
        record = watch(browser, service, example)
        assert record["state"] == "done", failure(service, record)
        assert browser.page.inner_text("#verdict") == "equivalent"
        assert record["summary"]["products"] == len(STATIONS) + 1  # daily per station, summary
        assert record["summary"]["runs"]["datalake"]["files_staged"] == len(STATIONS)

        # The pipeline: her repository at one commit, the observation from `lofar`.
        url, commit = pipeline_repository
        dids = [f"lofar:{p.name}" for p in sorted(observation.glob("L*_SB*_uv.MS.tar"))]
        pipeline = submit(browser, service, dids=dids, configfile="config/alice.yaml", git_url=url,
                          git_commit=commit)
        browser.page.wait_for_selector("#progress, #error", timeout=600_000)
        assert not browser.page.query_selector("#error"), browser.page.inner_text("#error")
        browser.screenshot(shots / "service-pipeline-running.png", full_page=False)
        record = watch(browser, service, pipeline)
        assert record["state"] == "done", failure(service, record)
        assert browser.page.inner_text("#verdict") == "equivalent"
        browser.screenshot(shots / "service-pipeline-verdict.png")
        summary = record["summary"]
        assert summary["equivalent"] is True and summary["differing"] == []
        assert summary["runs"]["datalake"]["files_staged"] == len(dids)
        # Both archives moved to SITE_A by rules, counted although the history of their
        # requests is not hers to read.
        assert summary["runs"]["datalake"]["bytes_moved"] == sum(
            p.stat().st_size for p in observation.glob("L*_SB*_uv.MS.tar"))
        assert summary["products"] > 10, summary  # images, catalogues, solutions, QA

        browser.page.click("a[href$='/report/report.html']")
        browser.page.wait_for_selector("text=EQUIVALENT")
        browser.screenshot(shots / "service-pipeline-report.png", full_page=False)

        # Her history lists both, with their verdicts.
        browser.page.goto(f"{service.url}/")
        browser.page.wait_for_selector("#history")
        rows = browser.page.inner_text("#history")
        assert rows.count("equivalent") == 2, rows
        browser.screenshot(shots / "service-history.png")
        faint = [str(t) for t in browser.texts() if t.contrast < 4.5]
        assert faint == [], faint

    # The science: every simulated source found where the truth puts it, with its flux.
    check_science(service.state / "runs" / str(pipeline) / "compare" / "datalake", observation)
