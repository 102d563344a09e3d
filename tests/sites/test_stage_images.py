"""The stage images, built from workflow/containers/*.def, and the Apptainer test launcher.

The images are built once per session (tests/sites/conftest.py: `stage_images`); the pipeline
runs in them through Slurm in test_compare_at_sites.py. Here: what each image holds and that the
launcher behaves as `apptainer exec` does where Snakemake relies on it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lofar_datalake import container_sandbox, containers
from lofar_datalake_testbed import launchers

pytestmark = [pytest.mark.sites, pytest.mark.timeout(1200)]
LAUNCHER = Path(launchers.__file__).parent / "apptainer"


def launch(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LAUNCHER), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120
    )


def test_images_carry_recipe_versions_and_digests(stage_images: dict[str, Path]) -> None:
    recipes = containers.recipes()
    assert set(stage_images) == set(recipes) == {"python", "dp3", "wsclean", "pybdsf"}
    for family, image in stage_images.items():
        labels = container_sandbox.read_labels(image)
        assert {k: labels[k] for k in recipes[family].labels} == recipes[family].labels
        assert labels[container_sandbox.RECIPE_LABEL] in image.name or image.name.endswith(
            labels[container_sandbox.RECIPE_LABEL][:12]
        )
        assert labels[container_sandbox.DIGEST_LABEL].startswith("sha256:")
    # The digest is of the content: recomputing it finds the same (one image, to stay quick).
    dp3 = stage_images["dp3"]
    labels = container_sandbox.read_labels(dp3)
    assert container_sandbox.tree_digest(dp3) == labels[container_sandbox.DIGEST_LABEL]
    cli = subprocess.run(
        [sys.executable, "-m", "lofar_datalake.cli", "containers", "inspect", str(dp3)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(cli.stdout) == labels


def test_every_image_passes_its_recipe_test_in_a_container(
    stage_images: dict[str, Path], launcher_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**os.environ, **launcher_env}
    for family, image in stage_images.items():
        done = launch(["exec", str(image), "sh", "-e", "/.singularity.d/test"], env, tmp_path)
        assert done.returncode == 0, (family, done.stdout, done.stderr)
    dp3 = launch(["exec", str(stage_images["dp3"]), "DP3.py", "--version"], env, tmp_path)
    assert "6.6.0" in dp3.stdout + dp3.stderr
    wsclean = launch(["exec", str(stage_images["wsclean"]), "wsclean", "--version"], env, tmp_path)
    assert "WSClean version 3.1" in wsclean.stdout


def test_launcher_behaves_like_apptainer_exec(
    stage_images: dict[str, Path], launcher_env: dict[str, str], tmp_path: Path
) -> None:
    image = stage_images["python"]
    bound = tmp_path / "bound"
    bound.mkdir()
    (bound / "in.txt").write_text("from the host\n")
    env = {
        **os.environ, **launcher_env,
        "HOST_VARIABLE": "passed", "SINGULARITYENV_PREFIXED": "renamed",
        "LD_LIBRARY_PATH": "/host/lib",
    }  # fmt: skip
    script = (
        'echo "path=$PATH"; echo "host=$HOST_VARIABLE"; echo "prefixed=$PREFIXED"; '
        'echo "ld=${LD_LIBRARY_PATH:-unset}"; echo "pwd=$(pwd)"; cat /mnt/in/in.txt; '
        "python -c 'import sys; print(\"python=\" + sys.prefix)'; "
        "echo written > out.txt; touch /written-into-image"
    )
    done = launch(
        ["--quiet", "exec", "--home", str(tmp_path), "--bind", f"{bound}:/mnt/in:ro",
         "--pwd", str(tmp_path), str(image), "sh", "-c", script],
        env, tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "path=/opt/venv/bin:" in out  # the image's %environment, not the host's PATH
    assert "host=passed" in out and "prefixed=renamed" in out and "ld=unset" in out
    assert f"pwd={tmp_path}" in out and "from the host" in out and "python=/opt/venv" in out
    assert (tmp_path / "out.txt").read_text() == "written\n"  # the working directory is bound
    assert not (image / "written-into-image").exists()  # the image stays read-only
    # Exit codes come through; what the launcher cannot do as Apptainer would is refused.
    assert launch(["exec", str(image), "sh", "-c", "exit 3"], env, tmp_path).returncode == 3
    refused = launch(["exec", "--nv", str(image), "true"], env, tmp_path)
    assert refused.returncode == 255 and "--nv is not supported" in refused.stderr
    missing = launch(["exec", "--bind", "/no/such/dir", str(image), "true"], env, tmp_path)
    assert missing.returncode == 255 and "does not exist" in missing.stderr
    version = launch(["--version"], env, tmp_path)
    assert version.stdout.startswith("apptainer version 1.")
