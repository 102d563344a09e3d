"""`lofar-datalake plan` from the observation sheet, Rucio's answers and the sites file to a table
and a plan file; Rucio is stood in for by its answers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import yaml

from lofar_datalake import cli
from lofar_datalake.placement import command, inventory
from lofar_datalake.placement.model import GIB
from lofar_datalake.placement.plan import Plan

SHEET = (
    "observation\trole\tsubband\tcalibrator\tpath\tdid\n"
    "L700000\tcalibrator\t000\t\tL700000_SB000_uv.MS.tar\tlofar:L700000_SB000_uv.MS.tar\n"
    "L700001\ttarget\t000\tL700000\tL700001_SB000_uv.MS.tar\tL700001_SB000_uv.MS.tar\n"
)


class Answers:
    """Rucio's answers: one bulk replica listing, distances between RSEs."""

    def __init__(self) -> None:
        self.listed: list[list[str]] = []

    def list_replicas(self, dids):
        self.listed.append([str(d) for d in dids])
        return [
            {"scope": "lofar", "name": "L700000_SB000_uv.MS.tar", "bytes": 2 * GIB,
             "states": {"SITE_B_DISK": "AVAILABLE", "SITE_A_DISK": "COPYING"}},
            {"scope": "obs", "name": "L700001_SB000_uv.MS.tar", "bytes": 4 * GIB,
             "states": {"SITE_B_DISK": "AVAILABLE", "SITE_C_DAV": "AVAILABLE"}},
        ]

    def distance(self, source, destination):
        return {("SITE_C_DAV", "SITE_A_DISK"): 4, ("SITE_B_DISK", "SITE_A_DISK"): 2}.get(
            (source, destination))


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "observations.tsv").write_text(SHEET)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(
        {"observations": "observations.tsv", "datalake": {"scope": "obs"}}))
    (tmp_path / "sites.yaml").write_text(yaml.safe_dump({
        "sites": {"SITE_A": {"profile": "profiles/a", "rse": "SITE_A_DISK", "cores": 4,
                             "reads": ["SITE_B_DISK", "SITE_C_DAV"]},
                  "SITE_B": {"profile": "profiles/b", "rse": "SITE_B_DISK", "cores": 1}},
        "stage_seconds": {"preprocess": 20.0, "process": 60.0},
        "weights": {"per_gib_moved": 1.0, "per_second": 0.01}}))
    return tmp_path


@pytest.mark.usefixtures("project")
def test_the_sheet_is_read_with_each_dids_scope() -> None:
    rows = inventory.read_sheet(Path("config.yaml"))
    assert [(r.id, r.role, str(r.did)) for r in rows] == [
        ("L700000:000", "calibrator", "lofar:L700000_SB000_uv.MS.tar"),
        ("L700001:000", "target", "obs:L700001_SB000_uv.MS.tar")]


@pytest.mark.usefixtures("project")
def test_replicas_are_listed_in_one_request_and_only_available_ones_count() -> None:
    answers = Answers()
    found = inventory.subbands(answers, inventory.read_sheet(Path("config.yaml")), 0.25)
    assert len(answers.listed) == 1
    assert [(s.id, s.raw_bytes, s.out_bytes, s.replicas) for s in found] == [
        ("L700000:000", 2 * GIB, GIB // 2, ("SITE_B_DISK",)),
        ("L700001:000", 4 * GIB, GIB, ("SITE_B_DISK", "SITE_C_DAV"))]


def test_distances_are_scaled_so_the_nearest_link_costs_one() -> None:
    costs = inventory.link_costs(Answers(), {"SITE_B_DISK", "SITE_C_DAV"}, {"SITE_A_DISK"})
    assert costs == {("SITE_B_DISK", "SITE_A_DISK"): 1.0, ("SITE_C_DAV", "SITE_A_DISK"): 2.0}


def test_the_command_prints_the_table_and_writes_the_plan(
        project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(command, "connect", lambda args, site_file: Answers())
    assert cli.main(["plan", "--sites", "sites.yaml", "--config", "config.yaml",
                     "--out", "plan.json", "--per-gib-moved", "10"]) == 0
    out = capsys.readouterr().out
    plan = Plan.from_json(json.loads((project / "plan.json").read_text()))
    # Both subbands are on B, a GiB costs 10: B preprocesses and processes both, moving
    # nothing; B's 1 core takes 2*20 + 60 s (one target, 60 s; no records), and each of the
    # two stages' runs the default 30 s of its own.
    assert [s.name for s in plan.sites if s.process] == ["SITE_B"]
    assert plan.sites[1].preprocess == ("L700000:000", "L700001:000")
    assert plan.predicted.bytes_moved == 0
    assert plan.predicted.makespan_s == 100.0 + 2 * 30.0
    assert plan.weights == {"per_gib_moved": 10.0, "per_second": 0.01}
    assert plan.costs == {"preprocess_s": 20.0, "process_s": 60.0, "source": "stage_seconds",
                          "run_overhead_s": {"preprocess": 30.0, "process": 30.0},
                          "overhead_source": "preprocess: run_overhead_s; "
                                             "process: run_overhead_s"}
    assert "SITE_B  profiles/b" in out and "plan written to plan.json" in out
    assert "run overheads from preprocess: run_overhead_s" in out
    assert "(of which the runs' own start-up, staging and storing: 60 s)" in out


@pytest.mark.usefixtures("project")
def test_an_infeasible_plan_is_one_error_line_and_exit_code_1(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    answers = Answers()
    answers.list_replicas = lambda dids: []  # type: ignore[method-assign]
    monkeypatch.setattr(command, "connect", lambda args, site_file: answers)
    assert cli.main(["plan", "--sites", "sites.yaml", "--config", "config.yaml"]) == 1
    assert capsys.readouterr().err == (
        "error: subband L700000:000 (lofar:L700000_SB000_uv.MS.tar) has no AVAILABLE replica "
        "on any RSE\n")
    assert not Path("plan.json").exists()


@pytest.mark.usefixtures("project")
def test_a_missing_workflow_config_or_sheet_is_named() -> None:
    with pytest.raises(FileNotFoundError, match=r"^no workflow config at elsewhere.yaml"):
        inventory.read_sheet(Path("elsewhere.yaml"))
    Path("observations.tsv").unlink()
    with pytest.raises(FileNotFoundError,
                       match=r"^config.yaml: observations: no sheet at 'observations.tsv'"):
        inventory.read_sheet(Path("config.yaml"))


def test_weights_given_on_the_command_line_replace_the_files() -> None:
    from lofar_datalake.placement.model import Weights

    args = argparse.Namespace(per_gib_moved=None, per_second=2.0)
    assert command.weights(args, Weights(3.0, 0.5)) == Weights(3.0, 2.0)
