"""What every site test needs first: root and the programs of its batch system (not a test
module: pytest would collect functions named test*)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def require(programs: tuple[str, ...], why: str) -> None:
    """Skip without root; without the programs skip too, but fail in CI (`CI=true`), where
    scripts/install-system-deps.sh --tests provides them."""
    if os.geteuid() != 0:
        pytest.skip(f"{why} needs root")
    missing = [p for p in programs if not (shutil.which(p) or Path("/usr/sbin", p).exists())]
    if missing:
        msg = f"{why} needs {', '.join(missing)} (scripts/install-system-deps.sh --tests)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
