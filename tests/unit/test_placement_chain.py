"""A plan becomes one Snakemake run per preprocessing site and one process run, each with its
own directory, config and DataLake products under the chain's name; the preprocess runs run at
once, a failure stops the chain before processing and names the site and its log, and the chain
ends as one record with the plan's predictions against what happened."""

from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path

import pytest
import yaml

from datalake_core.journal import (
    InputEvent,
    Journal,
    OutputEvent,
    SiteTransferEvent,
    Staged,
    Way,
)
from lofar_datalake.placement import chain as chains
from lofar_datalake.placement import run_command
from lofar_datalake.placement.chain import ChainRun, Outcome
from lofar_datalake.placement.plan import Plan, Prediction, SitePlan, SubbandPlan

CHAIN = "products/chain-1"


def _plan() -> Plan:
    subbands = (SubbandPlan("L770000:000", "lofar:L770000_SB000_uv.MS.tar", "SITE_A",
                            "SITE_A_DISK", 10),
                SubbandPlan("L770001:000", "lofar:L770001_SB000_uv.MS.tar", "SITE_A",
                            "SITE_C_DAV", 10),
                SubbandPlan("L770001:001", "L770001_SB001_uv.MS.tar", "SITE_B", "SITE_B_DISK",
                            10))
    sites = (SitePlan("SITE_A", "profiles/local", "SITE_A_DISK", ("L770000:000", "L770001:000"),
                      False),
             SitePlan("SITE_B", "profiles/local-site-b", "SITE_B_DISK", ("L770001:001",), True),
             SitePlan("SITE_C", "profiles/local-site-c", "SITE_C_DAV", (), False))
    return Plan(sites, subbands, Prediction(10 * 2**20, 3 * 2**20, 42.0, 1.0))


def _config() -> dict:
    return {"input_mode": "local", "observations": "config/observations.tsv", "truth": "",
            "local": {"data_dir": "/data/obs"}, "calibration": {"skymodel": "sky/cal.model",
                                                                "mode": "diagonal"},
            "datalake": {"scope": "lofar", "products": "products/run1"}}


def _runs(tmp_path: Path) -> list[ChainRun]:
    return chains.plan_runs(_plan(), CHAIN, tmp_path)


def test_each_site_with_subbands_preprocesses_them_and_the_processing_site_processes(
        tmp_path: Path) -> None:
    runs = _runs(tmp_path)
    assert [(r.site, r.stage, r.subbands) for r in runs] == [
        ("SITE_A", "preprocess", ("L770000:000", "L770001:000")),
        ("SITE_B", "preprocess", ("L770001:001",)),
        ("SITE_B", "process", ()),
    ]
    assert runs[1].directory == tmp_path / "SITE_B-preprocess"
    assert runs[1].products == f"{CHAIN}/SITE_B-preprocess"
    assert runs[2].products == f"{CHAIN}/process"
    command = chains.command("snakemake", runs[0], ["--cores", "1"])
    assert command == ["snakemake", "--profile", "profiles/local", "--directory",
                       str(tmp_path / "SITE_A-preprocess"), "--configfile",
                       str(tmp_path / "SITE_A-preprocess" / "config.yaml"), "--cores", "1"]


def test_each_run_config_names_its_stage_subbands_the_shared_prefix_and_its_own_products(
        tmp_path: Path) -> None:
    pre, _, process = _runs(tmp_path)
    config = chains.run_config(_config(), pre, CHAIN)
    assert config["placement"] == {"stage": "preprocess",
                                   "subbands": ["L770000:000", "L770001:000"],
                                   "preprocessed": f"{CHAIN}/preprocessed"}
    assert config["datalake"] == {"scope": "lofar", "products": f"{CHAIN}/SITE_A-preprocess"}
    assert config["input_mode"] == "datalake"
    assert chains.run_config(_config(), process, CHAIN)["placement"]["subbands"] == []
    assert _config()["datalake"]["products"] == "products/run1"  # the base is not changed


def test_relative_paths_of_the_config_are_taken_from_where_the_command_runs(
        tmp_path: Path) -> None:
    config = chains.resolve_paths(_config(), tmp_path)
    assert config["observations"] == str(tmp_path / "config" / "observations.tsv")
    assert config["calibration"] == {"skymodel": str(tmp_path / "sky" / "cal.model"),
                                     "mode": "diagonal"}
    assert config["local"]["data_dir"] == "/data/obs"
    assert config["truth"] == ""  # unset stays unset
    assert chains.resolve_paths({"observations": "o.tsv"}, tmp_path) == {
        "observations": str(tmp_path / "o.tsv")}


def _fake(calls: list[str], fail: frozenset[str] = frozenset()) -> run_command.Launch:
    lock = threading.Lock()

    def launch(run: ChainRun) -> int:
        with lock:
            calls.append(run.name)
        (run.directory / "results" / "L770001" / "qa").mkdir(parents=True, exist_ok=True)
        if run.stage == "preprocess":
            (run.directory / "results" / "L770001" / "qa" / f"L770001_SB{run.site}_flags.json"
             ).write_text("{}")
        else:
            (run.directory / "results" / "L770001" / "image.fits").write_text("image")
        return 1 if run.name in fail else 0

    return launch


def test_the_preprocess_runs_run_at_the_same_time(tmp_path: Path) -> None:
    both = threading.Barrier(2, timeout=10)
    fake = _fake([])

    def launch(run: ChainRun) -> int:
        if run.stage == "preprocess":
            both.wait()  # raises BrokenBarrierError unless the other run is under way
        return fake(run)

    runs = run_command.prepare(_plan(), CHAIN, tmp_path, _config())
    record = run_command.execute(_plan(), CHAIN, tmp_path, runs, launch)
    assert [r["exit_code"] for r in record["runs"]] == [0, 0, 0]


def test_a_finished_chain_has_one_results_tree_and_one_record(tmp_path: Path) -> None:
    calls: list[str] = []
    runs = run_command.prepare(_plan(), CHAIN, tmp_path, _config())
    record = run_command.execute(_plan(), CHAIN, tmp_path, runs, _fake(calls))
    assert calls[-1] == "SITE_B-process" and len(calls) == 3
    assert sorted(p.name for p in (tmp_path / "results").rglob("*.*")) == [
        "L770001_SBSITE_A_flags.json", "L770001_SBSITE_B_flags.json", "image.fits"]
    assert json.loads((tmp_path / "chain.json").read_text()) == record
    assert record["complete"] and record["chain"] == CHAIN
    assert record["plan"]["processing_site"] == "SITE_B"
    assert [(r["site"], r["stage"], r["profile"]) for r in record["runs"]] == [
        ("SITE_A", "preprocess", "profiles/local"),
        ("SITE_B", "preprocess", "profiles/local-site-b"),
        ("SITE_B", "process", "profiles/local-site-b")]
    assert record["runs"][2]["provenance"]["did"] == f"lofar:{CHAIN}/process/provenance.json"
    assert record["inputs"] == ["lofar:L770000_SB000_uv.MS.tar", "lofar:L770001_SB000_uv.MS.tar",
                                "lofar:L770001_SB001_uv.MS.tar"]
    assert record["preprocessed"][0] == f"lofar:{CHAIN}/preprocessed/L770000_SB000.MS.tar"
    assert record["actual"]["bytes_moved"] == 0  # the fake runs kept no journal
    config = yaml.safe_load((tmp_path / "SITE_B-process" / "config.yaml").read_text())
    assert config["placement"]["stage"] == "process"


def test_a_failed_preprocess_run_lets_the_others_finish_and_stops_the_chain(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(run_command, "launcher",
                        lambda args: _fake(calls, fail=frozenset({"SITE_A-preprocess"})))
    plan = tmp_path / "plan.json"
    plan.write_text(_plan().dumps())
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(_config()))
    args = argparse.Namespace(plan=plan, configfile=config, chain=CHAIN, out=tmp_path / "out",
                              dry_run=False, snakemake_args=[])
    with pytest.raises(RuntimeError) as failed:
        run_command.run(args)
    log = tmp_path / "out" / "SITE_A-preprocess" / "snakemake.log"
    assert str(failed.value) == (f"preprocess at SITE_A failed (exit 1); see {log}; the "
                                 "process stage was not run")
    assert sorted(calls) == ["SITE_A-preprocess", "SITE_B-preprocess"]
    assert f"preprocess at SITE_A failed (exit 1); see {log}" in capsys.readouterr().out
    record = json.loads((tmp_path / "out" / "chain.json").read_text())
    assert not record["complete"] and record["results"] is None
    assert [r["exit_code"] for r in record["runs"]] == [1, 0]
    assert not (tmp_path / "out" / "results").exists()


def test_a_dry_run_prints_each_command_and_runs_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(run_command, "launcher", lambda args: pytest.fail("a run was started"))
    monkeypatch.chdir(tmp_path)
    Path("plan.json").write_text(_plan().dumps())
    Path("config.yaml").write_text(yaml.safe_dump(_config()))
    args = argparse.Namespace(plan=Path("plan.json"), configfile=Path("config.yaml"),
                              chain=CHAIN, out=None, dry_run=True, snakemake_args=["-n"])
    assert run_command.run(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(line.endswith(" -n") for line in lines)
    assert f"--directory {tmp_path}/runs/chain-1/SITE_B-process" in lines[2]
    written = yaml.safe_load((tmp_path / "runs/chain-1/SITE_A-preprocess/config.yaml")
                             .read_text())
    assert written["calibration"]["skymodel"] == str(tmp_path / "sky" / "cal.model")


def test_bytes_moved_are_those_that_came_from_another_rse_than_the_site_s(
        tmp_path: Path) -> None:
    journal = Journal("r1", tmp_path / ".snakemake" / "datalake")
    journal.record(SiteTransferEvent(policy="fts", destination="SITE_B_DISK", files=["lofar:a"],
                                     bytes=100))
    journal.record(SiteTransferEvent(policy="rule", destination="SITE_A_DISK", bytes=7))
    journal.record(InputEvent(did="lofar:a", bytes=100, how=Staged(Way.HARDLINK, "SITE_B_DISK"),
                              rse="SITE_B_DISK"))
    journal.record(InputEvent(did="lofar:b", bytes=20, how=Staged(Way.HTTPS, "SITE_C_DAV"),
                              rse="SITE_C_DAV"))
    journal.record(InputEvent(did="lofar:c", bytes=30, how=Staged(Way.HTTPS, "SITE_B_DISK"),
                              rse="SITE_B_DISK"))
    assert chains.moved_bytes(tmp_path, "SITE_B_DISK") == 120


def test_a_preprocessed_subband_made_at_another_site_counts_as_moved_however_it_came(
        tmp_path: Path) -> None:
    made = Journal("pre", tmp_path / "pre" / ".snakemake" / "datalake")
    made.record(OutputEvent(did="lofar:p/x.tar", bytes=40, rse="SITE_C_DAV"))
    made.record(OutputEvent(did="lofar:p/y.tar", bytes=50, rse="SITE_A_DISK"))
    used = Journal("process", tmp_path / "process" / ".snakemake" / "datalake")
    for did, size in (("lofar:p/x.tar", 40), ("lofar:p/y.tar", 50)):
        # Both were at the site when asked for: SITE_C's output rule had copied x there.
        used.record(InputEvent(did=did, bytes=size, how=Staged(Way.SYMLINK, "SITE_A_DISK"),
                               rse="SITE_A_DISK"))
    made_at = chains.origins(tmp_path / "pre")
    assert made_at == {"lofar:p/x.tar": "SITE_C_DAV", "lofar:p/y.tar": "SITE_A_DISK"}
    assert chains.moved_bytes(tmp_path / "process", "SITE_A_DISK", made_at) == 40
    assert chains.moved_bytes(tmp_path / "process", "SITE_A_DISK") == 0


def test_the_record_sets_predicted_against_actual_makespan_and_bytes(tmp_path: Path) -> None:
    pre_a, pre_b, process = _runs(tmp_path)
    outcomes = [Outcome(pre_a, 0, 30.0), Outcome(pre_b, 0, 50.0), Outcome(process, 0, 20.0)]
    moved = {pre_a.name: 2 * 2**20, pre_b.name: 0, process.name: 2**20}
    record = chains.manifest(_plan(), CHAIN, tmp_path, "lofar", outcomes, moved,
                             ["lofar:x", "lofar:a"], [chains.invocation(outcomes, "t1")])
    assert record["invocations"][0]["runs"]["SITE_B-preprocess"] == {"wall_s": 50.0,
                                                                     "exit_code": 0}
    assert record["actual"] | {"bytes_source": ""} == {
        "makespan_s": 70.0, "bytes_moved": 3 * 2**20, "raw_bytes_moved": 2 * 2**20,
        "product_bytes_moved": 2**20, "bytes_source": ""}
    assert record["predicted"]["bytes_moved"] == 13 * 2**20
    assert record["products"] == ["lofar:a", "lofar:x"]
    assert chains.table(record).splitlines() == [
        "                predicted   actual",
        "makespan           42.0 s   70.0 s",
        "bytes moved      13.0 MiB  3.0 MiB",
        "  raw            10.0 MiB  2.0 MiB",
        "  preprocessed    3.0 MiB  1.0 MiB"]


def test_a_resumed_chain_takes_the_time_of_every_invocation(tmp_path: Path) -> None:
    runs = run_command.prepare(_plan(), CHAIN, tmp_path, _config())
    first = run_command.execute(_plan(), CHAIN, tmp_path, runs,
                                _fake([], fail=frozenset({"SITE_B-preprocess"})))
    assert first["actual"]["makespan_s"] is None and len(first["invocations"]) == 1
    again = run_command.execute(_plan(), CHAIN, tmp_path, runs, _fake([]))
    assert [sorted(i["runs"]) for i in again["invocations"]] == [
        ["SITE_A-preprocess", "SITE_B-preprocess"],
        ["SITE_A-preprocess", "SITE_B-preprocess", "SITE_B-process"]]
    assert again["actual"]["makespan_s"] == round(
        sum(i["makespan_s"] for i in again["invocations"]), 2)
    assert chains.table(again).splitlines()[-1].startswith(
        "(actual makespan over 2 invocations: ")
    other = run_command.execute(_plan(), "products/other", tmp_path, runs, _fake([]))
    assert len(other["invocations"]) == 1  # another chain's record is not continued
