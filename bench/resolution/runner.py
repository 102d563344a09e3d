"""Timed `snakemake -n` runs of the bench workflow, one per provider variant, with every Rucio
HTTP request counted (the project's `request_counter`, in both venvs)."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from datalake_core import request_counter
from datalake_core.request_counter import ENV_VAR, read_counts

HERE = Path(__file__).resolve().parent
SNAKEFILE = HERE / "workflow" / "Snakefile"
COUNTING_SITE = HERE / "counting"


@dataclass(frozen=True)
class Variant:
    name: str
    venv: Path
    source: str  # datalake | rucio | local: what the bench Snakefile reads the inputs through
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)

    def command(self, workdir: Path, config: list[str], profile_to: Path | None) -> list[str]:
        snakemake = str(self.venv / "bin" / "snakemake")
        head = (
            [str(self.venv / "bin" / "python"), "-m", "cProfile", "-o", str(profile_to), snakemake]
            if profile_to
            else [snakemake]
        )
        return [
            *head,
            "-n",
            "-q",
            "rules",
            "-s",
            str(SNAKEFILE),
            "-d",
            str(workdir),
            "--cores",
            "1",
            *self.args,
            "--config",
            f"source={self.source}",
            *config,
        ]


@dataclass(frozen=True)
class Run:
    seconds: float  # wall time
    cpu_seconds: float  # user + system time of Snakemake: the client side, without waiting
    requests: list[str]  # `METHOD /path`, in order

    @property
    def auth(self) -> int:
        return sum(1 for r in self.requests if " /auth" in r)

    @property
    def other(self) -> int:
        return len(self.requests) - self.auth


def variants(
    project_venv: Path,
    rucio_venv: Path | None,
    rucio_config: Path,
) -> list[Variant]:
    """The providers, each with the local-files run in the same venv as its baseline (the two
    venvs load different plugins, so Snakemake starts up at different speeds)."""
    out = [
        Variant(
            "datalake",
            project_venv,
            "datalake",
            ("--storage-datalake-rucio-config", str(rucio_config)),
        ),
        Variant("local", project_venv, "local"),
    ]
    if rucio_venv is not None:
        # Without this project installed there, its request counter is loaded by file path.
        env = {
            "PYTHONPATH": str(COUNTING_SITE),
            "BENCH_REQUEST_COUNTER_MODULE": str(request_counter.__file__),
        }
        out += [
            # Without no-path-rewriting the plugin encodes `/` in names and finds no file.
            Variant("rucio", rucio_venv, "rucio", ("--storage-rucio-no-path-rewriting",), env),
            Variant("local-rucio-venv", rucio_venv, "local", (), env),
        ]
    return out


def without_slurm_probe(tmpdir: Path) -> str:
    """A PATH entry whose `scontrol` fails at once. The slurm executor plugin (in the project's
    venv) runs `scontrol show config` when Snakemake starts; with an unreachable controller that
    waits ~9 s before each run, the same with and without the DataLake, so only adds noise."""
    shim = tmpdir / "no-slurm-probe"
    shim.mkdir(exist_ok=True)
    scontrol = shim / "scontrol"
    scontrol.write_text("#!/bin/sh\nexit 1\n")
    scontrol.chmod(0o755)
    return str(shim)


def dry_run(
    variant: Variant,
    workdir: Path,
    config: list[str],
    count: int,
    base_env: dict[str, str],
    profile_to: Path | None = None,
) -> Run:
    workdir.mkdir(parents=True)
    counts = workdir.with_name(workdir.name + ".requests")
    env = {**base_env, **variant.env, ENV_VAR: str(counts)}
    log = workdir.with_name(workdir.name + ".log")
    with log.open("w+") as out:
        started = time.monotonic()
        proc = subprocess.Popen(
            variant.command(workdir, config, profile_to), env=env, stdout=out, stderr=out
        )
        # wait4: this run's CPU time (getrusage(RUSAGE_CHILDREN) would sum all runs so far).
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    output = log.read_text()
    if proc.returncode != 0 or not re.search(rf"\bcheck\s+{count}\b", output):
        raise SystemExit(
            f"{variant.name}: snakemake -n failed or did not plan {count} jobs:\n{output[-3000:]}"
        )
    return Run(seconds, usage.ru_utime + usage.ru_stime, read_counts(counts))


def endpoints(requests: list[str], scope: str) -> dict[str, int]:
    """Requests per endpoint, names folded: `GET /dids/lofar/<name>` -> `GET /dids/{scope}/…`."""
    keys = []
    for line in requests:
        method, _, path = line.partition(" ")
        parts = path.split("/")
        if scope in parts:
            parts = [*parts[: parts.index(scope)], "{scope}", "…"]
        keys.append(f"{method} {'/'.join(parts)}")
    return dict(Counter(keys).most_common())


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """The caller's environment without Python/venv settings that would leak between venvs."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", ENV_VAR)
    }
    return {**env, **extra}
