"""The testbed's volunteered compute sites: a one-node Slurm cluster and a personal HTCondor
pool, started next to the local DataLake with `lofar-datalake testbed up --sites slurm,htcondor`.

Each kind is one module (`site_slurm`, `site_htcondor`) with the same small surface, so the
orchestrator, `testbed status|down|exec` and `compare --profile` treat them alike. Each site
has its own RSE (`layout.SITES`) and a ready profile (`profiles/testbed-<kind>`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from .layout import Layout

KINDS = ("slurm", "htcondor")
# The RSE each site's profile names as its storage.
SITE_RSES = {"slurm": "SITE_SLURM_DISK", "htcondor": "SITE_HTCONDOR_DAV"}


class ComputeSite(Protocol):
    kind: str

    @property
    def rse(self) -> str: ...

    def up(self) -> None:
        """Start whatever is missing or dead (idempotent); raise with what to check on failure."""

    def down(self) -> list[str]:
        """Stop everything `up` started; return what had to be killed."""

    def healthy(self) -> bool: ...

    def status_rows(self) -> list[tuple[str, str, str, str]]:
        """(component, up|down|unhealthy, pid or '-', endpoint or role) per component."""

    def exec_prefix(self, cwd: Path) -> list[str]:
        """Prefix that runs a command on the site's access point (submit host), in `cwd`, with
        the site's client environment (batch system configuration)."""

    def env(self) -> dict[str, str]:
        """Environment a client of the site needs (e.g. SLURM_CONF, CONDOR_CONFIG)."""

    def run_area(self) -> Path:
        """A directory below which runs at this site may live (the access point sees it and
        the submitting account may write it)."""

    def prepare_run_dir(self, path: Path) -> None:
        """Make `path` (inside run_area()) usable by the site's submitting account."""


def parse_kinds(text: str) -> list[str]:
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown site kind(s) {', '.join(unknown)} (known: {', '.join(KINDS)})")
    return kinds


def compute_site(layout: Layout, kind: str) -> ComputeSite:
    if kind == "slurm":
        from .site_slurm import TestbedSlurm

        return TestbedSlurm(layout)
    if kind == "htcondor":
        from .site_htcondor import TestbedHTCondor

        return TestbedHTCondor(layout)
    raise ValueError(f"unknown site kind {kind!r} (known: {', '.join(KINDS)})")


def started_kinds(layout: Layout) -> list[str]:
    """The sites `up --sites` started and `down` has not stopped (kept in the state file)."""
    return [str(k) for k in layout.load_state().get("sites", [])]  # type: ignore[attr-defined]


def remember(layout: Layout, kinds: Sequence[str]) -> None:
    state = layout.load_state()
    state["sites"] = [k for k in KINDS if k in kinds]
    layout.save_state(state)
