"""The provider's staging path driven from Python: ProviderConfig from the same setting strings
Snakemake passes, then Resolver, Stager and Journal built as `StorageProvider.__post_init__`
builds them. One Stager per repetition, as one Snakemake process has one."""

from __future__ import annotations

import cProfile
import io
import logging
import pstats
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datalake_core.journal import Journal
from datalake_core.resolver import Resolver
from datalake_core.rucio_adapter import Did, RucioAdapter
from datalake_core.settings import ProviderConfig, default
from datalake_core.staging import Stager


class _Marks(logging.Handler):
    """When the Stager logged what: its messages mark the end of the site step."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((time.time(), record.getMessage()))

    def first(self, text: str) -> float | None:
        return next((t for t, m in self.records if text in m), None)


@dataclass
class Staging:
    """One provider instance: settings in, staged files out."""

    settings: dict[str, Any]
    journal_dir: Path
    marks: _Marks = field(default_factory=_Marks)

    def __post_init__(self) -> None:
        self.cfg = ProviderConfig.parse(self.settings)
        self.rucio = RucioAdapter.connect(self.cfg.rucio_config)
        log = logging.getLogger(f"bench.staging.{id(self)}")
        log.setLevel(logging.INFO)
        log.propagate = False
        log.addHandler(self.marks)
        self.resolver = Resolver(lambda: self.rucio, prefetch_limit=self.cfg.prefetch_limit)
        self.stager = Stager(self.cfg, self.resolver, lambda: self.rucio, log,
                             stage_ahead=None, journal=Journal("bench", self.journal_dir))

    def resolve(self, dids: list[Did]) -> None:
        """What Snakemake's DAG building has done before any input is retrieved."""
        for did in dids:
            self.resolver.register(did)
        self.resolver.get(dids[0])

    def stage(self, dids: list[Did], dest: Path) -> list[str]:
        """All inputs of one job, as `managed_retrieve` does it: queue each, then one flush
        processes them as one batch; returns how each file was made local."""
        futures = [self.stager.request(d, dest / d.scope / d.name) for d in dids]
        self.stager.flush()
        return [f.result() for f in futures]

    def site_done(self) -> float | None:
        """When the files were at the site (the Stager starts reading them right after)."""
        return self.marks.first("files local (policy")

    def profile_workers(self) -> None:
        """Profile what the Stager's worker threads do per file (cProfile only sees the
        thread it runs in: one profiler per thread, merged in `profile_top`)."""
        self._profilers: list[cProfile.Profile] = []
        local = threading.local()
        work = self.stager._materialise

        def profiled(*args: Any, **kwargs: Any) -> str:
            if not hasattr(local, "profiler"):
                local.profiler = cProfile.Profile()
                self._profilers.append(local.profiler)
            return str(local.profiler.runcall(work, *args, **kwargs))

        self.stager._materialise = profiled  # type: ignore[method-assign]

    def profile_top(self, n: int = 8) -> list[str]:
        """The functions with the most own time, summed over the worker threads."""
        if not getattr(self, "_profilers", None):
            return []
        out = io.StringIO()
        stats = pstats.Stats(self._profilers[0], stream=out)
        for profiler in self._profilers[1:]:
            stats.add(profiler)
        stats.sort_stats("tottime").print_stats(n)
        return [line.strip() for line in out.getvalue().splitlines()
                if "{" in line or ".py" in line]

    def close(self) -> None:
        self.stager.close()


def settings(rucio_config: Path, ca_bundle: Path, site_rse: str, mount: Path, policy: str,
             link_mode: str, transfers: int) -> dict[str, Any]:
    """The plugin's settings, as `--storage-datalake-<name>` would give them. `link_mode` may
    carry a site-replica check: `symlink+size` is a symlink after a size check only."""
    link_mode, _, verify = link_mode.partition("+")
    return {
        "verify_site_replicas": verify or default("verify_site_replicas"),
        "rucio_config": str(rucio_config),
        "ca_bundle": str(ca_bundle),
        "site_rse": site_rse,
        "mounts": f"{site_rse}={mount}",
        "stage_policy": policy,
        "link_mode": link_mode,
        "max_concurrent_transfers": transfers,
        "stage_timeout": 1800,
    }
