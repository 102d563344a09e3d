"""The testbed's volunteered compute sites: a one-node Slurm cluster and a personal HTCondor
pool, started next to the local DataLake with `lofar-datalake testbed up --sites slurm,htcondor`.

Each kind is one module (`site_slurm`, `site_htcondor`) with the same small surface, so the
orchestrator, `testbed status|down|exec` and `compare --profile` treat them alike. Each site
has its own RSE (`layout.SITES`) and a ready profile (`profiles/testbed-<kind>`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .layout import Layout
from .site_base import KINDS, ComputeSite


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


def open_site(kind: str, profile: Path | None = None) -> ComputeSite:
    """The site a profile's `testbed-site` marker names, checked to be up (the
    `lofar_datalake.sites` entry point: how `compare` and `reproduce` reach a testbed site)."""
    from .layout import default_dir

    layout = Layout(default_dir())
    if kind not in started_kinds(layout):
        where = f"{profile} runs at" if profile else "runs at"
        raise RuntimeError(
            f"{where} the testbed's {kind} site, which is not up: "
            f"lofar-datalake testbed up --sites {kind}")
    return compute_site(layout, kind)


def started_kinds(layout: Layout) -> list[str]:
    """The sites `up --sites` started and `down` has not stopped (kept in the state file)."""
    return [str(k) for k in layout.load_state().get("sites", [])]  # type: ignore[attr-defined]


def remember(layout: Layout, kinds: Sequence[str]) -> None:
    state = layout.load_state()
    state["sites"] = [k for k in KINDS if k in kinds]
    layout.save_state(state)
