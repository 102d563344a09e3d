"""The one adapter for the pipeline's container images.

Each stage family (`config["containers"][family]`) has an Apptainer recipe
`workflow/containers/<family>.def` (read by container_recipe). This module lists the images a
config names, converts a recipe to a Dockerfile for Docker/Podman sites (spython) and builds a SIF
with Apptainer when it is installed.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from . import container_sandbox
from .container_recipe import Recipe, RecipeError, parse_recipe

RECIPES_DIR = Path(__file__).resolve().parents[2] / "containers"


def recipe_path(family: str, recipes_dir: Path = RECIPES_DIR) -> Path:
    path = recipes_dir / f"{family}.def"
    if not path.is_file():
        raise FileNotFoundError(f"no recipe for container family {family!r}: {path} is missing")
    return path


def image_name(recipe: Recipe) -> str:
    """`<family>_<tool version>-<recipe digest>`: a versioned name, as the config schema asks
    of image paths, that changes whenever the recipe does."""
    versions = recipe.versions
    version = (
        versions.get(recipe.family)
        or versions.get(recipe.family.removeprefix("py"))
        or versions["python"]
    )
    digest = hashlib.sha256(recipe.path.read_bytes()).hexdigest()[:12]
    return f"{recipe.family}_{version}-{digest}"


def recipes(recipes_dir: Path = RECIPES_DIR) -> dict[str, Recipe]:
    return {p.stem: parse_recipe(p) for p in sorted(recipes_dir.glob("*.def"))}


@dataclass(frozen=True)
class Image:
    """One image named in a config, with the recipe it is built from (if there is one)."""

    family: str
    reference: str
    digest: str | None
    cvmfs: bool
    recipe: str | None
    versions: dict[str, str] = field(default_factory=dict)


def list_images(config: Path, recipes_dir: Path = RECIPES_DIR) -> list[Image]:
    """The images of `config["containers"]`, in the config's order."""
    with config.open() as fh:
        containers = (yaml.safe_load(fh) or {}).get("containers") or {}
    images = []
    for family, reference in containers.items():
        path = recipes_dir / f"{family}.def"
        recipe = parse_recipe(path) if path.is_file() else None
        _, at, digest = str(reference).partition("@")
        if not at and str(reference).startswith("/"):
            # A sandbox built here records its tree digest among its labels.
            labels = container_sandbox.read_labels(Path(str(reference)))
            digest = labels.get(container_sandbox.DIGEST_LABEL, "")
        images.append(
            Image(
                family=family,
                reference=str(reference),
                digest=digest or None,
                cvmfs=str(reference).startswith("/cvmfs/"),
                recipe=str(path) if recipe else None,
                versions=recipe.versions if recipe else {},
            )
        )
    return images


def _docker_bootstrap(recipe: Recipe) -> str:
    """The recipe's text with a Docker header, the only bootstrap spython converts."""
    if recipe.header.get("Bootstrap", "").lower() == "debootstrap":
        base = f"debian:{recipe.header.get('OSVersion', 'stable')}"
    elif recipe.header.get("Bootstrap", "").lower() == "docker":
        base = recipe.header["From"]
    else:
        raise RecipeError(
            f"{recipe.path}: cannot convert Bootstrap {recipe.header.get('Bootstrap')}"
        )
    body = recipe.path.read_text().split("\n%", 1)[1]
    # spython treats any line with "bootstrap"/"from:"/"stage:" as a header line.
    for line in body.splitlines():
        if re.search(r"bootstrap|from:|stage:", line, re.IGNORECASE):
            raise RecipeError(f"{recipe.path}: spython would misread the line {line.strip()!r}")
    return f"Bootstrap: docker\nFrom: {base}\n\n%{body}"


def _fix_dockerfile(text: str) -> str:
    """Correct spython's Singularity-to-Docker output: it writes `LABEL key value` (legacy
    form) and `HEALTHCHECK /bin/bash /tests.sh` (not valid; %test belongs at build time)."""
    lines = []
    for line in text.splitlines():
        label = re.fullmatch(r"LABEL (\S+) (.+)", line)
        if label and "=" not in label.group(1):
            line = f"LABEL {label.group(1)}={shlex.quote(label.group(2))}"
        elif line.startswith("HEALTHCHECK "):
            line = "RUN " + line.removeprefix("HEALTHCHECK ")
        lines.append(line)
    return "\n".join(lines) + "\n"


def dockerfile(family: str, recipes_dir: Path = RECIPES_DIR) -> str:
    """The family's recipe as a Dockerfile (for Docker/Podman sites)."""
    from spython.main.parse.parsers import SingularityParser
    from spython.main.parse.writers import DockerWriter

    recipe = parse_recipe(recipe_path(family, recipes_dir))
    with tempfile.TemporaryDirectory() as tmp:
        converted = Path(tmp) / f"{family}.def"
        converted.write_text(_docker_bootstrap(recipe))
        parsed = SingularityParser(str(converted))
        return _fix_dockerfile(DockerWriter(parsed.recipe).convert())


def build(
    family: str,
    output: Path,
    recipes_dir: Path = RECIPES_DIR,
    fakeroot: bool = False,
    cache: Path | None = None,
    say: Callable[[str], None] | None = None,
) -> dict[str, str]:
    """Build the family's image at `output`: a SIF (`*.sif`, needs Apptainer) or a sandbox
    directory (anything else; Apptainer's `build --sandbox` when installed, else debootstrap
    and chroot, see container_sandbox). Returns the labels of a sandbox (versions, digests)."""
    path = recipe_path(family, recipes_dir)
    apptainer = shutil.which("apptainer")
    sandbox = output.suffix != ".sif"
    if apptainer is None and sandbox:
        recipe = parse_recipe(path)
        recipe.pip_pins()  # refuses a recipe with unpinned pip requirements before any work
        return container_sandbox.build_sandbox(
            recipe,
            output,
            cache or container_sandbox.DEFAULT_CACHE,
            say or container_sandbox.print_progress,
        )
    if apptainer is None:
        raise RuntimeError(
            "apptainer not found on PATH: building a SIF needs Apptainer (with debootstrap) "
            f"installed; without it, build a sandbox directory (an --output not ending in .sif) "
            f"or, on Docker/Podman sites, use `lofar-datalake containers dockerfile {family}`"
        )
    flags = [*(["--fakeroot"] if fakeroot else []), *(["--sandbox"] if sandbox else [])]
    done = subprocess.run([apptainer, "build", *flags, str(output), str(path)])
    if done.returncode != 0:
        raise RuntimeError(f"apptainer build of {family} exited with {done.returncode}")
    return container_sandbox.read_labels(output) if sandbox else {}


def build_all(
    directory: Path, cache: Path | None = None, say: Callable[[str], None] | None = None
) -> dict[str, Path]:
    """Every family's sandbox image in `directory` under its versioned name (`image_name`);
    only the missing ones are built, an image already there is kept."""
    images = {}
    for family, recipe in recipes().items():
        path = (directory / image_name(recipe)).absolute()
        if not container_sandbox.read_labels(path):
            build(family, path, cache=cache, say=say)
        images[family] = path
    return images
