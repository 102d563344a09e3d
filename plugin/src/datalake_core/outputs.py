"""Workflow outputs into the DataLake: upload, registration, the run's dataset, replication rules
and provenance metadata; and undoing exactly what this run did.

Rucio files are immutable: an output that exists already with the same adler32 is not uploaded
again, one with a different adler32 is an error.

A failed upload registers nothing (a file is registered only once its bytes are on the RSE,
which is checked again after a failure) and keeps the product: Snakemake deletes the outputs
of a failed job, so a hard link to it is kept under `.snakemake/datalake/unstored/<scope>/<name>`
until a later run stores the same bytes.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checksums import adler32_of_file, same_adler32
from .errors import StorageTargetExists
from .journal import Journal, OutputEvent, OutputFailedEvent
from .resolver import FileInfo, Replica, Resolver
from .rucio_adapter import DataLakeError, Did, DuplicateRuleError, RucioAdapter
from .settings import ProviderConfig

DEFAULT_DATASET = "{scope}:snakemake/{workflow}/{date}"
UNSTORED_DIR = Path(".snakemake") / "datalake" / "unstored"


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
    # The run's answers about DIDs: outputs it saw missing are not asked about again.
    resolver: Resolver | None = None
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
        size, checksum = path.stat().st_size, adler32_of_file(path)
        meta = {**provenance, **dict(self.cfg.output_metadata)}
        dataset = self.dataset_for(did)
        record = self.created.setdefault(did, _Created())
        # This run asked about every output while Snakemake built the DAG: a file that was not
        # there is uploaded without asking again (the write never replaces a file at its PFN,
        # and Rucio refuses the registration if the DID appeared with other content).
        existing = None if self._known_missing(did) else rucio.get_metadata(did)
        if existing is None:
            existing = self._upload(did, path, size, checksum, meta, dataset)
        if existing is None:
            record.dataset = dataset
            record.rules.append(self._keep_rule(did, rse))
            action = f"uploaded to {rse} (adler32 {checksum})"
        else:
            self._same_content(did, existing, size, checksum)
            action = "already in the DataLake with the same adler32; not uploaded again"
            self._ensure(dataset)
            if rucio.attach(dataset, [did]):
                record.dataset = dataset
            if meta:
                rucio.set_metadata(did, meta)
        self._add_rules(did, record)
        self._answer(did, size, checksum, rse, new=existing is None)
        self.log.info(f"datalake: {did} {action}")
        self._drop_kept(did, checksum)
        if self.journal is not None:
            self.journal.record(OutputEvent(
                did=str(did), bytes=size, adler32=checksum, rse=rse,
                action=action, rules=record.rules,
                dataset=str(record.dataset) if record.dataset else None))
        return action

    def _known_missing(self, did: Did) -> bool:
        return self.resolver is not None and self.resolver.answered_missing(did)

    def _upload(self, did: Did, path: Path, size: int, checksum: str, meta: dict[str, str],
                dataset: Did) -> dict[str, Any] | None:
        """Upload and register a new file; None when done, or the metadata of the file found
        at its place meanwhile (registered by someone else: its content decides)."""
        rse = str(self.cfg.output_rse)
        rucio = self.rucio()
        overwrite = False
        while True:
            try:
                rucio.upload_into(path, did, rse, dataset, size=size, adler32=checksum,
                                  meta=meta, verify=self.cfg.tls(), overwrite=overwrite,
                                  before_register=lambda: self._ensure(dataset))
                return None
            except StorageTargetExists as exc:
                found = rucio.get_metadata(did)
                if found is not None or overwrite:
                    return found
                # Bytes Rucio does not know of (a failed earlier upload): replaced.
                self.log.info(f"datalake: {did}: {exc}, unregistered; writing over it")
                overwrite = True
            except DataLakeError as exc:
                raise self._upload_failed(did, path, rse, checksum, exc) from None

    def _same_content(self, did: Did, existing: dict[str, Any], size: int, checksum: str
                      ) -> None:
        if not same_adler32(existing.get("adler32"), checksum):
            raise DataLakeError(
                f"{did} exists in the DataLake with adler32 {existing.get('adler32')} "
                f"({existing.get('bytes')} bytes) but the new output has adler32 {checksum} "
                f"({size} bytes); Rucio files are immutable: write the output under a new name")

    def _keep_rule(self, did: Did, rse: str) -> str:
        """The rule keeping a new file on the output RSE (Rucio's upload client adds it too)."""
        try:
            return self.rucio().add_rule([did], rse, lifetime=self.cfg.output_lifetime or None)
        except DataLakeError as exc:
            raise DataLakeError(f"{exc}; {did} is registered on {rse} without a rule keeping "
                                "it there") from None

    def _answer(self, did: Did, size: int, checksum: str, rse: str, *, new: bool) -> None:
        """Tell the resolver what the DataLake now holds, for Snakemake's questions after the
        store (exists, mtime), without asking Rucio: the new replica with the PFNs of the RSE's
        protocols (in their write order), created when Rucio answered (not before the server's
        own creation time, so a local copy never looks older than the file). A file that
        existed is asked about again."""
        if self.resolver is None:
            return
        if not new:
            self.resolver.refresh([did])
            return
        pfns = tuple(t.pfn for t in self.rucio().write_targets(rse, did))
        self.resolver.record(FileInfo(did=did, bytes=size, adler32=checksum, md5=None,
                                      created_at=time.time(),
                                      replicas=(Replica(rse, "AVAILABLE", pfns),)))

    def kept_path(self, did: Did) -> Path:
        """Where the product of a failed upload of `did` is kept (under the working dir)."""
        return Path.cwd() / UNSTORED_DIR / did.scope / did.name

    def _upload_failed(self, did: Did, path: Path, rse: str, checksum: str,
                       exc: DataLakeError) -> DataLakeError:
        """Keep the product, check that Rucio holds nothing for it, say both in the error."""
        kept = self.kept_path(did)
        try:
            _keep(path, kept)
            where = f"the product is kept at {kept}"
        except OSError as error:
            where = f"the product could not be kept ({error}); it is at {path} until Snakemake " \
                    "removes the failed job's outputs"
        registered = self._registered(did)
        if self.journal is not None:
            self.journal.record(OutputFailedEvent(
                did=str(did), rse=rse, adler32=checksum, reason=str(exc),
                kept=str(kept) if kept.exists() else None, registered=registered))
        return DataLakeError(f"{did} not stored: {exc}. {registered}; {where}; run the workflow "
                             f"again once {rse} accepts writes to store it")

    def _registered(self, did: Did) -> str:
        """What Rucio has for `did` after a failed upload, in words."""
        rucio = self.rucio()
        try:
            if rucio.get_metadata(did) is None:
                return "Nothing was registered in Rucio"
            states = {rse: state for r in rucio.list_replicas([did])
                      for rse, state in r.get("states", {}).items()}
        except Exception as error:  # Rucio itself may be what failed
            return f"Could not check what Rucio registered for it ({error})"
        return f"Rucio has the file with replicas {states or 'none'}"

    def _drop_kept(self, did: Did, checksum: str) -> None:
        """A kept product is redundant once the same bytes are stored."""
        kept = self.kept_path(did)
        try:
            if kept.is_file() and same_adler32(adler32_of_file(kept), checksum):
                kept.unlink()
                self.log.info(f"datalake: {did} stored; removed the copy kept at {kept}")
        except OSError:
            pass

    def _ensure(self, dataset: Did) -> None:
        """Create the run's dataset if missing: one request per dataset and run."""
        with self._lock:
            if dataset not in self._datasets_ready:
                if self.rucio().ensure_dataset(dataset):
                    self.log.info(f"datalake: created dataset {dataset}")
                self._datasets_ready.add(dataset)

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


def _keep(path: Path, kept: Path) -> None:
    """A hard link where possible (no extra space), else a copy; never a partial file."""
    kept.parent.mkdir(parents=True, exist_ok=True)
    temp = kept.with_name(f".{kept.name}.{os.getpid()}.part")
    temp.unlink(missing_ok=True)
    try:
        try:
            os.link(path, temp)
        except OSError:  # another file system, or no hard links there
            shutil.copyfile(path, temp)
        os.replace(temp, kept)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _safe(text: str) -> str:
    """A workflow name usable inside a DID name."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", text) or "workflow"
