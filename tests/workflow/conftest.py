"""Workflow tests run Snakemake end to end on simulated data (minutes, not seconds)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "workflow: runs the Snakemake workflow end to end on simulated data"
    )
