"""The container recipes of the stage families and the `lofar-datalake containers` command."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from lofar_datalake import container_recipe, containers
from lofar_datalake.cli import main

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config" / "config.yaml"


def _rule_families() -> set[str]:
    text = "".join(p.read_text() for p in (ROOT / "workflow" / "rules").glob("*.smk"))
    return set(re.findall(r'config\["containers"\]\["([^"]+)"\]', text))


def _pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    return {r.split("==")[0].lower(): r.split("==")[1] for r in reqs if "==" in r}


def _lock_pins() -> dict[str, str]:
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    return {ln.split("==")[0].lower(): ln.split("==")[1] for ln in lines if "==" in ln}


RECIPES = containers.recipes()


def test_every_rule_family_has_a_recipe() -> None:
    families = _rule_families()
    assert families == {"python", "dp3", "wsclean", "pybdsf"}
    assert families <= set(RECIPES)


@pytest.mark.parametrize("family", sorted(RECIPES))
def test_recipe_is_debian_bookworm_with_casarc(family: str) -> None:
    recipe = RECIPES[family]
    assert recipe.header == {
        "Bootstrap": "debootstrap",
        "OSVersion": "bookworm",
        "MirrorURL": "http://deb.debian.org/debian/",
    }
    env = recipe.sections["environment"]
    assert "export OPENBLAS_NUM_THREADS=1" in env
    assert "export CASARCFILES=/opt/casarc" in env
    post = " ".join(recipe.sections["post"])
    assert "python3.11 -m venv /opt/venv" in post
    assert "measures.directory: /opt/venv/lib/python3.11/site-packages/casacore/data" in post
    assert recipe.sections["test"] and recipe.sections["help"]
    assert recipe.labels[f"{container_recipe.LABEL_PREFIX}family"] == family


@pytest.mark.parametrize("family", sorted(RECIPES))
def test_recipe_pins_match_labels_and_project(family: str) -> None:
    recipe = RECIPES[family]
    pins = recipe.pip_pins()  # raises on any requirement without ==
    assert pins and pins == {k: v for k, v in recipe.versions.items() if k in pins}
    project, lock = _pyproject_pins(), _lock_pins()
    for name, version in pins.items():
        assert version == project.get(name, lock.get(name)), name


def test_unpinned_pip_install_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "bad.def"
    bad.write_text(
        "Bootstrap: debootstrap\n\n%post\n    /opt/venv/bin/pip install numpy dp3==6.6.0\n"
    )
    with pytest.raises(containers.RecipeError, match="'numpy' is not pinned"):
        containers.parse_recipe(bad).pip_pins()


def test_imaging_recipe_pins_debian_wsclean() -> None:
    recipe = RECIPES["wsclean"]
    assert "wsclean=3.1-3" in " ".join(recipe.sections["post"])
    assert recipe.versions["wsclean"] == "3.1"
    assert "wsclean --version" in recipe.sections["test"]


def test_recipe_tests_run_each_tool() -> None:
    assert "DP3.py --version" in RECIPES["dp3"].sections["test"]
    assert any("import bdsf" in t for t in RECIPES["pybdsf"].sections["test"])


def test_list_reads_the_repo_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["containers", "list", "--config", str(CONFIG), "--json"]) == 0
    images = {i["family"]: i for i in json.loads(capsys.readouterr().out)}
    assert set(images) == _rule_families()
    dp3 = images["dp3"]
    assert dp3["reference"].startswith("docker://") and dp3["digest"].startswith("sha256:")
    assert dp3["cvmfs"] is False and Path(dp3["recipe"]).name == "dp3.def"
    assert dp3["versions"]["dp3"] == "6.6.0"
    assert main(["containers", "list", "--config", str(CONFIG)]) == 0
    assert "pybdsf.def" in capsys.readouterr().out


def test_list_marks_cvmfs_paths(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("containers:\n  dp3: /cvmfs/softdrive.nl/lofar/dp3.sif\n  other: /cvmfs/x\n")
    dp3, other = containers.list_images(config)
    assert dp3.cvmfs and dp3.digest is None and dp3.versions["dp3"] == "6.6.0"
    assert other.recipe is None and other.versions == {}


@pytest.mark.parametrize("family", sorted(RECIPES))
def test_dockerfile_keeps_base_pins_and_labels(family: str) -> None:
    text = containers.dockerfile(family)
    lines = text.splitlines()
    assert lines[0].startswith("FROM debian:bookworm")
    for name, version in RECIPES[family].pip_pins().items():
        assert f"{name}=={version}" in text
    assert f"LABEL org.lofar-datalake.family={family}" in lines
    assert "ENV OPENBLAS_NUM_THREADS=1" in lines
    assert "RUN /bin/bash /tests.sh" in lines
    assert not any(ln.startswith(("HEALTHCHECK", "Stage:", "Bootstrap")) for ln in lines)
    assert all(re.fullmatch(r"LABEL \S+=\S+", ln) for ln in lines if ln.startswith("LABEL"))


def test_dockerfile_command_writes_file(tmp_path: Path) -> None:
    out = tmp_path / "Dockerfile"
    assert main(["containers", "dockerfile", "wsclean", "--output", str(out)]) == 0
    assert "wsclean=3.1-3" in out.read_text()


def test_unknown_family_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["containers", "dockerfile", "casa"]) == 1
    assert "no recipe for container family 'casa'" in capsys.readouterr().err


def test_build_without_apptainer_names_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["containers", "build", "dp3", "--output", str(tmp_path / "dp3.sif")]) == 1
    err = capsys.readouterr().err
    assert "apptainer not found on PATH" in err and "containers dockerfile dp3" in err
    assert not (tmp_path / "dp3.sif").exists()


def test_build_calls_apptainer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "apptainer"
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/args\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    containers.build("dp3", tmp_path / "dp3.sif", fakeroot=True)
    args = (tmp_path / "args").read_text().split()
    assert args[:3] == ["build", "--fakeroot", str(tmp_path / "dp3.sif")]
    assert args[3].endswith("workflow/containers/dp3.def")


def test_dockerfile_refuses_lines_spython_would_misread(tmp_path: Path) -> None:
    (tmp_path / "odd.def").write_text(
        "Bootstrap: debootstrap\nOSVersion: bookworm\n\n%help\n    built with debootstrap\n"
    )
    with pytest.raises(containers.RecipeError, match="spython would misread"):
        containers.dockerfile("odd", recipes_dir=tmp_path)


def _container_schema() -> dict:
    import yaml

    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    return schema["$defs"]["container"]


@pytest.mark.parametrize(
    "reference",
    [
        "docker://ghcr.io/lofar-datalake/dp3:6.6.0@sha256:" + "ab" * 32,
        "/cvmfs/softdrive.nl/lofar/dp3.sif",
        "/var/cache/lofar-datalake/images/dp3_6.6.0",
        "/data/images/wsclean-3.1.sif",
        "/data/images/pybdsf_1.14.1/",
    ],
)
def test_schema_accepts_immutable_image_references(reference: str) -> None:
    import jsonschema

    jsonschema.validate(reference, _container_schema())


@pytest.mark.parametrize(
    "reference",
    [
        "docker://ghcr.io/lofar-datalake/dp3:6.6.0",  # a tag can move
        "docker://ghcr.io/lofar-datalake/dp3:latest@sha256:" + "ab" * 32,
        "/data/images/dp3.sif",  # no version in the name
        "/data/images/dp3_latest",
        "/data/v6.6/images/dp3",  # the version names a directory, not the image
        "images/dp3_6.6.0",  # relative: depends on the working directory
    ],
)
def test_schema_rejects_moving_image_references(reference: str) -> None:
    import jsonschema

    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(reference, _container_schema())


def test_provenance_records_image_digests_and_versions(tmp_path: Path) -> None:
    from lofar_datalake.provenance.tools import image_records

    sandbox = tmp_path / "dp3_6.6.0-abc"
    (sandbox / ".singularity.d").mkdir(parents=True)
    labels = {
        "org.lofar-datalake.family": "dp3",
        "org.lofar-datalake.dp3": "6.6.0",
        "org.lofar-datalake.recipe-sha256": "ab" * 32,
        "org.lofar-datalake.rootfs-sha256": "sha256:" + "cd" * 32,
    }
    (sandbox / ".singularity.d" / "labels.json").write_text(json.dumps(labels))
    docker = "docker://ghcr.io/x/wsclean:3.1@sha256:" + "ef" * 32
    records = image_records({"dp3": str(sandbox), "wsclean": docker, "pybdsf": "/cvmfs/x_1.2"})
    assert records["dp3"] == {
        "reference": str(sandbox), "digest": "sha256:" + "cd" * 32, "versions": {"dp3": "6.6.0"}
    }  # fmt: skip
    assert records["wsclean"]["digest"] == "sha256:" + "ef" * 32
    assert records["pybdsf"] == {"reference": "/cvmfs/x_1.2", "digest": None, "versions": {}}


def test_list_reads_the_digest_of_a_sandbox_image(tmp_path: Path) -> None:
    sandbox = tmp_path / "dp3_6.6.0-abc"
    (sandbox / ".singularity.d").mkdir(parents=True)
    labels = {"org.lofar-datalake.rootfs-sha256": "sha256:" + "cd" * 32}
    (sandbox / ".singularity.d" / "labels.json").write_text(json.dumps(labels))
    config = tmp_path / "config.yaml"
    config.write_text(f"containers:\n  dp3: {sandbox}\n  python: /missing_1.0\n")
    dp3, python = containers.list_images(config)
    assert dp3.digest == "sha256:" + "cd" * 32 and python.digest is None
