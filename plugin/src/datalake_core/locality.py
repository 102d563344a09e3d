"""Which replica to read, and how: the site's own RSE first, local (mounted) paths before network
protocols (https, root), then the other RSEs.

A replica is readable as a local file when its PFN is a `file://` URL whose path exists here, or
when a mount maps its RSE (or a PFN prefix) to a local directory.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from .resolver import FileInfo
from .settings import Mount

# What staging reads over the network: WebDAV (transfer_http) and, where the XRootD client is
# installed, XRootD (transfer_xrootd).
WEB_SCHEMES = ("https", "davs")
XROOTD_SCHEME = "root"


@dataclass(frozen=True)
class Source:
    rse: str
    pfn: str
    local: Path | None  # the replica as a file on this machine, if it is one
    at_site: bool

    @property
    def scheme(self) -> str:
        return urlparse(self.pfn).scheme

    def describe(self) -> str:
        return f"{self.rse} ({self.local if self.local else self.scheme})"


def protocol_bases(rse_info: dict[str, Any]) -> list[str]:
    """The URL each protocol of an RSE puts before a file's path, e.g. `https://host:443/dav/`."""
    bases = []
    for proto in rse_info.get("protocols", []):
        host = proto.get("hostname") or ""
        port = int(proto.get("port") or 0)
        netloc = f"{host}:{port}" if host and port else host
        bases.append(f"{proto['scheme']}://{netloc}{proto.get('prefix') or '/'}")
    return bases


def mounted_path(rse: str, pfn: str, mounts: Sequence[Mount],
                 bases_of: Callable[[str], list[str]]) -> Path | None:
    """Where the replica at `pfn` is on this machine, or None."""
    for mount in mounts:
        if mount.is_prefix:
            if pfn.startswith(mount.key):
                return mount.local / unquote(pfn[len(mount.key):]).lstrip("/")
        elif mount.key == rse:
            for base in bases_of(rse):
                if pfn.startswith(base):
                    return mount.local / unquote(pfn[len(base):]).lstrip("/")
    parsed = urlparse(pfn)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    return None


def sources(info: FileInfo, site_rses: Sequence[str], mounts: Sequence[Mount],
            bases_of: Callable[[str], list[str]]) -> list[Source]:
    """Readable copies of the file, best first; a local path is only offered if it exists."""
    site: list[Source] = []
    remote: list[Source] = []
    for replica in info.available_replicas():
        at_site = replica.rse in site_rses
        # One source per replica (its PFNs name the same bytes): the RSE's preferred protocol
        # if it is usable here, else the same path through another of its protocols, e.g.
        # https on a worker that does not see the RSE's file system.
        candidates = _candidates(replica.rse, replica.pfns, bases_of)
        chosen = next(filter(None, (_usable(replica.rse, pfn, at_site, mounts, bases_of)
                                    for pfn in candidates)), None)
        if chosen is not None:
            (site if at_site else remote).append(chosen)
    remote.sort(key=lambda s: s.local is None)  # stable: keeps the RSE order otherwise
    return site + remote


def _usable(rse: str, pfn: str, at_site: bool, mounts: Sequence[Mount],
            bases_of: Callable[[str], list[str]]) -> Source | None:
    path = mounted_path(rse, pfn, mounts, bases_of)
    if path is not None and path.is_file():
        return Source(rse, pfn, path, at_site)
    if urlparse(pfn).scheme in network_schemes():
        return Source(rse, pfn, None, at_site)
    return None


@lru_cache(maxsize=1)
def network_schemes() -> tuple[str, ...]:
    """https always; `root` only with `xrdcp` on PATH, else such a replica is read through
    another of its RSE's protocols (a worker without the XRootD client)."""
    return (*WEB_SCHEMES, XROOTD_SCHEME) if shutil.which("xrdcp") else WEB_SCHEMES


def _candidates(rse: str, pfns: Sequence[str], bases_of: Callable[[str], list[str]]
                ) -> Iterator[str]:
    yield from pfns
    # A posix replica whose file system is not mounted here (a grid worker), or an XRootD one
    # (maybe no client here): the same path through the RSE's other protocols. Only now,
    # lazily: it may ask Rucio for them.
    if pfns and urlparse(pfns[0]).scheme not in WEB_SCHEMES:
        yield from _same_path_elsewhere(rse, pfns[0], bases_of)


def _same_path_elsewhere(rse: str, pfn: str, bases_of: Callable[[str], list[str]]
                         ) -> list[str]:
    """The replica's URL under the RSE's other protocols (a deterministic RSE keeps one path
    below each protocol's prefix). Asked only when the preferred PFN is not usable here."""
    bases = bases_of(rse)
    for base in bases:
        if pfn.startswith(base):
            return [other + pfn[len(base):] for other in bases if other != base]
    return []
