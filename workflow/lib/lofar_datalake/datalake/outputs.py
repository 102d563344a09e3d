"""Workflow outputs into the DataLake: upload, registration, the run's dataset, replication rules
and provenance metadata; and undoing exactly what this run did.

Rucio files are immutable: an output that exists already with the same adler32 is not uploaded
again, one with a different adler32 is an error.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .checksums import adler32_of_file, same_adler32
from .journal import Journal
from .rucio_adapter import DataLakeError, Did, DuplicateRuleError, RucioAdapter
from .settings import ProviderConfig

DEFAULT_DATASET = "{scope}:snakemake/{workflow}/{date}"


@dataclass
class _Created:
    """What this run added for one output, so that `remove` touches nothing else."""

    rules: list[str] = field(default_factory=list)
    dataset: Did | None = None


@dataclass
class Outputs:
    cfg: ProviderConfig
    rucio: Callable[[], RucioAdapter]
    log: logging.Logger
    run_id: str
    workflow: str = field(default_factory=lambda: _safe(Path.cwd().name))
    journal: Journal | None = None
    created: dict[Did, _Created] = field(default_factory=dict)
    _datasets_ready: set[Did] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def dataset_for(self, did: Did) -> Did:
        template = self.cfg.output_dataset or DEFAULT_DATASET
        text = template.format(scope=did.scope, workflow=self.workflow, run=self.run_id,
                               date=dt.datetime.now(dt.UTC).strftime("%Y%m%d"))
        scope, sep, name = text.partition(":")
        return Did(scope, name) if sep else Did(did.scope, text)

    def store(self, did: Did, path: Path, provenance: dict[str, str]) -> str:
        """Put `path` into the DataLake as `did`; returns what was done."""
        if not path.is_file():
            raise DataLakeError(f"{did}: the local output {path} is not a file")
        rse = self.cfg.output_rse
        if not rse:
            raise DataLakeError(f"{did}: no output RSE; set --storage-datalake-output-rse")
        rucio = self.rucio()
        checksum = adler32_of_file(path)
        existing = rucio.get_metadata(did)
        record = self.created.setdefault(did, _Created())
        if existing is not None:
            if not same_adler32(existing.get("adler32"), checksum):
                raise DataLakeError(
                    f"{did} exists in the DataLake with adler32 {existing.get('adler32')} "
                    f"({existing.get('bytes')} bytes) but the new output has adler32 {checksum} "
                    f"({path.stat().st_size} bytes); Rucio files are immutable: write the "
                    "output under a new name")
            action = "already in the DataLake with the same adler32; not uploaded again"
        else:
            rucio.upload(path, did, rse)
            # The upload added a rule keeping the file on the output RSE: it is this run's.
            record.rules.extend(
                str(r["id"]) for r in rucio.list_did_rules(did)
                if r.get("account") == rucio.account and r.get("rse_expression") == rse)
            action = f"uploaded to {rse} (adler32 {checksum})"
        self._attach(did, record)
        self._add_rules(did, record)
        meta = {**provenance, **dict(self.cfg.output_metadata)}
        if meta:
            rucio.set_metadata(did, meta)
        self.log.info(f"datalake: {did} {action}")
        if self.journal is not None:
            self.journal.record("output", did=str(did), bytes=path.stat().st_size,
                                adler32=checksum, rse=rse, action=action, rules=record.rules,
                                dataset=str(record.dataset) if record.dataset else None)
        return action

    def _attach(self, did: Did, record: _Created) -> None:
        rucio = self.rucio()
        dataset = self.dataset_for(did)
        with self._lock:
            if dataset not in self._datasets_ready:
                if rucio.ensure_dataset(dataset):
                    self.log.info(f"datalake: created dataset {dataset}")
                self._datasets_ready.add(dataset)
        if rucio.attach(dataset, [did]):
            record.dataset = dataset

    def _add_rules(self, did: Did, record: _Created) -> None:
        rucio = self.rucio()
        for rule in self.cfg.output_rules:
            try:
                rule_id = rucio.add_rule([did], rule.rse_expression, copies=rule.copies,
                                         lifetime=rule.lifetime)
            except DuplicateRuleError:
                continue
            record.rules.append(rule_id)
            self.log.info(f"datalake: rule {rule_id}: {rule.copies} copies of {did} on "
                          f"{rule.rse_expression}")

    def remove(self, did: Did) -> list[str]:
        """Delete the rules and the dataset attachment this run made for `did`; nothing of
        anyone else's. Without rules, Rucio's reaper deletes the replicas in time."""
        record = self.created.pop(did, None)
        if record is None:
            self.log.info(f"datalake: {did} was not written by this run; left untouched")
            return []
        rucio = self.rucio()
        undone = []
        if record.dataset is not None:
            rucio.detach(record.dataset, [did])
            undone.append(f"detached from {record.dataset}")
        for rule_id in record.rules:
            rucio.delete_rule(rule_id)
            undone.append(f"rule {rule_id} deleted")
        return undone


def _safe(text: str) -> str:
    """A workflow name usable inside a DID name."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", text) or "workflow"
