"""Bring files to the site's RSE before they are read: with one Rucio rule for a whole batch
(policy `rule`: Rucio's conveyor drives FTS), or with FTS jobs submitted here followed by replica
registration (policy `fts`).

Both return, per DID, None (now at the site) or the reason it is not; the caller then reads what
is at the site and falls back to other replicas for the rest.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .fts_adapter import FtsAdapter, FtsTransfer
from .journal import Journal
from .locality import Source
from .resolver import FileInfo, Resolver
from .rucio_adapter import DataLakeError, Did, DuplicateRuleError, RucioAdapter
from .settings import ProviderConfig

RULE_COMMENT = "snakemake-storage-plugin-datalake stage-in"
RULE_POLL = 2.0  # seconds between looks at the batch's replicas


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
        each poll is one bulk replica lookup plus one query for this account's stuck rules."""
        expression = self.cfg.site_rse or ""
        dids = [i.did for i in infos]
        started = time.monotonic()
        began, first_rule = time.time(), len(self.rules_created)
        self._add_rules(dids, expression)
        problems: dict[Did, str] = {}
        remaining = set(dids)
        deadline = started + self.cfg.stage_timeout
        reported = -1
        while remaining:
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
            time.sleep(RULE_POLL)
        self.log.info(f"datalake: staging by rule to {expression} done in "
                      f"{time.monotonic() - started:.1f} s ({len(problems)} failed)")
        self._record("rule", expression, began, infos, problems,
                     rules=self.rules_created[first_rule:])
        return {d: problems.get(d) for d in dids}

    def _record(self, policy: str, destination: str, began: float, infos: Sequence[FileInfo],
                problems: dict[Did, str], **ids: list[str]) -> None:
        if self.journal is None:
            return
        moved = [i for i in infos if i.did not in problems]
        self.journal.record("site_transfer", policy=policy, destination=destination,
                            start=began, files=[str(i.did) for i in moved],
                            bytes=sum(i.bytes for i in moved),
                            failed={str(d): why for d, why in problems.items()}, **ids)

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
        """Copy each file from its best replica; a failed copy is retried from the next one."""
        site = self.site_rses()[0]
        dest_pfns = self._destinations(site, [i.did for i in infos])
        result: dict[Did, str | None] = {}
        tried: dict[Did, list[str]] = {i.did: [] for i in infos}
        queue = {i.did: [s for s in self.sources_of(i) if not s.at_site] for i in infos}
        by_did = {i.did: i for i in infos}
        fts = self._fts_for(site)
        began, jobs = time.time(), []
        while queue:
            batch: dict[str, Did] = {}
            transfers = []
            for did, candidates in list(queue.items()):
                if not candidates:
                    result[did] = "; ".join(tried[did]) or "no replica FTS could read"
                    del queue[did]
                    continue
                source = candidates.pop(0)
                info = by_did[did]
                transfer = FtsTransfer(source.pfn, dest_pfns[did], info.bytes, info.adler32)
                transfers.append(transfer)
                batch[transfer.destination] = did
                tried[did].append(f"{source.rse} via FTS")
            if not transfers:
                break
            done: list[dict[str, Any]] = []
            def submitted(job_id: str, n: int = len(transfers)) -> None:
                jobs.append(job_id)
                self.log.info(f"datalake: FTS job {job_id} at {fts.endpoint}: {n} files to "
                              f"{site}")

            for outcome in fts.run(transfers, self.cfg.stage_timeout, on_submit=submitted):
                did = batch[outcome.transfer.destination]
                if outcome.ok:
                    info = by_did[did]
                    done.append({"scope": did.scope, "name": did.name, "bytes": info.bytes,
                                 "adler32": info.adler32, "pfn": outcome.transfer.destination})
                    del queue[did]
                else:
                    tried[did][-1] += f": {outcome.reason}"
                    self.log.warning(f"datalake: FTS copy of {did} from "
                                     f"{outcome.transfer.source} failed: {outcome.reason}")
            if done:
                self.rucio().add_replicas(site, done)
                self.replicas_registered.extend((site, Did(f["scope"], f["name"])) for f in done)
                self.log.info(f"datalake: {len(done)} files copied by FTS to {site} and "
                              "registered")
        self.resolver.refresh(list(by_did))
        for did in by_did:
            if did not in result:
                result[did] = None if self._at_site(did) else "copied but not available at site"
        self._record("fts", site, began, infos,
                     {d: why for d, why in result.items() if why is not None},
                     fts_jobs=jobs, fts_endpoint=[fts.endpoint])
        return result

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
            self._fts[endpoint] = FtsAdapter(endpoint, token=self.cfg.fts_token,
                                             verify=self.cfg.tls(),
                                             x509_proxy=os.environ.get("X509_USER_PROXY"))
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
