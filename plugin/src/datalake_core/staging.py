"""Getting input files onto this machine: batching, the stage policies, concurrency, progress.

Snakemake asks for inputs one by one; requests arriving together form a batch. A batch first
brings missing files to the site's RSE as the policy says (one rule or FTS job for the batch
and, with stage-ahead, for every input the workflow still needs), then makes each file
available locally from the best replica with up to `max_concurrent_transfers` reads at once.
A replica that fails (corrupt, unreachable) is skipped for the next one; a corrupt one is also
reported (journal and a ready-made `rucio replica state update bad` command) for an operator to
declare bad, never declared here. A full local disk stops staging of that file at once: no other
replica would fit either.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shlex
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

import requests

from . import materialise, transfer_http, transfer_xrootd
from .errors import CorruptReplica, DataLakeError, LocalWriteError, StagingError, TransferFailed
from .journal import BadReplicaEvent, InputEvent, Journal, Staged, Way
from .locality import Source, protocol_bases, sources
from .resolver import FileInfo, Resolver
from .rucio_adapter import Did, RucioAdapter
from .settings import ProviderConfig, SiteVerify, StagePolicy
from .site_transfer import SiteTransfers
from .tape_recall import Recaller

PRESENT = Staged(Way.PRESENT)


@dataclass
class _Request:
    did: Did
    dest: Path
    future: Future[Staged]


class Stager:
    def __init__(self, cfg: ProviderConfig, resolver: Resolver, rucio: Callable[[], RucioAdapter],
                 log: logging.Logger,
                 stage_ahead: Callable[[], Sequence[Did]] | None = None,
                 journal: Journal | None = None,
                 scheduler: Callable[[], str | None] = lambda: None) -> None:
        self.cfg = cfg
        self._scheduler = scheduler  # Snakemake's job selector, if known
        self.journal = journal
        self.resolver = resolver
        self.rucio = rucio
        self.log = log
        self._stage_ahead = stage_ahead
        self._workflow_inputs = stage_ahead  # for the tape recall's plan and order
        self._recall_planned = False
        self._requests: dict[Did, _Request] = {}
        self._pending: list[_Request] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max(1, cfg.max_concurrent_transfers),
                                        thread_name_prefix="datalake-stage")
        self._http = threading.local()
        self._site_rses: list[str] | None = None
        self.site = SiteTransfers(cfg, resolver, rucio, self.site_rses, self.sources_of, log,
                                  journal=journal)
        self._bases = lru_cache(maxsize=None)(self._protocol_bases)
        self._suspects: set[tuple[Did, str]] = set()
        self.recall = Recaller(cfg, resolver, rucio, log, journal)

    # -- requests and batches ------------------------------------------------------------------
    def request(self, did: Did, dest: Path) -> Future[Staged]:
        """Queue `did` for the next batch (once); the future gives how it was made local."""
        with self._lock:
            existing = self._requests.get(did)
            if existing is not None:
                return existing.future
            req = _Request(did, dest, Future())
            self._requests[did] = req
            self._pending.append(req)
            return req.future

    def flush(self) -> None:
        """Process everything queued so far as one batch (a no-op when another caller already
        took it)."""
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            self._process(batch)
        except BaseException as exc:  # never leave a waiting caller hanging
            for req in batch:
                if not req.future.done():
                    req.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise

    def stage(self, did: Did, dest: Path) -> Staged:
        """Make `did` available at `dest`, batching with whatever else is queued."""
        future = self.request(did, dest)
        if not future.done():
            self.flush()
        try:
            return future.result()
        finally:
            with self._lock:
                self._requests.pop(did, None)

    def close(self) -> None:
        self.recall.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- the work ----------------------------------------------------------------------------
    def _process(self, batch: list[_Request]) -> None:
        started = time.monotonic()
        infos: dict[Did, FileInfo] = {}
        todo: list[_Request] = []
        for req in batch:
            info = self.resolver.get(req.did)
            if info is None or not info.exists:
                why = "not in the DataLake" if info is None else (
                    f"a {info.did_type}, not a file" if info.did_type != "FILE"
                    else "no AVAILABLE replica on any RSE")
                req.future.set_exception(StagingError(f"{req.did}: {why}"))
                continue
            infos[req.did] = info
            req.dest.parent.mkdir(parents=True, exist_ok=True)
            if materialise.is_verified(req.dest, size=info.bytes, adler32=info.adler32):
                req.future.set_result(PRESENT)
                self._record(info, PRESENT, None, time.time())
                continue
            todo.append(req)
        todo = self._recall_from_tape(todo, infos)
        if todo:
            self._make_local(todo, infos, started)

    def _make_local(self, todo: list[_Request], infos: dict[Did, FileInfo],
                    started: float) -> None:
        site_problems = self._bring_to_site([infos[r.did] for r in todo])
        self.log.info(f"datalake: making {len(todo)} files local (policy "
                      f"{self.cfg.stage_policy.value}, up to "
                      f"{self.cfg.max_concurrent_transfers} at once)")
        done = [0, 0]  # files, bytes
        progress_lock = threading.Lock()

        def one(req: _Request) -> None:
            info = infos[req.did]
            how = self._finish(req, info, site_problems.get(req.did))
            if how is None:
                return
            with progress_lock:
                done[0] += 1
                done[1] += info.bytes
                self.log.info(f"datalake: {done[0]}/{len(todo)} local "
                              f"({done[1] / 2**20:.1f} MiB): {req.did} via {how}")
            req.future.set_result(how)

        list(self._pool.map(one, todo))
        self.log.info(f"datalake: batch of {len(todo)} files done in "
                      f"{time.monotonic() - started:.1f} s")

    def _finish(self, req: _Request, info: FileInfo, site_problem: str | None
                ) -> Staged | None:
        """Make one file local; its future gets the outcome (None returned on failure)."""
        try:
            how = self._materialise(info, req.dest, site_problem)
        except BaseException as exc:
            # Logged here too: Snakemake may report another error for the same file first.
            self.log.error(f"datalake: {exc}")
            req.future.set_exception(exc)
            return None
        self.recall.release(info, how.source, linked=how.way is Way.SYMLINK)
        return how

    # -- tape ----------------------------------------------------------------------------------
    def _recall_from_tape(self, todo: list[_Request], infos: dict[Did, FileInfo]
                          ) -> list[_Request]:
        """Files whose only replicas are on tape are recalled (on the first, the workflow's
        other tape inputs too, after these) and each is made local as soon as it is online;
        returns the other files."""
        # A replica at the site or mounted here is online: no Rucio request for those.
        remote = [r for r in todo if not self._has_site_replica(infos[r.did])
                  and not any(s.local for s in self.sources_of(infos[r.did]))]
        if not remote:
            return todo
        self.recall.plan(infos[r.did] for r in remote)
        if self._workflow_inputs is not None and self.recall.queued(
                or_unplanned=not self._recall_planned):
            # The jobs still to run, in the order Snakemake is likely to start them now: all
            # their tape inputs are queued the first time, and put in that order each time.
            ahead = self._workflow_inputs()
            if not self._recall_planned:
                self._recall_planned = True
                self.recall.advise(self._scheduler())
                self.recall.plan(i for d in ahead if (i := self.resolver.get(d)) is not None
                                 and i.exists)
            self.recall.reorder(ahead)
        futures = self.recall.demand([r.did for r in remote])
        for req in remote:
            if req.did in futures:
                futures[req.did].add_done_callback(partial(self._recalled, req, infos[req.did]))
        return [r for r in todo if r.did not in futures]

    def _recalled(self, req: _Request, info: FileInfo, recall: Future[None]) -> None:
        failure = recall.exception()
        if failure is not None:
            req.future.set_exception(failure)
            return

        def make_local() -> None:
            problems = self._bring_to_site([info])
            how = self._finish(req, info, problems.get(req.did))
            if how is not None:
                self.log.info(f"datalake: {req.did} recalled from tape, local via {how}")
                req.future.set_result(how)

        try:
            self._pool.submit(make_local)
        except RuntimeError as exc:  # the pool is shut down: the run is ending
            req.future.set_exception(exc)

    def _bring_to_site(self, infos: list[FileInfo]) -> dict[Did, str]:
        """Per the policy, replicate to the site what is not there yet (plus, with stage-ahead,
        the workflow's other inputs); returns the reasons for files that did not get there."""
        policy = self.cfg.stage_policy
        if policy is StagePolicy.DOWNLOAD:
            return {}
        if not self.cfg.site_rse:
            raise StagingError(f"stage policy {policy.value} needs the site's RSE "
                               "(--storage-datalake-site-rse)")
        wanted = {i.did: i for i in infos}
        if self._stage_ahead is not None and self.cfg.stage_ahead:
            ahead = [d for d in self._stage_ahead() if d not in wanted]
            self._stage_ahead = None  # the whole workflow's inputs are taken once
            for did in ahead:
                info = self.resolver.get(did)
                if info is not None and info.exists and self.recall.tape_of(info) is None:
                    wanted[did] = info
        missing = [i for i in wanted.values() if not self._has_site_replica(i)]
        if not missing:
            return {}
        self.log.info(f"datalake: {len(missing)} of {len(wanted)} files are not at "
                      f"{self.cfg.site_rse} yet; staging them by {policy.value}")
        try:
            result = (self.site.by_rule(missing) if policy is StagePolicy.RULE
                      else self.site.by_fts(missing))
        except DataLakeError as exc:
            result = {i.did: str(exc) for i in missing}
        problems = {did: why for did, why in result.items() if why is not None}
        for did, why in problems.items():
            # Not fatal (another replica may be read), but never silent: the site asked for
            # its own copy and a transfer system said no.
            self.log.warning(f"datalake: {did} not staged to {self.cfg.site_rse} by "
                             f"{policy.value}: {why}; reading another replica")
        return problems

    def _materialise(self, info: FileInfo, dest: Path, site_problem: str | None) -> Staged:
        # Replicas may have been added by the site step: use the fresh view.
        info = self.resolver.get(info.did) or info
        tried: list[str] = []
        if site_problem:
            tried.append(f"{self.cfg.site_rse} (staging: {site_problem})")
        for source in self.sources_of(info):
            try:
                began = time.time()
                how = self._read(source, info, dest)
                self._record(info, how, source, began)
                return how
            except LocalWriteError as exc:
                raise StagingError(f"{info.did}: {exc}") from None
            except TransferFailed as exc:
                tried.append(f"{source.describe()}: {exc}")
                self.log.warning(f"datalake: replica of {info.did} on {source.rse} skipped: "
                                 f"{exc}")
                if isinstance(exc, CorruptReplica):
                    self._suspect(info, source, str(exc))
        rses = sorted({r.rse for r in info.available_replicas()})
        raise StagingError(f"{info.did}: no usable replica (RSEs {', '.join(rses) or 'none'}); "
                           f"tried: {'; '.join(tried) or 'no readable protocol'}")

    def _record(self, info: FileInfo, how: Staged, source: Source | None, began: float) -> None:
        if self.journal is not None:
            self.journal.record(InputEvent(
                did=str(info.did), bytes=info.bytes, adler32=info.adler32, md5=info.md5, how=how,
                rse=source.rse if source else None, pfn=source.pfn if source else None,
                at_site=source.at_site if source else True, start=began))

    def _suspect(self, info: FileInfo, source: Source, reason: str) -> None:
        """Report a replica whose bytes differ from the catalogue: a journal event, its name in a
        list file per scope and RSE next to the journal, and the command that declares the
        listed replicas bad. The LFN-list form is used because Rucio cannot map PFNs of names
        containing '/' back to DIDs. Declaring stays an operator's decision."""
        with self._lock:
            if (info.did, source.rse) in self._suspects:
                return
            self._suspects.add((info.did, source.rse))
        why = "size or adler32 differs from the catalogue (seen by the datalake storage plugin"
        also = ""
        if self.journal is None:  # no run directory to keep a list in: name the one replica
            target = ["--reason", why + ")", source.pfn]
        else:
            listing = (self.journal.path.parent / f"bad-replicas-{self.journal.run_id}-"
                       f"{info.did.scope}-{source.rse}.txt").resolve()
            fd = os.open(listing, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with self._lock, os.fdopen(fd, "a") as handle:
                handle.write(info.did.name + "\n")
            self.journal.record(BadReplicaEvent(did=str(info.did), rse=source.rse,
                                                pfn=source.pfn, reason=reason,
                                                lfn_list=str(listing)))
            target = ["--reason", f"{why}, run {self.journal.run_id})", "--lfn", "--scope",
                      info.did.scope, "--rse", source.rse, str(listing)]
            also = f" (covers every suspect on {source.rse} listed in {listing.name})"
        command = shlex.join(["rucio", "replica", "state", "update", "bad", *target])
        self.log.warning(f"datalake: suspicious replica of {info.did} on {source.rse} "
                         f"({source.pfn}) not used; an operator can declare it bad{also} with: "
                         f"{command}")

    def _read(self, source: Source, info: FileInfo, dest: Path) -> Staged:
        if source.local is not None:
            if source.at_site:
                # A link needs no room; should it fall back to a copy, a full disk is still
                # reported by the copy itself.
                how = materialise.link(source.local, dest, mode=self.cfg.link_mode,
                                     size=info.bytes, adler32=info.adler32,
                                     verify=self.cfg.verify_site_replicas is SiteVerify.ADLER32)
                return Staged(Way(how), source.rse)
            materialise.check_space(dest, info.bytes)
            materialise.copy(source.local, dest, size=info.bytes, adler32=info.adler32)
            return Staged(Way.COPY, source.rse)
        materialise.check_space(dest, info.bytes)
        if source.scheme == "root":
            transfer_xrootd.fetch(source.pfn, dest, size=info.bytes, adler32=info.adler32,
                                  timeout=self.cfg.http_timeout)
            return Staged(Way.XROOTD, source.rse)
        transfer_http.fetch(source.pfn, dest, size=info.bytes, adler32=info.adler32,
                            verify=self.cfg.tls(), timeout=self.cfg.http_timeout,
                            session=self._session())
        return Staged(Way.HTTPS, source.rse)

    # -- locality ----------------------------------------------------------------------------
    def site_rses(self) -> list[str]:
        if self._site_rses is None:
            site = self.cfg.site_rse
            if not site:
                self._site_rses = []
            elif self.cfg.site_is_expression():
                self._site_rses = self.rucio().expand_rse_expression(site)
            else:
                self._site_rses = [site]
        return self._site_rses

    def sources_of(self, info: FileInfo) -> list[Source]:
        """Readable replicas, best first; one on tape last (nearline: recalled instead)."""
        info = self._with_pfns(info)
        tape = {r.rse for r in info.replicas if self.recall.seems_tape(r)}
        return sorted(sources(info, self.site_rses(), self.cfg.mounts, self._bases),
                      key=lambda s: s.rse in tape)

    def _with_pfns(self, info: FileInfo) -> FileInfo:
        """Rucio lists no PFNs for replicas on a staging area (where recalls land): those of
        a deterministic RSE follow from its protocols."""
        from rucio.rse import rsemanager

        replicas = []
        for replica in info.replicas:
            rse = {} if replica.pfns or not replica.available else self.site.protocol_info(
                replica.rse)
            if not rse.get("deterministic", True) or not rse.get("protocols"):
                replicas.append(replica)
                continue
            pfns = [str(rsemanager.lfns2pfns(rse, [info.did.as_dict()], operation="read",
                                             scheme=p["scheme"])[str(info.did)])
                    for p in rsemanager.get_protocols_ordered(rse, "read", domain="wan")]
            replicas.append(dataclasses.replace(replica, pfns=tuple(pfns)))
        return dataclasses.replace(info, replicas=tuple(replicas))

    def _has_site_replica(self, info: FileInfo) -> bool:
        sites = set(self.site_rses())
        return any(r.rse in sites for r in info.available_replicas())

    def _protocol_bases(self, rse: str) -> list[str]:
        return protocol_bases(self.site.protocol_info(rse))

    def _session(self) -> requests.Session:
        session = getattr(self._http, "session", None)
        if session is None:
            session = self._http.session = requests.Session()
        return session
