"""Site tests run the workflow through a real batch system with a site profile (minutes)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sites: runs the workflow through a batch system with a site profile"
    )
