"""An Apptainer recipe (`workflow/containers/<family>.def`) as the pipeline reads it, and the
label names its images carry.

Kept apart from `containers` (listing, converting, building images) and `container_sandbox`
(building a sandbox image without Apptainer) because both read recipes: with the recipe here,
`containers` uses `container_sandbox` and neither imports the other back.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

LABEL_PREFIX = "org.lofar-datalake."
# Labels that describe the image rather than a tool version.
_META_LABELS = {"family"}


class RecipeError(RuntimeError):
    """A recipe that cannot be read, pinned or converted as the pipeline expects."""


@dataclass(frozen=True)
class Recipe:
    """An Apptainer definition file: its header (`Key: value` lines) and its %sections."""

    family: str
    path: Path
    header: dict[str, str]
    sections: dict[str, list[str]]

    @property
    def labels(self) -> dict[str, str]:
        pairs = (line.split(None, 1) for line in self.sections.get("labels", []))
        return {p[0]: p[1].strip() if len(p) > 1 else "" for p in pairs}

    @property
    def versions(self) -> dict[str, str]:
        """Tool versions from the `org.lofar-datalake.<tool>` labels."""
        return {
            key.removeprefix(LABEL_PREFIX): value
            for key, value in self.labels.items()
            if key.startswith(LABEL_PREFIX) and key.removeprefix(LABEL_PREFIX) not in _META_LABELS
        }

    def pip_requirements(self) -> list[str]:
        """Every requirement given to `pip install` in %post, as written."""
        reqs: list[str] = []
        for line in self.sections.get("post", []):
            words = shlex.split(line)
            for i, word in enumerate(words[:-1]):
                if Path(word).name.startswith("pip") and words[i + 1] == "install":
                    reqs += [w for w in words[i + 2 :] if not w.startswith("-")]
        return reqs

    def pip_pins(self) -> dict[str, str]:
        """`name==version` requirements of %post; raises on any requirement not pinned exactly."""
        pins: dict[str, str] = {}
        for req in self.pip_requirements():
            name, sep, version = req.partition("==")
            if not sep or not re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", version):
                raise RecipeError(f"{self.path}: pip requirement {req!r} is not pinned with ==")
            pins[name.lower()] = version
        return pins


def parse_recipe(path: Path) -> Recipe:
    header: dict[str, str] = {}
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("%"):
            current = sections.setdefault(line[1:].split()[0].lower(), [])
        elif current is not None:
            if line:
                current.append(line)
        elif line and not line.startswith("#"):
            key, _, value = line.partition(":")
            header[key.strip()] = value.strip()
    return Recipe(path.stem, path, header, sections)
