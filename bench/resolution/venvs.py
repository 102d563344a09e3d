"""The comparison plugin, snakemake-storage-plugin-rucio, in a venv of its own: it must not see
this project's plugin, and its Rucio client is the same version as the testbed's server."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PINS = {
    "snakemake": "9.27.1",
    "snakemake-storage-plugin-rucio": "0.6.0",
    "rucio-clients": "41.5.1",
}
DEFAULT_DIR = Path(tempfile.gettempdir()) / "bench-venvs" / "rucio-plugin"

_VERSIONS = (
    "import importlib.metadata as m, json, sys; "
    "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))"
)


def installed(venv: Path) -> dict[str, str] | None:
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    result = subprocess.run(
        [str(python), "-c", _VERSIONS, *PINS], capture_output=True, text=True, check=False
    )
    return json.loads(result.stdout) if result.returncode == 0 else None


def ensure_rucio_plugin_venv(venv: Path) -> dict[str, str]:
    """Create or repair the venv; returns the installed versions."""
    if installed(venv) == PINS:
        return PINS
    base = shutil.which("python3.11") or sys.executable
    print(
        f"creating {venv} with {', '.join(f'{k}=={v}' for k, v in PINS.items())}",
        file=sys.stderr,
        flush=True,
    )
    if not (venv / "bin" / "python").exists():
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *(f"{k}=={v}" for k, v in PINS.items()),
        ],
        check=True,
    )
    versions = installed(venv)
    if versions != PINS:
        raise SystemExit(f"{venv}: expected {PINS}, found {versions}")
    return versions
