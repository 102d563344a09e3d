"""`lofar-datalake compare` where there is no workflow (no Snakefile where it runs, no `-s`,
no `--demo`) says so at once and runs nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from lofar_datalake.cli import main


def test_compare_without_a_workflow_stops_before_running_anything(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["compare"]) == 1
    err = capsys.readouterr().err
    assert "no workflow to compare" in err and str(tmp_path) in err
    assert "--demo" in err and "-s path/to/Snakefile" in err
    assert list(tmp_path.iterdir()) == [], "nothing may be created"


def test_a_snakefile_given_or_found_is_enough(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from lofar_datalake.compare.command import _has_workflow

    monkeypatch.chdir(tmp_path)
    assert not _has_workflow([])
    assert _has_workflow(["-s", "elsewhere/Snakefile"])
    (tmp_path / "workflow").mkdir()
    (tmp_path / "workflow" / "Snakefile").write_text("")
    assert _has_workflow(["--cores", "1"])
