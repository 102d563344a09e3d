"""Versions of the software a run used, asked of the software itself where it can answer."""

from __future__ import annotations

import importlib.metadata
import platform
import re
import subprocess
import sysconfig
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..pipeline.tools import dp3_executable, wsclean_executable

PACKAGES = (
    "snakemake",
    "lofar-datalake",
    "dp3",
    "bdsf",
    "python-casacore",
    "rucio",
    "numpy",
    "astropy",
    "h5py",
)


def _first_line(cmd: list[str], pattern: str) -> str | None:
    try:
        done = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=60,
            env={"OPENBLAS_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(pattern, done.stdout + done.stderr)
    return match.group(1) if match else None


def _bundled(library: str) -> str | None:
    """A shared library bundled inside the dp3 wheel (AOFlagger, casacore come that way)."""
    libs = Path(sysconfig.get_paths()["purelib"]) / "dp3.libs"
    found = sorted(p.name for p in libs.glob(f"{library}*")) if libs.is_dir() else []
    return f"bundled in the dp3 wheel: {', '.join(found)}" if found else None


def tool_versions() -> dict[str, str | None]:
    """DP3, WSClean, AOFlagger, PyBDSF and casacore as this environment provides them
    (None: not available here, e.g. when the tools live only in container images)."""
    versions: dict[str, str | None] = {}
    try:
        versions["DP3"] = _first_line([dp3_executable(), "--version"], r"DP3 (\S+)")
    except RuntimeError:
        versions["DP3"] = None
    try:
        versions["WSClean"] = _first_line(
            [wsclean_executable(), "--version"], r"WSClean version (\S+)"
        )
    except RuntimeError:
        versions["WSClean"] = None
    versions["AOFlagger"] = _bundled("libaoflagger")
    versions["casacore"] = _bundled("libcasa_tables")
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    versions["python"] = platform.python_version()
    return versions


def image_records(images: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """What is known of each stage image without running it: the digest of a `docker://`
    reference, or the labels (tool versions, rootfs and recipe digests) of a sandbox image."""
    from ..container_recipe import LABEL_PREFIX
    from ..container_sandbox import DIGEST_LABEL, read_labels

    records: dict[str, dict[str, Any]] = {}
    for family, reference in images.items():
        ref = str(reference)
        labels = read_labels(Path(ref)) if ref.startswith("/") and Path(ref).is_dir() else {}
        digest = ref.partition("@")[2] or labels.get(DIGEST_LABEL)
        versions = {
            k.removeprefix(LABEL_PREFIX): v
            for k, v in labels.items()
            if k.startswith(LABEL_PREFIX) and "sha256" not in k and k != LABEL_PREFIX + "family"
        }
        records[family] = {"reference": ref, "digest": digest or None, "versions": versions}
    return records
