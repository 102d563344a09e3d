"""Fixtures shared by unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from joserfc.jwk import RSAKey


@pytest.fixture()
def key() -> RSAKey:
    """A fresh RS256 signing key with its `kid`, for tokens the tests make."""
    made = RSAKey.generate_key(2048, private=True)
    made.ensure_kid()
    return made


@pytest.fixture()
def credential(tmp_path: Path) -> Path:
    """A researcher's Rucio password in a private file, as the researchers file names it."""
    path = tmp_path / "alice.secret"
    path.write_text("rucio-password\n")
    path.chmod(0o600)
    return path
