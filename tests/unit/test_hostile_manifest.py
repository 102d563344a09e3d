"""`reproduce` treats a provenance manifest as untrusted input: a manifest with paths leading out
of the output directory, a config the workflow's schema refuses, or embedded files whose
sha256 does not match is refused as a whole, and nothing of it is written."""

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from datalake_core.rucio_adapter import DataLakeError, Did
from lofar_datalake.compare.make_mirror import copy_path
from lofar_datalake.provenance import manifest
from lofar_datalake.provenance.reproduce import (
    ManifestError,
    load_manifest,
    reproduction_config,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def valid(tmp_path: Path) -> dict[str, Any]:
    """A manifest of a DataLake run written by the project's own writer, with the shipped
    config and embedded sheet, sky model and truth directory."""
    work = tmp_path / "work"
    (work / "truth").mkdir(parents=True)
    (work / "truth" / "gains.npz").write_bytes(b"\x00\x01binary")
    (work / "sheet.tsv").write_text("observation\trole\n")
    (work / "cal.skymodel").write_text("format = Name, Type\n")
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config.update(input_mode="datalake", observations="sheet.tsv", truth="truth")
    config["calibration"]["skymodel"] = "cal.skymodel"
    config["local"]["data_dir"] = "/data/of/the/original/site"  # absolute, as in the tests
    (work / "results").mkdir()
    (work / "results" / "image.fits").write_bytes(b"SIMPLE")
    data = manifest.build(config=config, workdir=work, input_dids=[], local_inputs=[],
                          products=[Path("results/image.fits")],
                          product_did={"results/image.fits": "lofar:products/run1/image.fits"},
                          containers={}, container_deployment=False, storage={},
                          executor="local", started=None, tools={})
    return json.loads(json.dumps(data))


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _refused(data: dict[str, Any], tmp_path: Path, match: str) -> None:
    """The manifest is refused, naming `match`, and the output directory stays empty."""
    out = tmp_path / "out"
    out.mkdir(parents=True)
    source = tmp_path / "provenance.json"
    source.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=match):
        reproduction_config(load_manifest(str(source), out, {}), out, "T")
    assert _tree(out) == []


def test_valid_manifest_restores_its_files_and_config(valid, tmp_path):
    out = tmp_path / "out"
    source = tmp_path / "provenance.json"
    source.write_text(json.dumps(valid))
    written = reproduction_config(load_manifest(str(source), out, {}), out, "T")
    config = yaml.safe_load(written.read_text())
    assert Path(config["truth"], "gains.npz").read_bytes() == b"\x00\x01binary"
    assert Path(config["observations"]).read_text() == "observation\trole\n"
    assert Path(config["calibration"]["skymodel"]).parent.parent == out / "inputs"
    assert config["datalake"]["products"] == "products/run1/reproduced-T"
    assert config["flagging"]["strategy"] == "lofar-hba-averaged.lua"  # shipped, kept
    assert config["local"]["data_dir"] == "no-local-data"  # unread in a DataLake run


def test_embedded_path_with_dotdot_is_refused(valid, tmp_path):
    files = valid["embedded"]["truth"]["files"]
    files["../../escaped.npz"] = files.pop("gains.npz")
    _refused(valid, tmp_path, r"truth/\.\./\.\./escaped\.npz.*'\.\.' part")
    assert not (tmp_path / "escaped.npz").exists()


def test_absolute_embedded_path_is_refused(valid, tmp_path):
    files = valid["embedded"]["truth"]["files"]
    files[str(tmp_path / "abs.npz")] = files.pop("gains.npz")
    _refused(valid, tmp_path, "absolute path")
    assert not (tmp_path / "abs.npz").exists()


@pytest.mark.parametrize("name", ["a\x00b", "a/../../b", "", "a\\..\\b"])
def test_odd_embedded_names_are_refused(valid, tmp_path, name):
    files = valid["embedded"]["truth"]["files"]
    files[name] = files.pop("gains.npz")
    _refused(valid, tmp_path, "embedded file truth/")


def test_symlink_leading_out_is_refused(valid, tmp_path):
    out = tmp_path / "out"
    (out / "inputs").mkdir(parents=True)
    (out / "inputs" / "truth").symlink_to(tmp_path)  # left by someone else
    source = tmp_path / "provenance.json"
    source.write_text(json.dumps(valid))
    with pytest.raises(ManifestError, match="leads out"):
        reproduction_config(load_manifest(str(source), out, {}), out, "T")
    assert not (tmp_path / "gains.npz").exists() and _tree(out) == ["inputs", "inputs/truth"]


def test_product_path_and_did_leading_out_are_refused(valid, tmp_path):
    bad_path = copy.deepcopy(valid)
    bad_path["outputs"][0]["path"] = "../../results/image.fits"
    _refused(bad_path, tmp_path / "a", r"outputs\[0\]\.path")
    valid["outputs"][0]["did"] = "lofar:../image.fits"
    _refused(valid, tmp_path / "b", r"outputs\[0\]\.did")


def test_config_with_an_unknown_key_is_refused(valid, tmp_path):
    valid["config"]["datalake"]["upload_to"] = "/etc"
    _refused(valid, tmp_path, "unknown key 'datalake.upload_to'")


def test_config_naming_a_file_not_embedded_is_refused(valid, tmp_path):
    del valid["embedded"]["calibration.skymodel"]
    valid["config"]["calibration"]["skymodel"] = "/etc/passwd"
    _refused(valid, tmp_path, "config calibration.skymodel: '/etc/passwd' is not embedded")


def test_wrong_sha256_is_refused_before_anything_is_written(valid, tmp_path):
    # The bad file is the last one: the sheet and sky model before it are not written either.
    valid["embedded"]["truth"]["files"]["gains.npz"]["sha256"] = "0" * 64
    _refused(valid, tmp_path, "embedded file truth/gains.npz: sha256 does not match")


@pytest.mark.parametrize(("change", "match"), [
    (lambda m: m.update(extra=1), "unknown top-level keys"),
    (lambda m: m.update(schema="other/1"), "schema"),
    (lambda m: m.update(outputs={"path": "x"}), "outputs: expected list"),
    (lambda m: m["embedded"].update(evil={"directory": True, "files": {}}), "embedded 'evil'"),
    (lambda m: m["embedded"]["truth"].update(directory="yes"), "truth.directory"),
    (lambda m: m["outputs"][0].update(sha256=None), r"outputs\[0\]\.sha256"),
])
def test_malformed_structure_is_refused(valid, tmp_path, change, match):
    change(valid)
    _refused(valid, tmp_path, match)


def test_manifest_did_leading_out_is_refused_before_download(tmp_path):
    with pytest.raises(ManifestError, match="manifest DID"):
        load_manifest("lofar:../../provenance.json", tmp_path, {})
    assert _tree(tmp_path) == []


@pytest.mark.parametrize("did", [Did("lofar", "../x"), Did("lofar", "/etc/x"),
                                 Did("..", "x"), Did("lofar", "a\x00b")])
def test_local_copy_paths_stay_below_their_directory(tmp_path, did):
    with pytest.raises(DataLakeError, match="not be below"):
        copy_path(tmp_path, did)
    assert copy_path(tmp_path, Did("lofar", "a/b.tar")) == tmp_path / "lofar" / "a" / "b.tar"


def test_an_oversized_manifest_is_refused_unread(tmp_path, monkeypatch):
    from lofar_datalake.provenance import reproduce

    source = tmp_path / "provenance.json"
    source.write_text(json.dumps({"padding": "x" * 2048}))
    monkeypatch.setattr(reproduce, "MAX_MANIFEST_BYTES", 1024)
    with pytest.raises(ManifestError, match="more than a manifest may hold"):
        load_manifest(str(source), tmp_path / "out", {})
    assert not (tmp_path / "out").exists()
