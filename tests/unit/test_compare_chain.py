"""`lofar-datalake compare --chain DIR`: the DataLake side is a chain `lofar-datalake run --plan`
ran across sites, read from its chain.json; the local side is one run of the whole chain on a
local copy of the chain's raw inputs. The verdict and the report name the sites and stages;
the chain's wall time is its makespan, its staging that of all its runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from datalake_core.journal import InputEvent, Journal, SiteTransferEvent, Staged, Way
from lofar_datalake.cli import main
from lofar_datalake.compare import chain_side, command, runs
from lofar_datalake.compare.chain_side import Chain
from lofar_datalake.compare.html import render
from lofar_datalake.compare.runs import Run
from lofar_datalake.compare.verdict import Verdict

CHAIN = "products/placed-1"
PROCESS_CONFIG: dict[str, Any] = {
    "input_mode": "datalake", "observations": "/data/observations.tsv",
    "placement": {"stage": "process", "subbands": [], "preprocessed": f"{CHAIN}/preprocessed"},
    "datalake": {"scope": "lofar", "products": f"{CHAIN}/process"},
}


def _run(out: Path, site: str, stage: str, subbands: list[str], wall: float,
         exit_code: int = 0, profile: str = "profiles/local") -> dict:
    directory = out / f"{site}-{stage}"
    directory.mkdir(parents=True, exist_ok=True)
    config = {**PROCESS_CONFIG, "placement": {**PROCESS_CONFIG["placement"], "stage": stage,
                                              "subbands": subbands}}
    (directory / "config.yaml").write_text(yaml.safe_dump(config))
    return {"site": site, "profile": profile, "rse": f"{site}_DISK", "stage": stage,
            "subbands": subbands, "directory": str(directory),
            "config": str(directory / "config.yaml"), "log": str(directory / "snakemake.log"),
            "wall_s": wall, "exit_code": exit_code}


def write_chain(out: Path, *, failed: bool = False) -> Path:
    """A chain's record as `lofar-datalake run --plan` writes it: two sites preprocess, the
    second also processes; its results tree holds one product."""
    chain_runs = [_run(out, "SITE_A", "preprocess", ["L1:000", "L2:000"], 30.0),
                  _run(out, "SITE_B", "preprocess", ["L1:001"], 20.0, exit_code=3 * failed)]
    if not failed:
        chain_runs.append(_run(out, "SITE_B", "process", [], 50.0,
                               profile="profiles/local-site-b"))
        (out / "results" / "L2" / "qa").mkdir(parents=True)
        (out / "results" / "L2" / "qa" / "L2_sources.json").write_text('{"n": 3}\n')
    record = {"format": chain_side.FORMAT, "chain": CHAIN, "out": str(out),
              "complete": not failed, "runs": chain_runs,
              "inputs": ["lofar:L1_SB000_uv.MS.tar", "lofar:L1_SB001_uv.MS.tar",
                         "lofar:L2_SB000_uv.MS.tar"],
              "results": None if failed else str(out / "results"),
              "actual": {"makespan_s": None if failed else 80.0, "bytes_moved": 1234,
                         "bytes_source": "the runs' provider journals"}}
    (out / chain_side.RECORD).write_text(json.dumps(record))
    return out


def test_a_chain_record_gives_its_runs_inputs_and_the_processing_sites_profile(
        tmp_path: Path) -> None:
    chain = Chain.read(write_chain(tmp_path))
    assert [(r.site, r.stage) for r in chain.runs] == [
        ("SITE_A", "preprocess"), ("SITE_B", "preprocess"), ("SITE_B", "process")]
    assert chain.inputs == ("lofar:L1_SB000_uv.MS.tar", "lofar:L1_SB001_uv.MS.tar",
                            "lofar:L2_SB000_uv.MS.tar")
    assert chain.profile(Path("/project")) == Path("/project/profiles/local-site-b")
    assert chain.exit_code == 0
    assert chain.wall_s == 80.0 and chain.runs_wall_s == 100.0  # makespan, not the sum
    assert chain.note() == (f"the DataLake side is the chain {CHAIN} across 2 sites: "
                            "preprocess at SITE_A (2 subbands), preprocess at SITE_B "
                            "(1 subband), process at SITE_B")


def test_a_failed_chain_has_the_failed_runs_exit_code_and_names_its_log(tmp_path: Path) -> None:
    chain = Chain.read(write_chain(tmp_path, failed=True))
    assert chain.exit_code == 3 and chain.process is None
    assert chain.wall_s == 50.0  # no makespan: the runs' wall times summed
    (failure,) = chain.failures()
    assert "preprocess at SITE_B" in failure and "exit 3" in failure
    assert str(tmp_path / "SITE_B-preprocess" / "snakemake.log") in failure


def test_a_directory_without_a_chain_record_or_of_another_format_is_refused(
        tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no chain\.json.*run --plan"):
        Chain.read(tmp_path)
    (tmp_path / "chain.json").write_text(json.dumps({"format": "other/9"}))
    with pytest.raises(ValueError, match="format 'other/9'"):
        Chain.read(tmp_path)
    (tmp_path / "chain.json").write_text(json.dumps({"format": chain_side.FORMAT, "runs": []}))
    with pytest.raises(ValueError, match="no 'chain'"):
        Chain.read(tmp_path)


def test_the_local_run_is_the_whole_chain_with_the_process_runs_config(tmp_path: Path) -> None:
    config = chain_side.local_config(PROCESS_CONFIG, f"{CHAIN}/local-copy-run")
    assert config["placement"] == {"stage": "all", "subbands": [], "preprocessed": ""}
    assert config["datalake"] == {"scope": "lofar", "products": f"{CHAIN}/local-copy-run"}
    assert config["observations"] == PROCESS_CONFIG["observations"]
    assert PROCESS_CONFIG["placement"]["stage"] == "process"  # the record is not changed


def test_the_local_run_gets_the_snakefile_the_chain_found_unless_one_is_named(
        tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    assert chain_side.local_args(["--cores", "1"], config, tmp_path) == [
        "--configfile", str(config)]
    (tmp_path / "Snakefile").write_text("")
    assert chain_side.local_args(["--cores", "1"], config, tmp_path) == [
        "-s", str(tmp_path / "Snakefile"), "--configfile", str(config)]
    assert chain_side.local_args(["-s", "x/Snakefile"], config, tmp_path) == [
        "--configfile", str(config)]


def test_the_chains_staging_is_that_of_all_its_runs(tmp_path: Path) -> None:
    chain = Chain.read(write_chain(tmp_path))
    journal_a = Journal("a", chain.runs[0].directory / ".snakemake" / "datalake")
    journal_a.record(InputEvent(did="lofar:L1_SB000_uv.MS.tar", bytes=100,
                                how=Staged(Way.SYMLINK, "SITE_A_DISK"), rse="SITE_A_DISK"))
    journal_b = Journal("b", chain.runs[2].directory / ".snakemake" / "datalake")
    journal_b.record(SiteTransferEvent(policy="fts", destination="SITE_B_DISK", start=1.0,
                                       files=["lofar:x.MS.tar"], bytes=40, fts_jobs=["j1"]))
    journal_b.record(InputEvent(did="lofar:x.MS.tar", bytes=40,
                                how=Staged(Way.SYMLINK, "SITE_B_DISK"), rse="SITE_B_DISK"))
    side = chain_side.datalake_side(chain, tmp_path / "local", [], None, tmp_path)
    summary = side.summary
    assert summary.label == "DataLake chain" and summary.wall_s == 80.0
    assert summary.staging.files == 2 and len(summary.staging.events) == 3
    assert summary.staging.bytes == 1234  # the chain's count, not the journals' 40 by FTS
    assert str(tmp_path / "chain.json") in str(summary.staging.bytes_source)
    assert summary.requests.fts_jobs == 1 and summary.requests.rucio is None  # not counted
    assert side.inputs == list(chain.inputs)
    written = yaml.safe_load((tmp_path / "local" / "config.yaml").read_text())
    assert written["placement"]["stage"] == "all"
    assert side.local_args == ["--configfile", str(tmp_path / "local" / "config.yaml")]


def _compare(out: Path, chain: Path) -> command.Comparison:
    return command.Comparison(out=out, snakemake_args=["--cores", "1"], chain=chain,
                              profile=None, local_copy=out / "given-copy")


def test_a_failed_chain_is_exit_2_and_runs_nothing_locally(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chain = write_chain(tmp_path / "chain", failed=True)
    monkeypatch.setattr(runs, "run_snakemake", lambda *a, **k: pytest.fail("a run started"))
    out = tmp_path / "compare"
    assert command.run_comparison(_compare(out, chain)) == 2
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["runs"]["datalake"]["exit_code"] == 3
    assert any("preprocess at SITE_B failed (exit 3)" in n for n in verdict["notes"])
    assert "across 2 sites" in (out / "report.html").read_text()


def test_a_chain_and_an_equal_local_run_are_equivalent_and_the_report_names_the_sites(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chain = write_chain(tmp_path / "chain")
    started: list[list[str]] = []

    def local_run(run: Run, args: list[str], **_: object) -> Run:
        started.append(list(args))
        (run.workdir / "results" / "L2" / "qa").mkdir(parents=True)
        (run.workdir / "results" / "L2" / "qa" / "L2_sources.json").write_text('{"n": 3.0}')
        run.exit_code, run.started, run.wall_s = 0, 1.0, 60.0
        return run

    monkeypatch.setattr(runs, "run_snakemake", local_run)
    out = tmp_path / "compare"
    assert command.run_comparison(_compare(out, chain)) == 0
    (args,) = started
    assert args[:2] == ["--cores", "1"]
    assert args[-4:] == ["--configfile", str(out / "local" / "config.yaml"),
                         "--storage-datalake-local-copy", str(out / "given-copy")]
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["equivalent"] is True
    assert [p["path"] for p in verdict["products"]] == ["L2/qa/L2_sources.json"]
    assert [(r["site"], r["stage"]) for r in verdict["chain"]["runs"]] == [
        ("SITE_A", "preprocess"), ("SITE_B", "preprocess"), ("SITE_B", "process")]
    assert verdict["runs"]["datalake"]["wall_s"] == 80.0
    assert verdict["runs"]["local"]["copy"]["files"] == 3
    report = (out / "report.html").read_text()
    assert "DataLake chain across sites vs local-copy run" in report
    assert "a chain across 2 sites" in report and "SITE_A, SITE_B" in report


def test_the_chain_survives_the_verdicts_round_trip_and_is_escaped_in_the_report(
        tmp_path: Path) -> None:
    planted = "<script>alert('x')</script>"
    chain = Chain.read(write_chain(tmp_path))
    described = chain.describe() | {"name": planted}
    verdict = Verdict.from_json(Verdict(equivalent=True, chain=described).to_json())
    assert verdict.chain == described
    render(verdict, {}, tmp_path / "report.html")
    report = (tmp_path / "report.html").read_text()
    assert planted not in report and "&lt;script&gt;" in report
    assert "chain" not in Verdict(equivalent=True).to_json()


def test_a_datalake_workdir_holding_a_chain_is_pointed_to_chain_and_chain_excludes_demo(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    chain = write_chain(tmp_path / "chain")
    monkeypatch.chdir(tmp_path)
    assert main(["compare", "--datalake-workdir", str(chain), "--", "-s", "Snakefile"]) == 1
    assert f"compare it with --chain {chain}" in capsys.readouterr().err
    assert main(["compare", "--chain", str(chain), "--demo"]) == 1
    assert "--demo cannot be given with it" in capsys.readouterr().err
