"""Bring files to the site's RSE before they are read: with one Rucio rule for a whole batch
(policy `rule`: Rucio's conveyor drives FTS), or with FTS jobs submitted here followed by replica
registration (policy `fts`).

Both return, per DID, None (now at the site) or the reason it is not; the caller then reads what
is at the site and falls back to other replicas for the rest.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .fts_adapter import FtsAdapter, FtsOutcome, FtsTransfer
from .journal import FtsRetryEvent, Journal, SiteTransferEvent
from .locality import Source
from .polling import poll_delays
from .resolver import FileInfo, Resolver
from .rucio_adapter import DataLakeError, Did, DuplicateRuleError, RucioAdapter
from .rucio_connection import client_x509_proxy
from .settings import DEFAULT_FTS_ATTEMPTS as DEFAULT_FTS_ATTEMPTS
from .settings import DEFAULT_FTS_BACKOFF as DEFAULT_FTS_BACKOFF
from .settings import ProviderConfig
from .storage_credentials import for_fts

RULE_COMMENT = "snakemake-storage-plugin-datalake stage-in"
# At most this many seconds between looks at the batch's replicas (two requests a look): a disk
# rule is done within seconds, and the last pause is how late its end is seen at worst (tape
# recalls wait with a ceiling of their own).
RULE_POLL = 1.0


@dataclass
class SiteTransfers:
    cfg: ProviderConfig
    resolver: Resolver
    rucio: Callable[[], RucioAdapter]
    site_rses: Callable[[], list[str]]
    sources_of: Callable[[FileInfo], list[Source]]
    log: logging.Logger
    journal: Journal | None = None
    rules_created: list[str] = field(default_factory=list)
    replicas_registered: list[tuple[str, Did]] = field(default_factory=list)
    _rse_info: dict[str, dict[str, Any]] = field(default_factory=dict)
    _fts: dict[str, FtsAdapter] = field(default_factory=dict)

    # -- policy `rule` ---------------------------------------------------------------------
    def by_rule(self, infos: Sequence[FileInfo]) -> dict[Did, str | None]:
        """Rules for the batch in one request, then wait until the files are at the site:
        each look is one bulk replica lookup plus one query for this account's stuck rules,
        0.25 s after the last at first, doubling up to `RULE_POLL`."""
        expression = self.cfg.site_rse or ""
        dids = [i.did for i in infos]
        started = time.monotonic()
        began, first_rule = time.time(), len(self.rules_created)
        self._add_rules(dids, expression)
        problems: dict[Did, str] = {}
        remaining = set(dids)
        deadline = started + self.cfg.stage_timeout
        reported, looks, delays = -1, 0, poll_delays(RULE_POLL)
        while remaining:
            looks += 1
            self.resolver.refresh(remaining)
            remaining = {d for d in remaining if not self._at_site(d)}
            if len(remaining) != reported:
                reported = len(remaining)
                self.log.info(f"datalake: {len(dids) - reported}/{len(dids)} files replicated "
                              f"to {expression} by rule")
            if not remaining:
                break
            for did, error in self.rucio().stuck_rules(expression).items():
                if did in remaining:
                    problems[did] = f"rule to {expression} is STUCK: {error}"
                    remaining.discard(did)
            if time.monotonic() > deadline:
                for did in remaining:
                    problems[did] = (f"rule to {expression} not done after "
                                     f"{self.cfg.stage_timeout:.0f} s; is Rucio's conveyor "
                                     "running?")
                break
            time.sleep(next(delays))
        self.log.info(f"datalake: staging by rule to {expression} done in "
                      f"{time.monotonic() - started:.1f} s ({len(problems)} failed, {looks} "
                      "looks at Rucio)")
        self._record("rule", expression, began, infos, problems,
                     rules=self.rules_created[first_rule:])
        return {d: problems.get(d) for d in dids}

    def _record(self, policy: str, destination: str, began: float, infos: Sequence[FileInfo],
                problems: dict[Did, str], *, rules: list[str] | None = None,
                fts_jobs: list[str] | None = None, fts_endpoint: list[str] | None = None,
                attempts: dict[str, int] | None = None) -> None:
        if self.journal is None:
            return
        moved = [i for i in infos if i.did not in problems]
        self.journal.record(SiteTransferEvent(
            policy=policy, destination=destination, start=began,
            files=[str(i.did) for i in moved], bytes=sum(i.bytes for i in moved),
            failed={str(d): why for d, why in problems.items()}, rules=rules,
            fts_jobs=fts_jobs, fts_endpoint=fts_endpoint, attempts=attempts))

    def _add_rules(self, dids: list[Did], expression: str) -> None:
        """Where this account has a rule for some DIDs already (an earlier, interrupted run),
        Rucio refuses the whole request: those are reused, the others get new rules."""
        rucio = self.rucio()
        try:
            fresh = dids
            self.rules_created.extend(rucio.add_rules(
                fresh, expression, lifetime=self.cfg.rule_lifetime, comment=RULE_COMMENT))
        except DuplicateRuleError:
            fresh = [d for d in dids if not any(
                r.get("account") == rucio.account and r.get("rse_expression") == expression
                for r in rucio.list_did_rules(d))]
            if fresh:
                self.rules_created.extend(rucio.add_rules(
                    fresh, expression, lifetime=self.cfg.rule_lifetime, comment=RULE_COMMENT))
        self.log.info(f"datalake: rules for {len(fresh)} files to {expression} "
                      f"(lifetime {self.cfg.rule_lifetime} s, {len(dids) - len(fresh)} reused)")

    # -- policy `fts` --------------------------------------------------------------------------
    def by_fts(self, infos: Sequence[FileInfo]) -> dict[Did, str | None]:
        """Copy each file to the site with FTS, from its best replica and, if that copy fails,
        from the next. A file no replica could be copied from is tried again after an
        exponential backoff (`backoff`, 2 x `backoff`, ...), for at most `attempts` attempts
        and never past the stage timeout; its reason then names each source and destination
        of the last attempt with FTS's reason."""
        site = self.site_rses()[0]
        by_did = {i.did: i for i in infos}
        dest_pfns = self._destinations(site, list(by_did))
        fts = self._fts_for(site)
        attempts, backoff = self.fts_retry_policy()
        deadline = time.monotonic() + self.cfg.stage_timeout
        began = time.time()
        jobs: list[str] = []
        failed: dict[Did, list[str]] = {}
        made: dict[Did, int] = {}  # attempts made per file
        pending, attempt = list(by_did), 0
        while pending:
            attempt += 1
            failed = self._fts_attempt(fts, site, [by_did[d] for d in pending], dest_pfns,
                                       deadline, jobs)
            made.update({d: attempt for d in pending})
            # Without a readable replica another attempt cannot do better.
            pending = [d for d in pending if failed.get(d)]
            delay = backoff * 2 ** (attempt - 1)
            if not pending or attempt >= attempts or time.monotonic() + delay >= deadline:
                break
            self.log.warning(f"datalake: {len(pending)} files not copied to {site} by FTS "
                             f"(attempt {attempt} of {attempts}); next attempt in {delay:.0f} s")
            if self.journal is not None:
                self.journal.record(FtsRetryEvent(
                    destination=site, attempt=attempt, attempts=attempts, delay=delay,
                    failed={str(d): failed[d] for d in pending}))
            time.sleep(delay)
        self.resolver.refresh(list(by_did))
        result: dict[Did, str | None] = {}
        for did in by_did:
            if self._at_site(did):
                result[did] = None
            elif did in failed:
                result[did] = self._fts_failure(fts, site, made[did], attempts, failed[did])
            else:
                result[did] = f"copied by FTS but not available at {site}"
        problems = {d: why for d, why in result.items() if why is not None}
        for did, why in problems.items():
            self.log.warning(f"datalake: {did}: {why}")
        self._record("fts", site, began, infos, problems, fts_jobs=jobs,
                     fts_endpoint=[fts.endpoint], attempts={str(d): n for d, n in made.items()})
        return result

    def fts_retry_policy(self) -> tuple[int, float]:
        """FTS attempts per file and the first backoff in seconds."""
        return max(1, self.cfg.fts_attempts), max(0.0, float(self.cfg.fts_retry_backoff))

    def _fts_failure(self, fts: FtsAdapter, site: str, made: int, attempts: int,
                     reasons: list[str]) -> str:
        if not reasons:
            return "no replica FTS could read"
        stopped = "" if made >= attempts else (
            f" (stage timeout of {self.cfg.stage_timeout:.0f} s reached)")
        return (f"FTS at {fts.endpoint} did not copy it to {site} in {made} attempt"
                f"{'s' if made > 1 else ''}{stopped}; last attempt: {'; '.join(reasons)}")

    def _fts_attempt(self, fts: FtsAdapter, site: str, infos: Sequence[FileInfo],
                     dest_pfns: dict[Did, str], deadline: float,
                     jobs: list[str]) -> dict[Did, list[str]]:
        """One attempt: each file from its best replica, then from the next after a failed
        copy. Returns, for each file not copied, what was tried and what FTS said (an empty
        list: no replica FTS could read)."""
        by_did = {i.did: i for i in infos}
        tried: dict[Did, list[str]] = {i.did: [] for i in infos}
        queue = {i.did: [s for s in self.sources_of(i) if not s.at_site] for i in infos}
        while queue:
            batch: dict[str, tuple[Did, Source]] = {}
            transfers = []
            for did, candidates in list(queue.items()):
                if not candidates:
                    del queue[did]
                    continue
                source = candidates.pop(0)
                info = by_did[did]
                transfer = FtsTransfer(source.pfn, dest_pfns[did], info.bytes, info.adler32)
                transfers.append(transfer)
                batch[transfer.destination] = (did, source)
            if not transfers:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                for did, source in batch.values():
                    tried[did].append(f"{source.rse}: not submitted, stage timeout of "
                                      f"{self.cfg.stage_timeout:.0f} s reached")
                break

            def submitted(job_id: str, n: int = len(transfers)) -> None:
                jobs.append(job_id)
                self.log.info(f"datalake: FTS job {job_id} at {fts.endpoint}: {n} files to "
                              f"{site}")

            try:
                outcomes = fts.run(transfers, remaining, on_submit=submitted)
            except DataLakeError as exc:  # FTS refused the job or did not answer
                outcomes = [FtsOutcome(t, False, str(exc)) for t in transfers]
            done: list[dict[str, Any]] = []
            for outcome in outcomes:
                did, source = batch[outcome.transfer.destination]
                if outcome.ok:
                    info = by_did[did]
                    done.append({"scope": did.scope, "name": did.name, "bytes": info.bytes,
                                 "adler32": info.adler32, "pfn": outcome.transfer.destination})
                    del queue[did]
                    del tried[did]
                else:
                    what = (f"{source.rse} {outcome.transfer.source} -> "
                            f"{outcome.transfer.destination}: {outcome.reason}")
                    tried[did].append(what)
                    self.log.warning(f"datalake: FTS copy of {did} failed: {what}")
            if done:
                self.rucio().add_replicas(site, done)
                self.replicas_registered.extend((site, Did(f["scope"], f["name"])) for f in done)
                self.log.info(f"datalake: {len(done)} files copied by FTS to {site} and "
                              "registered")
        return tried

    def _destinations(self, rse: str, dids: Sequence[Did]) -> dict[Did, str]:
        from rucio.rse import rsemanager

        info = self._info(rse)
        if not info.get("deterministic", True):
            raise DataLakeError(f"policy fts needs a deterministic site RSE; {rse} is not")
        pfns = rsemanager.lfns2pfns(info, [d.as_dict() for d in dids],
                                    operation="third_party_copy_write")
        return {d: pfns[str(d)] for d in dids}

    def _fts_for(self, rse: str) -> FtsAdapter:
        endpoint = self.cfg.fts_endpoint or self.rucio().rse_attributes(rse).get("fts")
        if not endpoint:
            raise DataLakeError(f"no FTS endpoint: {rse} has no `fts` attribute and none is set")
        endpoint = str(endpoint).split(",")[0]
        if endpoint not in self._fts:
            # In token mode the discovered token, read again at each submission.
            self._fts[endpoint] = FtsAdapter(endpoint, token=for_fts(self.cfg.fts_token),
                                             verify=self.cfg.tls(),
                                             x509_proxy=client_x509_proxy())
        return self._fts[endpoint]

    # -- helpers ------------------------------------------------------------------------------
    def _info(self, rse: str) -> dict[str, Any]:
        if rse not in self._rse_info:
            self._rse_info[rse] = self.rucio().rse_info(rse)
        return self._rse_info[rse]

    def protocol_info(self, rse: str) -> dict[str, Any]:
        return self._info(rse)

    def _at_site(self, did: Did) -> bool:
        info = self.resolver.get(did)
        sites = set(self.site_rses())
        return info is not None and any(r.rse in sites for r in info.available_replicas())
