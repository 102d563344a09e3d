"""Bytes moved by a run, from the records of the systems that moved them: Rucio's request
history for files staged by rules (the conveyor's transfers through FTS), the catalogue sizes
of the files the provider's own FTS jobs copied and registered, and the provider's journal for
files it read directly (https or a copy). Links to replicas already at the site move nothing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from datalake_core.journal import InputEvent, SiteTransferEvent
from datalake_core.mirror import RSE as LOCAL_COPY
from datalake_core.rucio_adapter import Did, RucioAdapter


def _did(text: str) -> Did:
    scope, _, name = text.partition(":")
    return Did(scope, name)


def moved_bytes(
    events: Sequence[InputEvent],
    site_transfers: Sequence[SiteTransferEvent],
    rucio: Callable[[], RucioAdapter] | None,
) -> dict[str, Any]:
    """Totals by way of moving, each with where the figure comes from."""
    by_rule = by_fts = fts_jobs_rule = 0
    rule_files = rule_records = rule_sized = 0
    fts_jobs: set[str] = set()
    rucio_rules: set[str] = set()
    for transfer in site_transfers:
        if transfer.policy == "rule":
            rucio_rules.update(transfer.rules or [])
            for name in transfer.files:
                rule_files += 1
                record = (
                    rucio().transfer_record(_did(name), transfer.destination)
                    if rucio
                    else None
                )
                if record and str(record.get("state", "")).upper() in ("DONE", "D"):
                    by_rule += int(record.get("bytes") or 0)
                    rule_records += 1
                    if record.get("external_id"):
                        fts_jobs.add(str(record["external_id"]))
                        fts_jobs_rule += 1
                elif record is None and rucio:
                    # No history this account may read (Rucio shows requests to their
                    # owners and admins): the file was not at the site and is now, so its
                    # size is what the rule moved.
                    meta = rucio().get_metadata(_did(name)) or {}
                    by_rule += int(meta.get("bytes") or 0)
                    rule_sized += 1
        elif transfer.policy == "fts":
            by_fts += transfer.bytes
            fts_jobs.update(transfer.fts_jobs or [])
    # Reads from the local copy moved nothing in this run: the copy was made beforehand.
    direct = sum(e.bytes for e in events if e.how.moved and e.rse not in (None, LOCAL_COPY))
    sources = []
    if rule_files:
        sources.append(f"Rucio request history ({rule_records}/{rule_files} staged files)")
    if rule_sized:
        sources.append(f"Rucio catalogue sizes of {rule_sized} files staged by rules whose "
                       "request history the account may not read")
    if by_fts:
        sources.append("Rucio catalogue sizes of the files the provider's FTS jobs copied")
    if direct:
        sources.append("provider journal (direct reads)")
    return {
        "bytes": by_rule + by_fts + direct,
        "by_rule": by_rule,
        "by_fts": by_fts,
        "direct": direct,
        "fts_jobs": len(fts_jobs),
        "rucio_rules": len(rucio_rules),
        "bytes_source": "; ".join(sources) or "nothing moved (inputs linked or local)",
    }
