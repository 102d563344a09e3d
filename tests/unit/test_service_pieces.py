"""The service's pure parts: the researchers file, a run's Rucio configuration and command, and
what a verdict and a run's logs tell the researcher."""

from __future__ import annotations

import configparser
import datetime as dt
from pathlib import Path

import pytest
import yaml

from lofar_datalake.service import researchers, runs
from lofar_datalake.service.model import Limits, Researcher, Source, State, Submission
from lofar_datalake.service.researchers import ResearchersFileError
from lofar_datalake.service.runs import RunPaths
from lofar_datalake.service.worker import SiteEntry, compare_command, rucio_config


def entry(credential: Path, **fields: object) -> dict[str, object]:
    return {"researchers": {"alice": {
        "password_hash": researchers.hash_password("her login"), "rucio_account": "alice",
        "scopes": ["user.alice"], "credential": str(credential), **fields}}}


def error(data: object) -> str:
    with pytest.raises(ResearchersFileError) as caught:
        researchers.parse(data)
    return str(caught.value)


def test_a_researcher_logs_in_with_their_password_only(credential: Path) -> None:
    alice = researchers.parse(entry(credential))["alice"]
    assert alice.limits == Limits()
    assert researchers.verify(alice, "her login")
    assert not researchers.verify(alice, "her login ")
    assert not researchers.verify(None, "her login")  # an unknown login
    assert researchers.secret(alice) == "rucio-password"


def test_the_researchers_file_names_what_is_wrong(credential: Path) -> None:
    assert error(entry(credential, limits={"wall_time": 3})).startswith(
        "researchers.alice.limits: unknown key wall_time (known: archive_bytes,")
    assert error(entry(credential, limits={"concurrent_runs": 0})) == (
        "researchers.alice.limits.concurrent_runs: must be a whole number of at least 1, got 0")
    assert error(entry(credential, password_hash="secret")).startswith(
        "researchers.alice.password_hash: not an argon2 hash")
    assert error(entry(credential, scopes=[])).startswith("researchers.alice.scopes:")
    assert error({"researchers": {"Alice!": {}}}).startswith("researchers.Alice!: a login is")
    credential.chmod(0o644)
    assert error(entry(credential)) == (
        f"researchers.alice.credential: {credential} is readable by others (mode 0o644); "
        "make it 0600")
    assert error(entry(Path("relative.secret"))).endswith("must be an absolute path, got "
                                                          "relative.secret")


def test_errors_from_a_file_name_the_file(tmp_path: Path, credential: Path) -> None:
    path = tmp_path / "researchers.yaml"
    path.write_text(yaml.safe_dump(entry(credential, rucio_acount="x")))
    with pytest.raises(ResearchersFileError, match=rf"^researchers file {path}: "
                                                   "researchers.alice: unknown key rucio_acount"):
        researchers.load(path)


def researcher(credential: Path) -> Researcher:
    return researchers.parse(entry(credential))["alice"]


def test_a_runs_rucio_configuration_names_the_researcher_and_holds_no_secret(
        tmp_path: Path, credential: Path) -> None:
    base = tmp_path / "base.cfg"
    base.write_text("[client]\nrucio_host = https://127.0.0.1:1\nauth_type = userpass\n"
                    "username = service\npassword = the-services-secret\naccount = service\n"
                    "[policy]\nlfn2pfn_algorithm_default = hash\n")
    paths = RunPaths(tmp_path / "runs" / "7")
    text = rucio_config(base, researcher(credential), paths)
    assert "secret" not in text and "service" not in text
    parsed = configparser.ConfigParser(interpolation=None)
    parsed.read_string(text)
    assert dict(parsed["client"]) == {
        "rucio_host": "https://127.0.0.1:1", "auth_host": "https://127.0.0.1:1",
        "ca_cert": str(paths.ca_bundle), "auth_type": "userpass", "username": "alice",
        "account": "alice", "request_retries": "2",
        "auth_token_file_path": str(paths.home / ".rucio-token")}
    assert parsed["policy"]["lfn2pfn_algorithm_default"] == "hash"


def submission(attempts: int) -> Submission:
    return Submission(7, "alice", "SITE_A", Source("archive", "w.tar.gz"), "workflow/Snakefile",
                      "config.yaml", ["user.alice:a"], State.RUNNING,
                      dt.datetime.now(dt.UTC), attempts=attempts)


def test_the_run_is_compare_at_the_site_as_the_researcher_and_a_resumed_one_redoes_the_rest(
        tmp_path: Path, credential: Path) -> None:
    paths = RunPaths(tmp_path / "7")
    site = SiteEntry("SITE_A", Path("/project/profiles/local"), "SITE_A_DISK")
    command = compare_command(submission(1), paths, site, researcher(credential))
    assert command[1:6] == ["compare", "--out", str(paths.compare), "--profile",
                            "/project/profiles/local"]
    passed = command[command.index("--") + 1:]
    assert passed[:4] == ["--snakefile", str(paths.workflow / "workflow/Snakefile"),
                          "--configfile", str(paths.workflow / "config.yaml")]
    assert passed[passed.index("--storage-datalake-account") + 1] == "alice"
    assert "--rerun-incomplete" not in passed
    assert "rucio-password" not in " ".join(command)  # the secret goes by the environment
    resumed = compare_command(submission(2), paths, site, researcher(credential))
    assert resumed[-1] == "--rerun-incomplete"


def test_progress_says_which_run_and_how_many_steps(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path)
    paths.compare.mkdir(parents=True)
    paths.log.write_text("==> DataLake run in /x/compare/datalake\n    done in 3 s\n"
                         "==> local copy run in /x/compare/local\n")
    (paths.compare / "local").mkdir()
    (paths.compare / "local" / "snakemake.log").write_text(
        "1 of 5 steps (20%) done\nrule summary:\n3 of 5 steps (60%) done\n")
    assert runs.progress(paths) == "local copy run; 3 of 5 steps (60%)"


def test_disk_use_counts_each_file_once_and_not_the_storage_links_point_at(
        tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 100)
    (tmp_path / "hard").hardlink_to(tmp_path / "a")
    outside = tmp_path.parent / f"{tmp_path.name}-replica"
    outside.write_bytes(b"y" * 1000)
    (tmp_path / "link").symlink_to(outside)
    assert runs.disk_bytes(tmp_path) == 100


def test_the_summary_names_the_differing_products_and_each_runs_figures() -> None:
    verdict = {"equivalent": False, "notes": ["n"], "products": [
        {"path": "a.json", "method": "json-numeric", "equivalent": True},
        {"path": "b.fits", "method": "fits-image", "equivalent": False, "summary": "max 3"}],
        "runs": {"datalake": {"wall_s": 3.5, "exit_code": 0,
                              "staging": {"bytes": 10, "files": 2}}}}
    assert runs.summary(verdict) == {
        "equivalent": False, "products": 2,
        "differing": [{"path": "b.fits", "method": "fits-image", "summary": "max 3"}],
        "runs": {"datalake": {"wall_s": 3.5, "exit_code": 0, "bytes_moved": 10,
                              "files_staged": 2}},
        "notes": ["n"]}


def test_the_service_serves_plain_http_on_loopback_only(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lofar_datalake.cli import main

    researchers_file = tmp_path / "researchers.yaml"
    assert main(["serve", "--researchers", str(researchers_file), "--host", "0.0.0.0"]) == 1
    assert "--host 0.0.0.0: logins would cross the network in clear" in capsys.readouterr().err
