"""Which replica to read, and how: the site's own RSE first, local (mounted) paths before network
protocols, then the other RSEs.

A replica is readable as a local file when its PFN is a `file://` URL whose path exists here, or
when a mount maps its RSE (or a PFN prefix) to a local directory.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from .resolver import FileInfo
from .settings import Mount


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
        local_first: list[Source] = []
        network: list[Source] = []
        for pfn in replica.pfns:
            path = mounted_path(replica.rse, pfn, mounts, bases_of)
            if path is not None and path.is_file():
                local_first.append(Source(replica.rse, pfn, path, at_site))
            elif urlparse(pfn).scheme in ("https", "davs"):
                network.append(Source(replica.rse, pfn, None, at_site))
        # One local path per replica is enough: the other PFNs name the same bytes.
        chosen = local_first[:1] + network
        (site if at_site else remote).extend(chosen)
    remote.sort(key=lambda s: s.local is None)  # stable: keeps the RSE order otherwise
    return site + remote
