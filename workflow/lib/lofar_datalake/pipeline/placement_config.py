"""The config's `placement` section: which part of an observation's chain one Snakemake run does,
so that the chain can be split across sites.

- `all`: the whole chain (the default, and what a config without the section gets).
- `preprocess`: fetch, flag, average (and the per-subband flag QA) of some subbands; each
  averaged Measurement Set is packed (`pack.pack_ms`) and stored in the DataLake as
  `<scope>:<preprocessed>/<obs>_SB<sb>.MS.tar`.
- `process`: calibration, imaging, source finding and the other QA, reading every subband of
  the sheet from those files instead of preprocessing it.

The schema checks each key; `problems` checks what the schema cannot see: the keys against each
other, the input mode and the observation sheet.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

ALL, PREPROCESS, PROCESS = "all", "preprocess", "process"

# A subband as the workflow's wildcards name it: (observation, subband), e.g. ("L700000", "000").
Subband = tuple[str, str]


@dataclass(frozen=True)
class Placement:
    stage: str = ALL
    subbands: tuple[Subband, ...] = ()
    preprocessed: str = ""

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Placement:
        section = config.get("placement") or {}
        return cls(
            stage=section.get("stage", ALL),
            subbands=tuple(parse_subband(s) for s in section.get("subbands") or ()),
            preprocessed=section.get("preprocessed", ""),
        )

    def selected(self, sheet: Iterable[Subband]) -> list[Subband]:
        """The subbands this run fetches, flags and averages, in sheet order: none in a process
        run, the listed ones in a preprocess run that lists any, else all of the sheet."""
        if self.stage == PROCESS:
            return []
        chosen = set(self.subbands)
        return [s for s in sheet if not chosen or s in chosen]

    def archive_name(self, obs: str, sb: str) -> str:
        """The DID name (without scope) of a preprocessed subband."""
        return f"{self.preprocessed}/{obs}_SB{sb}.MS.tar"


def parse_subband(text: str) -> Subband:
    """`L700000:000` -> ("L700000", "000"); the schema has checked the form."""
    obs, _, sb = text.partition(":")
    return obs, sb


def problems(placement: Placement, input_mode: str, sheet: Iterable[Subband],
             sheet_path: str) -> list[str]:
    """What is wrong with `placement` given the rest of the config, one line each."""
    found = []
    split = placement.stage in (PREPROCESS, PROCESS)
    if split and input_mode != "datalake":
        found.append(f"placement.stage {placement.stage!r} needs input_mode 'datalake' (the "
                     f"preprocessed subbands travel as DataLake files); it is {input_mode!r}")
    if split and not placement.preprocessed:
        found.append(f"placement.stage {placement.stage!r} needs placement.preprocessed, the "
                     "DataLake name prefix shared by the preprocess and process runs of a chain "
                     "(e.g. products/plan-1/preprocessed)")
    if placement.subbands and placement.stage != PREPROCESS:
        found.append(f"placement.subbands is for a preprocess run; a run with stage "
                     f"{placement.stage!r} takes every subband of the sheet (leave it empty)")
    known = set(sheet)
    unknown = [f"{obs}:{sb}" for obs, sb in placement.subbands if (obs, sb) not in known]
    if unknown:
        found.append(f"placement.subbands names subbands that are not in {sheet_path}: "
                     f"{', '.join(unknown)}")
    return found
