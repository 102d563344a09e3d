"""Where a run's data is: the observation sheet's subbands with their sizes and the RSEs holding
an AVAILABLE replica, read from Rucio in one bulk request per 1,000 files, and the cost of a
byte between RSEs from Rucio's distances.

Only AVAILABLE replicas count: a replica being copied or declared bad cannot be read yet.
Distances are scaled so that the nearest pair of different RSEs costs 1 per byte, the cost of a
link Rucio knows no distance for; a zero distance (one storage behind two RSEs) costs nothing.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from datalake_core.did import Did

from .model import Subband

SHEET_COLUMNS = ("observation", "role", "subband", "did")


class Catalogue(Protocol):
    """What the inventory asks Rucio (`datalake_core.rucio_adapter.RucioAdapter`)."""

    def list_replicas(self, dids: Sequence[Did]) -> list[dict[str, Any]]: ...

    def distance(self, source: str, destination: str) -> int | None: ...


@dataclass(frozen=True)
class SheetRow:
    observation: str
    role: str  # calibrator | target
    subband: str
    did: Did

    @property
    def id(self) -> str:
        return f"{self.observation}:{self.subband}"


def read_sheet(config_path: Path) -> list[SheetRow]:
    """The rows of the sheet the workflow config names (paths relative to the working
    directory, as Snakemake takes them); DIDs without a scope are in `datalake.scope`."""
    if not config_path.is_file():
        raise FileNotFoundError(f"no workflow config at {config_path} (--config)")
    config = yaml.safe_load(config_path.read_text()) or {}
    sheet = Path(str(config.get("observations") or ""))
    if not sheet.is_file():
        raise FileNotFoundError(f"{config_path}: observations: no sheet at '{sheet}'")
    scope = str((config.get("datalake") or {}).get("scope") or "")
    with sheet.open(newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        missing = [c for c in SHEET_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"observation sheet {sheet}: no column {', '.join(missing)}")
        return [_row(r, scope, sheet, line) for line, r in enumerate(reader, start=2)]


def _row(row: dict[str, str], scope: str, sheet: Path, line: int) -> SheetRow:
    did_scope, sep, name = row["did"].partition(":")
    if not sep:
        did_scope, name = scope, row["did"]
    if not did_scope or not name:
        raise ValueError(f"observation sheet {sheet} row {line}: did {row['did']!r} has no "
                         "scope and the config sets no datalake.scope")
    return SheetRow(row["observation"], row["role"], row["subband"], Did(did_scope, name))


def subbands(catalogue: Catalogue, rows: Sequence[SheetRow],
             preprocessed_fraction: float) -> tuple[Subband, ...]:
    """Each row's subband; one without AVAILABLE replica (or unknown to Rucio) has none, for
    the planner to name."""
    found = {(r["scope"], r["name"]): r for r in catalogue.list_replicas([r.did for r in rows])}
    out = []
    for row in rows:
        replica = found.get((row.did.scope, row.did.name), {})
        size = int(replica.get("bytes") or 0)
        available = tuple(sorted(rse for rse, state in (replica.get("states") or {}).items()
                                 if str(state) == "AVAILABLE"))
        out.append(Subband(row.id, size, int(size * preprocessed_fraction), available,
                           str(row.did)))
    return tuple(out)


def link_costs(catalogue: Catalogue, sources: Iterable[str], destinations: Iterable[str],
               ) -> dict[tuple[str, str], float]:
    """(source, destination) -> cost per byte, for the pairs Rucio has a distance for."""
    pairs = {(s, d) for s in sources for d in destinations if s != d}
    distances = {pair: catalogue.distance(*pair) for pair in sorted(pairs)}
    known = {pair: d for pair, d in distances.items() if d is not None}
    nearest = min((d for d in known.values() if d > 0), default=1)
    return {pair: d / nearest for pair, d in known.items()}


def targets(rows: Iterable[SheetRow]) -> int:
    """Observation chains to image: the targets (or, in a sheet without, each observation)."""
    rows = list(rows)
    found = {r.observation for r in rows if r.role == "target"}
    return len(found or {r.observation for r in rows})
