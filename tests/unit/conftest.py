"""Fixtures shared by unit tests."""

from __future__ import annotations

import pytest
from joserfc.jwk import RSAKey


@pytest.fixture()
def key() -> RSAKey:
    """A fresh RS256 signing key with its `kid`, for tokens the tests make."""
    made = RSAKey.generate_key(2048, private=True)
    made.ensure_kid()
    return made
