"""Comparisons at a testbed compute site: both runs go through the site's access point.

A profile made for one of the testbed's sites carries a `testbed-site` file naming the kind
(`slurm`, `htcondor`). `compare --profile profiles/testbed-<kind>` then runs Snakemake the way
a user of that site would: on its access point (for the HTCondor pool, as the pool's submitting
account inside the pool's root, in a run directory that account owns), with the site's client
environment (batch system configuration, Rucio client configuration, CA bundle, the paths the
profile names). The report then says which site and executor ran the jobs, with which images
and where each job ran.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from .. import extensions

MARKER = "testbed-site"


class SiteAccess(Protocol):
    """What a comparison needs of a compute site (the testbed's sites provide it)."""

    kind: str

    @property
    def rse(self) -> str: ...

    def exec_prefix(self, cwd: Path, extra_env: dict[str, str] | None = None) -> list[str]:
        """Prefix that runs a command on the site's access point, in `cwd`, with the site's
        client environment and `extra_env` (paths, never secrets)."""

    def client_env(self) -> dict[str, str]:
        """What a DataLake user has on the access point (RUCIO_CONFIG, CA bundle, paths)."""

    def shared_area(self) -> Path:
        """A directory the site's jobs can read (site storage)."""

    def hand_to_jobs(self, path: Path) -> None:
        """Let the site's jobs write below `path` (site storage, e.g. a local copy)."""

    def run_area(self) -> Path:
        """Where runs at the site live by default."""

    def prepare_run_dir(self, directory: Path) -> None:
        """Hand a run directory to the site's submitting account."""

    def job_placements(self, workdir: Path) -> list[dict[str, str]]:
        """Where each job of the run in `workdir` ran."""


@dataclass
class SiteRuns:
    """How the runs of one comparison reach a testbed site."""

    kind: str
    site: SiteAccess
    profile: Path

    def _profile_config(self) -> dict[str, Any]:
        return dict(yaml.safe_load((self.profile / "config.yaml").read_text()) or {})

    @property
    def executor(self) -> str:
        return str(self._profile_config().get("executor", "local"))

    def default_out(self, command: str = "compare") -> Path:
        return self.site.run_area() / f"{command}-{dt.datetime.now():%Y%m%dT%H%M%S}"

    def check_out(self, out: Path) -> None:
        area = self.site.run_area().resolve()
        if self.kind == "htcondor" and area not in out.resolve().parents:
            raise ValueError(
                f"runs at the HTCondor pool live below {area} (the access point's file system, "
                f"where the submitting account may write); got --out {out}: leave --out out, "
                "or name a directory below it")

    def prepare(self, directory: Path) -> None:
        """A run directory the site's submitting account owns (after anything written as
        root, e.g. the comparison's config)."""
        directory.mkdir(parents=True, exist_ok=True)
        self.site.prepare_run_dir(directory)

    def command(self, workdir: Path, args: list[str], extra_env: dict[str, str]) -> list[str]:
        """Snakemake on the access point, in `workdir` (not `--directory`: executors hand that
        path to every job, and a grid job must stay in its sandbox)."""
        from .runs import SNAKEMAKE

        return [*self.site.exec_prefix(workdir, extra_env), SNAKEMAKE,
                *self._configs_inside(workdir, args)]

    def _configs_inside(self, workdir: Path, args: list[str]) -> list[str]:
        """Config files copied into the run directory and named relative to it: a pool
        transfers them to every job, and only from below the submit directory."""
        out = list(args)
        for i, arg in enumerate(out[:-1]):
            if arg in ("--configfile", "--configfiles"):
                source = Path(out[i + 1])
                if workdir.resolve() not in source.resolve().parents:
                    target = workdir / source.name
                    target.write_bytes(source.read_bytes())
                    self.site.prepare_run_dir(workdir)
                    out[i + 1] = source.name
        return out

    def env(self) -> dict[str, str]:
        return self.site.client_env()

    def plugin_settings(self) -> dict[str, Any]:
        """What the site's environment gives the plugin (its Rucio configuration, CA bundle),
        for the work `compare` does itself (the local copy)."""
        env = self.env()
        found: dict[str, Any] = {}
        if env.get("RUCIO_CONFIG"):
            found["rucio_config"] = env["RUCIO_CONFIG"]
        if env.get("LOFAR_DATALAKE_CA_BUNDLE"):
            found["ca_bundle"] = env["LOFAR_DATALAKE_CA_BUNDLE"]
        return found

    def readable_dir(self, out: Path, name: str) -> Path:
        """A directory the site's jobs can read, for files of the run at `out` (a run's
        inputs restored from a manifest, say)."""
        return self.site.shared_area() / f"{out.name}-{name}"

    def bind_env(self, directories: list[Path]) -> dict[str, str]:
        """APPTAINER_BIND with these directories (read-only) after the site's own binds."""
        own = self.env().get("APPTAINER_BIND", "")
        extra = [f"{d}:{d}:ro" for d in dict.fromkeys(directories)]
        return {"APPTAINER_BIND": ",".join(filter(None, [own, *extra]))}

    def local_copy_dir(self, out: Path) -> Path:
        """Where the local copy lives: storage the site's workers can read (on a pool without
        a shared file system, the site's shared storage area, as a site's own disk is)."""
        return self.readable_dir(out, "local-copy")

    def uses_containers(self) -> bool:
        return self._profile_config().get("software-deployment-method") == "apptainer"

    def describe(self, workdir: Path, config: Path | None) -> dict[str, Any]:
        from ..containers import list_images

        containers = self.uses_containers()
        images = []
        if containers and config is not None and config.is_file():
            images = [{"family": i.family, "reference": i.reference, "digest": i.digest}
                      for i in list_images(config)]
        return {
            "site": self.kind,
            "rse": self.site.rse,
            "executor": self.executor,
            "profile": str(self.profile),
            "images": images,
            "containers": containers,
            "jobs": self.site.job_placements(workdir),
        }


def site_of(profile: Path | None) -> SiteRuns | None:
    """The testbed site a profile is made for, checked to be up; None for other profiles."""
    if profile is None or not (profile / MARKER).is_file():
        return None
    kind = (profile / MARKER).read_text().strip()
    open_site = extensions.load(extensions.SITES, "testbed", f"{profile} (a testbed site)")
    return SiteRuns(kind, open_site(kind, profile), profile.resolve())


def config_of(args: list[str]) -> Path | None:
    """The `--configfile` among Snakemake arguments (the last one), if any."""
    found = None
    for i, arg in enumerate(args[:-1]):
        if arg in ("--configfile", "--configfiles"):
            found = Path(args[i + 1])
    return found


def make_readable(tree: Path) -> None:
    """Site storage that the site's jobs, running as their own account, can read."""
    for root, dirs, files in os.walk(tree):
        os.chmod(root, 0o755)  # noqa: S103
        for name in files:
            os.chmod(Path(root) / name, 0o644)
        for name in dirs:
            os.chmod(Path(root) / name, 0o755)  # noqa: S103
