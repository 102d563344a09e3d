"""What every testbed compute site shares: the kinds, their RSEs, the surface each site module
implements (`ComputeSite`) and the hand-over of client credentials to a site's account.

The site modules (`site_slurm`, `site_htcondor`) import this; `sites` picks one by kind.
"""

from __future__ import annotations

import os
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
        """Stop everything `up` started; return what it ended (the Slurm site names what it
        stopped, the pool only what it had to kill)."""

    def healthy(self) -> bool: ...

    def status_rows(self) -> list[tuple[str, str, str, str]]:
        """(component, up|down|unhealthy, pid or '-', endpoint or role) per component."""

    def exec_prefix(self, cwd: Path, extra_env: dict[str, str] | None = None) -> list[str]:
        """Prefix that runs a command on the site's access point (submit host), in `cwd`, with
        the site's client environment (batch system configuration) and `extra_env` (values
        that may be seen in process lists: paths, never secrets)."""

    def env(self) -> dict[str, str]:
        """Environment a client of the site needs (e.g. SLURM_CONF, CONDOR_CONFIG)."""

    def client_env(self) -> dict[str, str]:
        """env() plus what a DataLake user has on the access point: RUCIO_CONFIG,
        X509_USER_PROXY, LOFAR_DATALAKE_CA_BUNDLE, and the LOFAR_DATALAKE_* paths
        the site's profile names (values are paths, never secrets)."""

    def shared_area(self) -> Path:
        """A directory the site's jobs can read (site storage), e.g. for a comparison's
        local copy."""

    def hand_to_jobs(self, path: Path) -> None:
        """Let the site's jobs write below `path` (site storage, e.g. a local copy)."""

    def job_placements(self, workdir: Path) -> list[dict[str, str]]:
        """Where each job of the run in `workdir` ran (batch job id, host, ...)."""

    def run_area(self) -> Path:
        """A directory below which runs at this site may live (the access point sees it and
        the submitting account may write it)."""

    def prepare_run_dir(self, path: Path) -> None:
        """Make `path` (inside run_area()) usable by the site's submitting account."""


def hand_credentials(layout: Layout, directory: Path, uid: int | None = None,
                     ca_cert: Path | None = None) -> dict[str, str]:
    """Copies of the pipeline account's Rucio client configuration and proxy in `directory`
    (0600, owned by `uid`), for a site account that cannot read the testbed's own; the token
    cache moves there too, and the CA the Rucio server is checked against to `ca_cert` (a copy
    that account and its jobs can read). Returns RUCIO_CONFIG and X509_USER_PROXY for it."""
    import configparser

    from .pki import ensure_pki
    from .rucio_config import write_private_ini

    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(layout.client_config)
    parser["client"]["auth_token_file_path"] = str(directory / "token")
    if ca_cert is not None:
        parser["client"]["ca_cert"] = str(ca_cert)
    config, proxy = directory / "rucio.cfg", directory / "x509-proxy.pem"
    write_private_ini(config, parser)
    proxy_pem = ensure_pki(layout.pki_dir).proxy.read_bytes()
    if not proxy.is_file() or proxy.read_bytes() != proxy_pem:
        fd = os.open(proxy, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(proxy_pem)
    if uid is not None:
        for path in (directory, config, proxy):
            os.chown(path, uid, uid)
        token = directory / "token"
        if token.exists():
            os.chown(token, uid, uid)
    return {"RUCIO_CONFIG": str(config), "X509_USER_PROXY": str(proxy)}
