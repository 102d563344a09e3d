"""Bulk resolution of DIDs: replicas, size, checksums and creation time, cached per run.

Snakemake asks about storage files one at a time, mostly while it builds the DAG depth-first, so
at the moment of the first question only one concrete file of a rule may be known. Two things make
the answers come from a few bulk requests anyway:

- every DID is registered when its storage object is created, and the first question resolves
  all registered, not yet resolved DIDs together;
- every query *template* (`datalake://lofar/obs/{sb}.MS`, created when the Snakefile is read) is
  registered too; the first question about a DID matching a template lists the template's
  matches with one `list_dids` call, and those join the same bulk pass.

A pass is one `list_replicas` and one `get_metadata_bulk` request per 1,000 DIDs.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .query import SCHEME, has_wildcards, to_query
from .rucio_adapter import DataLakeError, Did, RucioAdapter
from .settings import default

# Seconds a "not there" answer is trusted: long enough for one DAG build to ask about every
# file once per pass, short enough that a file stored by a remote job is seen at once.
MISSING_TTL = 2.0

log = logging.getLogger(__name__)

_WILDCARD_RE = re.compile(r"\{\s*([.\w]+)\s*(?:,\s*((?:[^{}]+|\{\d+(?:,\d+)?\})*))?\s*\}")


@dataclass(frozen=True)
class Replica:
    rse: str
    state: str  # AVAILABLE | UNAVAILABLE | COPYING | BEING_DELETED | BAD | TEMPORARY_UNAVAILABLE
    pfns: tuple[str, ...]  # by the RSE's protocol priority, best first
    rse_type: str = "DISK"  # TAPE: nearline, read only once recalled (tape_recall)

    @property
    def available(self) -> bool:
        return self.state == "AVAILABLE"


@dataclass(frozen=True)
class FileInfo:
    did: Did
    bytes: int
    adler32: str | None
    md5: str | None
    created_at: float  # POSIX seconds; Rucio files are immutable, so this is their mtime
    replicas: tuple[Replica, ...]
    did_type: str = "FILE"

    def available_replicas(self) -> list[Replica]:
        return [r for r in self.replicas if r.available]

    @property
    def exists(self) -> bool:
        return self.did_type == "FILE" and bool(self.available_replicas())


@dataclass
class Template:
    """A query with wildcards, as Rucio name pattern plus a regex for its concrete names."""

    scope: str
    glob: str
    regex: re.Pattern[str]
    listed: bool = False

    @classmethod
    def from_query(cls, query: str) -> Template | None:
        rest = query[len(SCHEME):]
        scope, _, name = rest.partition("/")
        if has_wildcards(scope) or not name:
            return None
        glob, pattern, pos = [], [], 0
        for match in _WILDCARD_RE.finditer(name):
            literal = name[pos:match.start()]
            glob.append(literal + "*")
            pattern.append(re.escape(literal) + f"(?:{match.group(2) or '.+'})")
            pos = match.end()
        glob.append(name[pos:])
        pattern.append(re.escape(name[pos:]))
        return cls(scope, re.sub(r"\*+", "*", "".join(glob)), re.compile("".join(pattern)))

    def matches(self, did: Did) -> bool:
        return did.scope == self.scope and self.regex.fullmatch(did.name) is not None


@dataclass
class Resolver:
    rucio_factory: Callable[[], RucioAdapter]  # called on first use: start-up stays offline
    prefetch_limit: int = default("prefetch_limit")
    _rucio: RucioAdapter | None = None
    _known: dict[Did, FileInfo | None] = field(default_factory=dict)
    _pending: dict[Did, None] = field(default_factory=dict)  # insertion-ordered set
    _templates: dict[tuple[str, str], Template] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    # When each "no such file" answer was given: it is asked again once it is older than
    # MISSING_TTL, since a job elsewhere (a grid worker) may have stored the file meanwhile.
    _missing_at: dict[Did, float] = field(default_factory=dict)
    passes: int = 0

    @property
    def rucio(self) -> RucioAdapter:
        if self._rucio is None:
            self._rucio = self.rucio_factory()
        return self._rucio

    def register(self, did: Did) -> None:
        with self._lock:
            if did not in self._known:
                self._pending[did] = None

    def register_template(self, query: str) -> None:
        template = Template.from_query(query)
        # A pattern starting with a wildcard would make the server scan the whole scope.
        if template is None or template.glob.startswith("*") or self.prefetch_limit <= 0:
            return
        with self._lock:
            self._templates.setdefault((template.scope, template.regex.pattern), template)

    def get(self, did: Did) -> FileInfo | None:
        """What the DataLake knows about `did` (None: no such file), resolving it together
        with everything else pending."""
        with self._lock:
            if did not in self._known:
                self._pending[did] = None
                self._expand_templates(did)
                self._resolve(list(self._pending))
            elif did in self._missing_at and self._stale(did):
                # All stale answers at once: one bulk pass however many are asked about. Only
                # a refresh: if Rucio cannot answer now, the last answer stands, and whatever
                # needs the file fails where it is used (and cleans up there).
                now = time.monotonic()
                stale = [d for d, t in self._missing_at.items() if now - t > MISSING_TTL]
                try:
                    self._resolve(list(dict.fromkeys([*stale, *self._pending])))
                except DataLakeError as exc:
                    log.debug("refresh of %d missing DIDs failed: %s", len(stale), exc)
                    for d in stale:
                        self._missing_at[d] = time.monotonic()
            return self._known.get(did)

    def _stale(self, did: Did) -> bool:
        return time.monotonic() - self._missing_at[did] > MISSING_TTL

    def refresh(self, dids: Iterable[Did]) -> None:
        """Resolve again, e.g. after replicas were added by staging."""
        with self._lock:
            self._resolve(list(dict.fromkeys(dids)))

    def answered_missing(self, did: Did) -> bool:
        """Whether this run has asked Rucio about `did` and it did not exist (at any age); no
        request."""
        with self._lock:
            return did in self._known and self._known[did] is None

    def record(self, info: FileInfo) -> None:
        """What the caller just made the DataLake hold (a stored output), as this run's answer
        about it from now on: Rucio files are immutable, so it is not asked about again."""
        with self._lock:
            self._pending.pop(info.did, None)
            self._missing_at.pop(info.did, None)
            self._known[info.did] = info

    def require_file(self, info: FileInfo) -> None:
        """Raise with what the DID is, if it is a dataset or container: a query names one file,
        and silently treating a collection as a missing file would hide the mistake."""
        if info.did_type == "FILE":
            return
        kind = info.did_type.lower()
        count, first = self.rucio.collection_files(info.did)
        if not first:
            raise DataLakeError(f"{info.did} is a {kind} (with no files), not a file")
        names = ", ".join(to_query(d) for d in first) + (", ..." if count > len(first) else "")
        raise DataLakeError(
            f"{info.did} is a {kind} of {count} file{'s' if count != 1 else ''}, not a file: a "
            f"datalake:// query names one file; name the files instead ({names}), e.g. with a "
            "wildcard over their names")

    def known(self) -> dict[Did, FileInfo | None]:
        with self._lock:
            return dict(self._known)

    def _expand_templates(self, did: Did) -> None:
        for template in self._templates.values():
            if template.listed or not template.matches(did):
                continue
            template.listed = True
            names = []
            for name in self.rucio.client.list_dids(template.scope, {"name": template.glob},
                                                     did_type="file"):
                if template.regex.fullmatch(name):
                    names.append(name)
                if len(names) >= self.prefetch_limit:
                    log.info("more than %d files match %s:%s; resolving the others on demand",
                             self.prefetch_limit, template.scope, template.glob)
                    break
            for name in names:
                other = Did(template.scope, name)
                if other not in self._known:
                    self._pending[other] = None

    def _resolve(self, dids: list[Did]) -> None:
        if not dids:
            return
        self.passes += 1
        replicas = {Did(r["scope"], r["name"]): r for r in self.rucio.list_replicas(dids)}
        metas = {Did(m["scope"], m["name"]): m for m in self.rucio.get_metadata_bulk(dids)}
        missing = []
        for did in dids:
            meta = metas.get(did)
            self._pending.pop(did, None)
            if meta is None:
                self._known[did] = None
                self._missing_at[did] = time.monotonic()
                missing.append(did)
                continue
            info = _file_info(did, meta, replicas.get(did))
            self._known[did] = info
            if info.exists:
                self._missing_at.pop(did, None)
            else:
                self._missing_at[did] = time.monotonic()
        log.debug("resolved %d DIDs in one pass (%d not in the DataLake)", len(dids),
                  len(missing))


def _file_info(did: Did, meta: dict[str, object], replica: dict[str, object] | None
               ) -> FileInfo:
    by_rse: dict[str, list[tuple[int, str]]] = {}
    types: dict[str, str] = {}
    states: dict[str, str] = {}
    if replica is not None:
        pfns = replica.get("pfns") or {}
        for pfn, info in pfns.items():  # type: ignore[attr-defined]
            by_rse.setdefault(info["rse"], []).append((int(info.get("priority") or 0), pfn))
            types[info["rse"]] = str(info.get("type") or "DISK")
        states = {str(k): str(v) for k, v in (replica.get("states") or {}).items()}  # type: ignore[attr-defined]
    rses = sorted(set(by_rse) | set(states))
    replicas = tuple(
        Replica(rse, states.get(rse, "UNKNOWN"), tuple(p for _, p in sorted(by_rse.get(rse, []))),
                types.get(rse, "DISK"))
        for rse in rses
    )
    created = meta.get("created_at")
    if isinstance(created, dt.datetime):
        # The server sends naive UTC timestamps.
        created_at = created.replace(tzinfo=created.tzinfo or dt.UTC).timestamp()
    else:
        created_at = 0.0
    return FileInfo(
        did=did, bytes=int(meta.get("bytes") or 0),  # type: ignore[call-overload]
        adler32=_str_or_none(meta.get("adler32")), md5=_str_or_none(meta.get("md5")),
        created_at=created_at, replicas=replicas, did_type=str(meta.get("did_type") or "FILE"),
    )


def _str_or_none(value: object) -> str | None:
    return str(value) if value else None
