"""A chain split across sites (`placement` in the config): the deterministic tar the preprocessed
subbands travel in, the section's checks, and what each stage's run makes (Snakemake's dry run
on a DataLake stood in for by a local copy, so no server is needed)."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from lofar_datalake.pipeline import placement_config
from lofar_datalake.pipeline.pack import FIXED_MTIME, pack_ms
from lofar_datalake.pipeline.placement_config import Placement
from lofar_datalake.pipeline.unpack import unpack_ms

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
SHEET = [("L1", "000"), ("L1", "001"), ("L2", "000"), ("L2", "001")]
PREFIX = "products/plan-1/preprocessed"


def _fake_ms(path: Path, mode: int = 0o644) -> Path:
    for rel, data in {"table.dat": b"main", "table.f0": b"\x00" * 300,
                      "ANTENNA/table.dat": b"ant", "SPECTRAL_WINDOW/table.f0": b"spw"}.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_bytes(data)
        (path / rel).chmod(mode)
    return path


def test_equal_measurement_sets_pack_into_equal_bytes(tmp_path: Path) -> None:
    first = _fake_ms(tmp_path / "one" / "L1_SB000.MS")
    second = _fake_ms(tmp_path / "two" / "L1_SB000.MS", mode=0o600)
    os.utime(second / "table.dat", (1, 1))
    a = pack_ms(first, tmp_path / "a.tar")
    b = pack_ms(second, tmp_path / "b.tar")
    assert a.read_bytes() == b.read_bytes()
    with tarfile.open(a) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names, key=lambda n: n.split("/"))
    assert names[0] == "L1_SB000.MS" and "L1_SB000.MS/ANTENNA/table.dat" in names
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {
        (FIXED_MTIME, 0, 0, "", "")}
    assert not list(tmp_path.glob("*.part"))


def test_a_packed_subband_unpacks_to_the_same_files(tmp_path: Path) -> None:
    ms = _fake_ms(tmp_path / "L2_SB001.MS")
    archive = pack_ms(ms, tmp_path / "out" / "L2_SB001.MS.tar")
    back = unpack_ms(archive, tmp_path / "elsewhere" / "L2_SB001.MS")
    files = sorted(p.relative_to(ms) for p in ms.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(back) for p in back.rglob("*") if p.is_file())
    assert all((ms / f).read_bytes() == (back / f).read_bytes() for f in files)


def test_packing_refuses_links_and_directories_that_are_no_measurement_set(
        tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a Measurement Set"):
        pack_ms(tmp_path, tmp_path / "x.tar")
    ms = _fake_ms(tmp_path / "L1_SB000.MS")
    (ms / "link").symlink_to(ms / "table.dat")
    with pytest.raises(ValueError, match="only files and directories"):
        pack_ms(ms, tmp_path / "x.tar")


def test_a_config_without_placement_runs_the_whole_chain() -> None:
    placement = Placement.from_config({})
    assert placement.stage == placement_config.ALL
    assert placement.selected(SHEET) == SHEET
    assert placement_config.problems(placement, "local", SHEET, "obs.tsv") == []


def test_a_preprocess_run_takes_its_subbands_and_a_process_run_none() -> None:
    pre = Placement.from_config({"placement": {"stage": "preprocess", "preprocessed": PREFIX,
                                               "subbands": ["L2:001", "L1:000"]}})
    assert pre.selected(SHEET) == [("L1", "000"), ("L2", "001")]
    assert pre.archive_name("L2", "001") == f"{PREFIX}/L2_SB001.MS.tar"
    assert Placement("preprocess", (), PREFIX).selected(SHEET) == SHEET
    assert Placement("process", (), PREFIX).selected(SHEET) == []


@pytest.mark.parametrize(("placement", "input_mode", "says"), [
    (Placement("process", (), PREFIX), "local", "needs input_mode 'datalake'"),
    (Placement("preprocess", (), ""), "datalake", "needs placement.preprocessed"),
    (Placement("process", (("L1", "000"),), PREFIX), "datalake",
     "placement.subbands is for a preprocess run"),
    (Placement("preprocess", (("L1", "000"), ("L9", "000"), ("L1", "007")), PREFIX), "datalake",
     "not in obs.tsv: L9:000, L1:007"),
])
def test_placement_problems_name_the_key_and_what_to_change(placement, input_mode, says) -> None:
    found = placement_config.problems(placement, input_mode, SHEET, "obs.tsv")
    assert len(found) == 1 and says in found[0], found


# The workflow itself: each stage's dry run on a four-subband sheet, the DataLake stood in for
# by a local copy holding the raw archives and the packed subbands.


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("split")
    rows = ["observation\trole\tsubband\tcalibrator\tpath\tdid"]
    for obs, sb in SHEET:
        role, cal = ("calibrator", "") if obs == "L1" else ("target", "L1")
        rows.append(f"{obs}\t{role}\t{sb}\t{cal}\t{obs}_SB{sb}_uv.MS.tar\t"
                    f"lofar:{obs}_SB{sb}_uv.MS.tar")
        for name in (f"{obs}_SB{sb}_uv.MS.tar", f"{PREFIX}/{obs}_SB{sb}.MS.tar"):
            (root / "copy" / "lofar" / name).parent.mkdir(parents=True, exist_ok=True)
            (root / "copy" / "lofar" / name).write_bytes(b"x")
    (root / "obs.tsv").write_text("\n".join(rows) + "\n")
    (root / "sky.skymodel").write_text("")
    return root


def _snakemake(run_dir: Path, placement: dict, input_mode: str = "datalake"
               ) -> subprocess.CompletedProcess[str]:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config |= {"input_mode": input_mode, "observations": str(run_dir / "obs.tsv"), "truth": "",
               "placement": placement}
    config["calibration"]["skymodel"] = str(run_dir / "sky.skymodel")
    path = run_dir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run(
        [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--dry-run", "--directory", str(run_dir),
         "--configfile", str(path), "--storage-datalake-local-copy", str(run_dir / "copy")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "CONDOR_CONFIG": os.devnull})


def _jobs(done: subprocess.CompletedProcess[str]) -> dict[str, int]:
    """Rule -> job count, from the dry run's job stats."""
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = done.stdout.split("Job stats:")[1].split("\n\n")[0].splitlines()[3:]
    return {rule: int(count) for rule, count in (line.split() for line in table)
            if rule != "total"}


def _outputs(done: subprocess.CompletedProcess[str]) -> set[str]:
    return {o.strip().removesuffix(" (send to storage)") for line in done.stdout.splitlines()
            if line.strip().startswith("output:") for o in line.split(":", 1)[1].split(",")}


def test_a_preprocess_run_makes_and_stores_only_its_subbands(run_dir: Path) -> None:
    done = _snakemake(run_dir, {"stage": "preprocess", "subbands": ["L1:000", "L2:000"],
                                "preprocessed": PREFIX})
    assert _jobs(done) == {"fetch": 2, "flagging_strategy": 1, "flag": 2, "average": 2,
                           "qa_flags": 2, "pack_preprocessed": 2, "store_preprocessed": 2,
                           "store_product": 3, "provenance": 1, "default": 1}
    outputs = _outputs(done)
    assert {f"datalake://lofar/{PREFIX}/{k}_SB000.MS.tar" for k in ("L1", "L2")} <= outputs
    assert "datalake://lofar/products/run1/L1/qa/L1_SB000_flags.png" in outputs
    assert not any("SB001" in o for o in outputs)
    assert not any("preprocessed" in o for o in outputs if "products/run1" in o)


def test_a_process_run_reads_every_subband_from_the_preprocessed_ones(run_dir: Path) -> None:
    done = _snakemake(run_dir, {"stage": "process", "subbands": [], "preprocessed": PREFIX})
    assert _jobs(done) == {"unpack_preprocessed": 4, "calibrate": 2, "apply_calibration": 2,
                           "qa_gains": 2, "image": 1, "find_sources": 1, "qa_sources": 1,
                           "store_product": 11, "provenance": 1, "default": 1}
    assert f"datalake://lofar/{PREFIX}/L2_SB001.MS.tar (retrieve from storage)" in done.stdout
    assert "_uv.MS.tar" not in done.stdout  # no raw archive is asked for


def test_a_whole_chain_run_is_as_without_placement(run_dir: Path) -> None:
    whole = _jobs(_snakemake(run_dir, {"stage": "all", "subbands": [], "preprocessed": ""}))
    assert whole == {"fetch": 4, "flagging_strategy": 1, "flag": 4, "average": 4, "qa_flags": 4,
                     "calibrate": 2, "apply_calibration": 2, "qa_gains": 2, "image": 1,
                     "find_sources": 1, "qa_sources": 1, "store_product": 15, "provenance": 1,
                     "default": 1}


@pytest.mark.parametrize(("placement", "input_mode", "says"), [
    ({"stage": "process", "subbands": [], "preprocessed": PREFIX}, "local",
     "placement.stage 'process' needs input_mode 'datalake'"),
    ({"stage": "preprocess", "subbands": ["L3:000"], "preprocessed": PREFIX}, "datalake",
     "names subbands that are not in"),
    ({"stage": "preprocess", "subbands": ["L1-000"], "preprocessed": PREFIX}, "datalake",
     "'placement.subbands.0': 'L1-000' is not a subband as \"<observation>:<subband>\""),
    ({"stage": "split", "preprocessed": PREFIX}, "datalake", "key 'placement.stage'"),
    ({"stage": "all", "site": "A"}, "datalake", "unknown key 'placement.site'"),
])
def test_a_wrong_placement_stops_the_run_with_what_to_change(run_dir, placement, input_mode,
                                                             says) -> None:
    done = _snakemake(run_dir, placement, input_mode)
    assert done.returncode != 0
    assert says in done.stdout + done.stderr, done.stdout[-3000:] + done.stderr[-3000:]
