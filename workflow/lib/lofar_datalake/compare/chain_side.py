"""The DataLake side of a comparison as a chain that `lofar-datalake run --plan` ran across
sites, read from the record it wrote (`<dir>/chain.json`), and the one run that stands against
it on the local side.

The chain's products are its assembled tree (`<dir>/results`); its wall time is its makespan
(the preprocess runs at once, then the process run; summed over the invocations of a resumed
chain); its staging and per-rule times are those of all its runs, from their journals and job
records; its bytes moved are the chain's own count, which alone knows that a preprocessed
subband made at another site's RSE came to the processing site (the output rules of the site
that made it may have copied it there before the process run asked, which that run's journal
sees as a replica already at the site).

The local side is one run of the whole chain (`placement.stage: all`) on a local copy of the
chain's raw inputs: the process run's config, every subband, the products kept in the local
copy (the storage plugin's `--storage-datalake-local-copy`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from datalake_core.rucio_adapter import RucioAdapter

from . import runs
from .runs import Run
from .verdict import Json, RunSummary

RECORD = "chain.json"
FORMAT = "lofar-datalake-chain/1"  # as `lofar-datalake run --plan` writes it
PROCESS = "process"
LABEL = "DataLake chain"


@dataclass(frozen=True)
class ChainRun:
    """One Snakemake run of the chain: a stage at one site, as the record lists it."""

    site: str
    stage: str
    rse: str
    profile: str
    subbands: tuple[str, ...]
    directory: Path
    config: Path
    log: Path
    wall_s: float
    exit_code: int | None

    @classmethod
    def from_json(cls, data: Json) -> ChainRun:
        directory = Path(data["directory"])
        return cls(str(data["site"]), str(data["stage"]), str(data.get("rse") or ""),
                   str(data["profile"]), tuple(data.get("subbands") or ()), directory,
                   Path(data.get("config") or directory / "config.yaml"),
                   Path(data.get("log") or directory / "snakemake.log"),
                   float(data.get("wall_s") or 0.0), data.get("exit_code"))

    def to_json(self) -> Json:
        return {"site": self.site, "stage": self.stage, "rse": self.rse,
                "profile": self.profile, "subbands": list(self.subbands),
                "directory": str(self.directory), "wall_s": self.wall_s,
                "exit_code": self.exit_code}

    def __str__(self) -> str:
        n = len(self.subbands)
        count = f" ({n} subband{'s' * (n != 1)})" if n else ""
        return f"{self.stage} at {self.site}{count}"


@dataclass(frozen=True)
class Chain:
    """A chain's record: its runs in the order they ran, its raw inputs, its makespan."""

    directory: Path
    name: str
    complete: bool
    runs: tuple[ChainRun, ...]
    inputs: tuple[str, ...]  # raw DIDs, scope:name
    makespan_s: float | None
    bytes_moved: int | None  # as the chain counted them, from its runs' journals
    bytes_source: str | None

    @classmethod
    def read(cls, directory: Path) -> Chain:
        path = directory / RECORD
        if not path.is_file():
            raise ValueError(f"{directory}: no {RECORD}; --chain names the --out directory of "
                             "`lofar-datalake run --plan`, which writes it there")
        record = json.loads(path.read_text())
        if record.get("format") != FORMAT:
            raise ValueError(f"{path}: format {record.get('format')!r}, not {FORMAT!r}")
        try:
            chain_runs = tuple(ChainRun.from_json(r) for r in record["runs"])
            actual = record.get("actual") or {}
            return cls(directory, str(record["chain"]), bool(record.get("complete")),
                       chain_runs, tuple(record["inputs"]), actual.get("makespan_s"),
                       actual.get("bytes_moved"), actual.get("bytes_source"))
        except KeyError as exc:
            raise ValueError(f"{path}: no {exc.args[0]!r} (in the chain or one of its runs)"
                             ) from None

    @property
    def process(self) -> ChainRun | None:
        return next((r for r in self.runs if r.stage == PROCESS), None)

    @property
    def exit_code(self) -> int:
        """0 when every run succeeded and the process run ran; else the first failure's."""
        failed = [r.exit_code for r in self.runs if r.exit_code != 0]
        if failed:
            return failed[0] if isinstance(failed[0], int) else 1
        return 0 if self.complete and self.process else 1

    @property
    def runs_wall_s(self) -> float:
        return round(sum(r.wall_s for r in self.runs), 2)

    @property
    def wall_s(self) -> float:
        """The makespan; the runs' summed wall time when the chain has none (not complete)."""
        return self.makespan_s if self.makespan_s is not None else self.runs_wall_s

    def profile(self, cwd: Path) -> Path:
        """The processing site's profile, named relative to where the chain was run."""
        process = self.process
        if process is None:
            raise ValueError(f"{self.directory / RECORD}: no process run; its results cannot "
                             "be compared")
        path = Path(process.profile)
        return path if path.is_absolute() else cwd / path

    def describe(self) -> Json:
        """The chain as the verdict records it."""
        return {"name": self.name, "record": str(self.directory / RECORD),
                "complete": self.complete, "makespan_s": self.makespan_s,
                "runs_wall_s": self.runs_wall_s, "bytes_moved": self.bytes_moved,
                "inputs": len(self.inputs), "runs": [r.to_json() for r in self.runs]}

    def note(self) -> str:
        sites = dict.fromkeys(r.site for r in self.runs)
        return (f"the DataLake side is the chain {self.name} across {len(sites)} sites: "
                + ", ".join(map(str, self.runs)))

    def failures(self) -> list[str]:
        return [f"{r.stage} at {r.site} failed (exit {r.exit_code}); see {r.log}"
                for r in self.runs if r.exit_code != 0]


@dataclass(frozen=True)
class ChainSide:
    """What a comparison needs of the chain: the DataLake side as one run and its record, the
    inputs of the local copy and the Snakemake arguments of the local run."""

    run: Run
    summary: RunSummary
    description: Json
    inputs: list[str]
    local_args: list[str]
    notes: list[str]


def datalake_side(chain: Chain, local_workdir: Path, snakemake_args: Sequence[str],
                  rucio: Callable[[], RucioAdapter] | None, cwd: Path) -> ChainSide:
    """The chain as the DataLake side; the local run's config written in `local_workdir`."""
    run = Run(LABEL, chain.directory, exit_code=chain.exit_code, wall_s=chain.wall_s,
              log=chain.directory / RECORD)
    directories = [r.directory for r in chain.runs]
    counted = [d for d in directories if Run(LABEL, d).requests_file.is_file()]
    requests = sum(runs.rucio_requests(Run(LABEL, d)) for d in counted) if counted else None
    summary = runs.summarise(run, directories, 0.0, rucio, requests)
    if chain.bytes_moved is not None:
        source = f"{chain.directory / RECORD}: {chain.bytes_source or 'the chain'}"
        summary = replace(summary, staging=replace(
            summary.staging, bytes=chain.bytes_moved, bytes_source=source))
    notes = [chain.note(), *chain.failures()]
    if chain.exit_code != 0:
        return ChainSide(run, summary, chain.describe(), [], [], notes)
    config = write_local_config(chain, local_workdir / "config.yaml",
                                f"{chain.name}/local-copy-run")
    return ChainSide(run, summary, chain.describe(), list(chain.inputs),
                     local_args(snakemake_args, config, cwd), notes)


def local_config(base: Json, products: str) -> Json:
    """The whole chain in one run: the process run's config (paths already absolute) with
    every subband through every stage, its products stored under `products`."""
    config = copy.deepcopy(base)
    config["placement"] = {**(config.get("placement") or {}), "stage": "all", "subbands": [],
                           "preprocessed": ""}
    config["datalake"] = {**(config.get("datalake") or {}), "products": products}
    return config


def write_local_config(chain: Chain, path: Path, products: str) -> Path:
    process = chain.process
    assert process is not None  # a chain with no process run is refused before
    base = yaml.safe_load(process.config.read_text()) or {}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(local_config(base, products), sort_keys=False))
    return path


def local_args(snakemake_args: Sequence[str], config: Path, cwd: Path) -> list[str]:
    """The local run's own arguments, after the user's: its config, and the Snakefile the
    chain's runs found where they were started (the local run starts in its own directory)."""
    found = None if runs.names_snakefile(snakemake_args) else runs.snakefile_in(cwd)
    snakefile = ["-s", str(found)] if found is not None else []
    return [*snakefile, "--configfile", str(config)]
