"""Inputs whose only replicas are on tape, recalled through Rucio as it stages.

Rucio, not this module, drives the tape, with a rule on one of two destinations:
- the site's RSE, when the stage policy stages to it (`rule`, `fts`) and it is one RSE: Rucio's
  submitter sends FTS a transfer from tape with `bring_online`; FTS brings the file online,
  copies it and releases its pin at once (as FTS3's url-copy does). The site keeps the copy
  under the rule, with the `rule_lifetime` of its other staged inputs.
- otherwise the tape RSE's staging area (its attribute `staging_buffer`): the rule's lifetime
  (`recall_lifetime`) makes Rucio's `conveyor-stager` submit a bring-online job pinned for as
  long. The pin cannot be released earlier: Rucio's reaper only drops a staging area's replica
  from the catalogue. The file is read from there like any disk replica.
A tape RSE has `rse_type` TAPE or the attribute `staging_required`.

The `Recaller` keeps the workflow's tape inputs in a queue, in the order jobs will need them
(what Snakemake asks for right now first), and requests them within the site's recall window
(`recall_window`): one `add_replication_rule` call per request. A thread looks at the requested
files (one bulk replica lookup and one query for this account's stuck rules per destination),
completes each file's future as it comes online or fails, logs progress with an estimate of the
time left and records journal events. A rule this account already has (a rerun, a run resumed
after a kill) is reused, so nothing is recalled twice while online. A staging-area rule is
deleted once its file is made local; the others expire with their lifetime.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from .errors import DataLakeError, DuplicateRuleError, NotFound, StagingError
from .journal import Journal, RecallEvent
from .polling import poll_delays
from .recall_window import RecallWindow, estimate, next_requests
from .resolver import FileInfo, Replica, Resolver
from .rucio_adapter import Did, RucioAdapter
from .settings import ProviderConfig, StagePolicy

RECALL_COMMENT = "snakemake-storage-plugin-datalake tape recall"
RECALL_POLL = 2.0  # at most this many seconds between looks at the requested files
QUEUED, REQUESTED, ONLINE, FAILED = "queued", "requested", "online", "failed"


@dataclass
class _Recall:
    did: Did
    bytes: int
    tape: str
    staging: str | None
    future: Future[None] = field(default_factory=Future)
    rule: str | None = None
    state: str = QUEUED


class Recaller:
    def __init__(self, cfg: ProviderConfig, resolver: Resolver,
                 rucio: Callable[[], RucioAdapter], log: logging.Logger,
                 journal: Journal | None = None) -> None:
        self.cfg = cfg
        self.resolver = resolver
        self.rucio = rucio
        self.log = log
        self.journal = journal
        self.window = RecallWindow(cfg.recall_files_per_request, cfg.recall_files_in_flight,
                                   cfg.recall_bytes_in_flight)
        self._files: dict[Did, _Recall] = {}
        self._queue: list[Did] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._attributes: dict[str, dict[str, Any]] = {}
        self._needs_staging: set[str] | None = None
        self._existing: dict[str, dict[Did, dict[str, Any]]] = {}
        self._started: float | None = None
        self._last_change = 0.0
        self._reported: tuple[int, int, int] | None = None
        self.rules_created: list[str] = []
        self.rules_reused: list[str] = []

    # -- which files are on tape ---------------------------------------------------------------
    def is_tape(self, replica: Replica) -> bool:
        """On an RSE of `rse_type` TAPE or with the attribute `staging_required`. The type
        Rucio gives with a replica's PFNs is not enough: it lists a URL shared by a tape RSE
        and its staging area under one of them only, so the other seems to have no PFN and no
        type. The tape RSEs are learnt with one request per run."""
        return replica.rse_type.upper() == "TAPE" or replica.rse in self._staging_required()

    def seems_tape(self, replica: Replica) -> bool:
        """`is_tape` without asking Rucio: from the replica's own type and the tape RSEs learnt
        so far (a run with no remote file never asks)."""
        known = self._needs_staging or set()
        return replica.rse_type.upper() == "TAPE" or replica.rse in known

    def tape_of(self, info: FileInfo) -> str | None:
        """The tape RSE to recall the file from, if its only AVAILABLE replicas are on tape."""
        replicas = info.available_replicas()
        if not replicas or not all(self.is_tape(r) for r in replicas):
            return None
        rses = [r.rse for r in replicas]
        return next((r for r in rses if self._attrs(r).get("staging_buffer")), rses[0])

    def _staging_required(self) -> set[str]:
        if self._needs_staging is None:
            try:
                self._needs_staging = set(self.rucio().expand_rse_expression(
                    "rse_type=TAPE|staging_required=True"))
            except NotFound:
                self._needs_staging = set()
            except DataLakeError as exc:  # Rucio's answer for an expression matching none
                if "empty" not in str(exc).lower():
                    raise
                self._needs_staging = set()
        return self._needs_staging

    def _attrs(self, rse: str) -> dict[str, Any]:
        if rse not in self._attributes:
            self._attributes[rse] = self.rucio().rse_attributes(rse)
        return self._attributes[rse]

    def _destination(self, tape: str) -> str | None:
        """The site's RSE if the policy stages to it (nothing stays pinned once FTS has copied
        the file there), else the tape's staging area (None: it names none)."""
        site = self.cfg.site_rse
        if (self.cfg.stage_policy is not StagePolicy.DOWNLOAD and site
                and not self.cfg.site_is_expression()):
            return site
        staging = self._attrs(tape).get("staging_buffer")
        return str(staging) if staging else None

    def _lifetime(self, destination: str) -> int:
        return (self.cfg.rule_lifetime if destination == self.cfg.site_rse
                else self.cfg.recall_lifetime)

    # -- what the stager asks for ---------------------------------------------------------------
    def plan(self, infos: Iterable[FileInfo]) -> None:
        """Queue the tape-only files among `infos` (in that order) that are not known yet."""
        found = []
        for info in infos:
            if info.did not in self._files and (tape := self.tape_of(info)) is not None:
                found.append(_Recall(info.did, info.bytes, tape, self._destination(tape)))
        with self._cond:
            for recall in found:
                if recall.did not in self._files:
                    self._files[recall.did] = recall
                    self._queue.append(recall.did)
        if found:
            self._wake()

    def advise(self, scheduler: str | None) -> None:
        """Once per run with tape inputs: the job selector that keeps to the recall's order."""
        if scheduler == "ilp":
            self.log.warning(
                "datalake: inputs are on tape and Snakemake's ilp scheduler picks among ready "
                "jobs in an order of its own, so jobs may wait on files still on tape while "
                "others are online; --scheduler greedy starts them in the order they are "
                "recalled (README, Data on tape)")

    def queued(self, or_unplanned: bool = False) -> bool:
        """Whether files wait to be requested (or, with `or_unplanned`, any tape file is known:
        the workflow's others are still to be planned)."""
        with self._cond:
            return bool(self._queue) or (or_unplanned and bool(self._files))

    def reorder(self, dids: Sequence[Did]) -> None:
        """Put the files not requested yet in the order of `dids` (others after them)."""
        position = {d: i for i, d in enumerate(dids)}
        with self._cond:
            self._queue.sort(key=lambda d: position.get(d, len(position)))

    def demand(self, dids: Sequence[Did]) -> dict[Did, Future[None]]:
        """Futures that complete when each file is online (raise if its recall failed); the
        queued ones among them go to the head of the queue."""
        with self._cond:
            wanted = [d for d in dids if d in self._files]
            first = [d for d in wanted if self._files[d].state == QUEUED]
            rest = [d for d in self._queue if d not in set(first)]
            self._queue = first + rest
            futures = {d: self._files[d].future for d in wanted}
        self._wake()
        return futures

    def release(self, info: FileInfo, read_from: str | None, linked: bool) -> None:
        """The file is local, read from `read_from`: delete its recall rule on a staging area
        (it may drop the copy), unless the local file is a symlink to that copy. Also the rule
        of an earlier run of this account (killed, say), when the file was read from the
        staging area its recall had put it on. A recall to the site's RSE stays: it is the
        site's copy, kept as its other staged inputs are."""
        with self._cond:
            recall = self._files.get(info.did)
            if recall is not None and (recall.state != ONLINE or recall.rule is None
                                       or recall.staging == self.cfg.site_rse
                                       or (linked and read_from == recall.staging)):
                return
            rule = recall.rule if recall is not None else None
            if recall is not None:
                recall.rule = None
        if rule is None and not linked and read_from is not None:
            rule = self._earlier_rule(info, read_from)
        if rule is not None:
            try:
                self.rucio().delete_rule(rule)
            except DataLakeError as exc:  # it expires with its lifetime anyway
                self.log.warning(f"datalake: recall rule {rule} of {info.did} not deleted: "
                                 f"{exc}")

    def _earlier_rule(self, info: FileInfo, read_from: str) -> str | None:
        tapes = [r.rse for r in info.replicas if self.seems_tape(r)]
        if not any(self._attrs(t).get("staging_buffer") == read_from for t in tapes):
            return None
        with self._cond:
            if read_from not in self._existing:
                self._existing[read_from] = self.rucio().account_rules(read_from)
            rule = self._existing[read_from].pop(info.did, None)
        return str(rule["id"]) if rule is not None else None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # -- the thread ---------------------------------------------------------------------------
    def _wake(self) -> None:
        with self._cond:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="datalake-recall",
                                                daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _run(self) -> None:
        delays = poll_delays(RECALL_POLL)
        while True:
            with self._cond:
                if self._closed or not (self._queue or self._in_flight()):
                    self._thread = None
                    return
            try:
                if self._submit():
                    delays = poll_delays(RECALL_POLL)
                self._look()
            except DataLakeError as exc:  # Rucio did not answer: look again later
                self.log.warning(f"datalake: looking at the tape recall failed: {exc}")
            with self._cond:
                self._cond.wait(next(delays))

    def _in_flight(self) -> list[_Recall]:
        return [r for r in self._files.values() if r.state == REQUESTED]

    def _submit(self) -> bool:
        with self._cond:
            flying = self._in_flight()
            queue = [(d, self._files[d].bytes) for d in self._queue]
            requests = next_requests(queue, self.window, len(flying),
                                     sum(r.bytes for r in flying))
            taken = {d for batch in requests for d in batch}
            self._queue = [d for d in self._queue if d not in taken]
            for did in taken:
                self._files[did].state = REQUESTED
        if not taken:
            return False
        if self._started is None:
            self._started = self._last_change = time.monotonic()
        for batch in requests:
            by_area: dict[tuple[str, str | None], list[_Recall]] = {}
            for did in batch:
                recall = self._files[did]
                by_area.setdefault((recall.tape, recall.staging), []).append(recall)
            for (tape, staging), recalls in by_area.items():
                self._request(tape, staging, recalls)
        return True

    def _request(self, tape: str, staging: str | None, recalls: list[_Recall]) -> None:
        """One request: the rules this account has there already reused, one
        add_replication_rule call for the others."""
        if staging is None:
            self._fail(recalls, f"tape RSE {tape} names no staging area (attribute "
                       "staging_buffer) and the stage policy has no site RSE to recall to")
            return
        try:
            fresh = self._reuse(staging, recalls, refresh=False)
            try:
                ids = self._add_rules(staging, fresh)
            except DuplicateRuleError:  # made meanwhile, e.g. by a run of this account
                fresh = self._reuse(staging, fresh, refresh=True)
                ids = self._add_rules(staging, fresh)
        except DataLakeError as exc:
            self._fail([r for r in recalls if r.rule is None], f"Rucio refused the recall: {exc}")
            return
        for recall, rule in zip(fresh, ids, strict=True):
            recall.rule = rule
        reused = len(recalls) - len(fresh)
        self.log.info(f"datalake: recall of {len(recalls)} files "
                      f"({sum(r.bytes for r in recalls) / 2**20:.1f} MiB) from tape {tape} to "
                      f"{staging} requested ({reused} rules reused, lifetime "
                      f"{self._lifetime(staging)} s)")
        self._record("requested", tape, staging, recalls, reused=reused)

    def _reuse(self, staging: str, recalls: list[_Recall], refresh: bool) -> list[_Recall]:
        if refresh or staging not in self._existing:
            self._existing[staging] = self.rucio().account_rules(staging)
        existing = self._existing[staging]
        fresh = []
        for recall in recalls:
            rule = existing.get(recall.did)
            if rule is None:
                fresh.append(recall)
                continue
            recall.rule = str(rule["id"])
            self.rules_reused.append(recall.rule)
        return fresh

    def _add_rules(self, staging: str, recalls: list[_Recall]) -> list[str]:
        if not recalls:
            return []
        ids = self.rucio().add_rules([r.did for r in recalls], staging,
                                     lifetime=self._lifetime(staging), comment=RECALL_COMMENT)
        self.rules_created.extend(ids)
        return ids

    def _look(self) -> None:
        flying = [r for r in self._in_flight() if r.rule is not None]
        if not flying:
            return
        self.resolver.refresh([r.did for r in flying])
        online = [r for r in flying if self._online(r)]
        stuck: dict[Did, str] = {}
        for staging in sorted({str(r.staging) for r in flying}):
            stuck.update(self.rucio().stuck_rules(staging))
        failed = [r for r in flying if r not in online and r.did in stuck]
        self._settle(online, failed, stuck)
        idle = time.monotonic() - self._last_change
        if not online and not failed and idle > self.cfg.stage_timeout:
            self._fail(flying, f"no file came online from tape in {idle:.0f} s; is Rucio's "
                       "conveyor-stager running?")
        self._progress()

    def _online(self, recall: _Recall) -> bool:
        info = self.resolver.get(recall.did)
        return info is not None and any(r.rse == recall.staging
                                        for r in info.available_replicas())

    def _settle(self, online: list[_Recall], failed: list[_Recall], why: dict[Did, str]) -> None:
        if online or failed:
            self._last_change = time.monotonic()
        by_area: dict[tuple[str, str], list[_Recall]] = {}
        for recall in online:
            by_area.setdefault((recall.tape, str(recall.staging)), []).append(recall)
        for (tape, staging), recalls in by_area.items():
            with self._cond:
                for recall in recalls:
                    recall.state = ONLINE
            self._record("online", tape, staging, recalls)
            for recall in recalls:
                recall.future.set_result(None)
        for recall in failed:
            self._fail([recall], why[recall.did])

    def _fail(self, recalls: list[_Recall], reason: str) -> None:
        for recall in recalls:
            with self._cond:
                if recall.state in (ONLINE, FAILED):
                    continue
                recall.state = FAILED
            where = f"from tape RSE {recall.tape}" + (
                f" to {recall.staging}" if recall.staging else "")
            message = f"{recall.did}: recall {where} failed: {reason}"
            self.log.error(f"datalake: {message}")
            self._record("failed", recall.tape, str(recall.staging), [recall],
                         failed={str(recall.did): reason})
            recall.future.set_exception(StagingError(message))

    def _progress(self) -> None:
        with self._cond:
            states = [r.state for r in self._files.values()]
        counts = (states.count(ONLINE), states.count(QUEUED) + states.count(REQUESTED),
                  states.count(FAILED))
        if counts == self._reported:
            return
        self._reported = counts
        elapsed = time.monotonic() - (self._started or time.monotonic())
        progress = estimate(*counts, elapsed)
        self.log.info(f"datalake: tape recall: {progress.describe()}")

    def _record(self, action: str, tape: str, staging: str, recalls: Sequence[_Recall], *,
                reused: int = 0, failed: dict[str, str] | None = None) -> None:
        if self.journal is None:
            return
        self.journal.record(RecallEvent(
            action=action, tape_rse=tape, staging_rse=staging,
            files=[str(r.did) for r in recalls], bytes=sum(r.bytes for r in recalls),
            rules=[r.rule for r in recalls if r.rule] if action == "requested" else [],
            reused=reused, failed=failed or {}))
