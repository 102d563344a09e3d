"""The Snakemake side of the `datalake` storage plugin: translates Snakemake's calls into the
DataLake logic of `datalake_core` (resolution, staging, outputs)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import fields
from typing import Any

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_storage_plugins.common import Operation
from snakemake_interface_storage_plugins.io import IOCacheStorageInterface, Mtime
from snakemake_interface_storage_plugins.storage_object import (
    StorageObjectGlob,
    StorageObjectRead,
    StorageObjectWrite,
)
from snakemake_interface_storage_plugins.storage_provider import (
    ExampleQuery,
    QueryType,
    StorageProviderBase,
    StorageQueryValidationResult,
)

from datalake_core import job_auth
from datalake_core import query as dlquery
from datalake_core.errors import DataLakeError, QueryError, SettingsError
from datalake_core.journal import Journal
from datalake_core.mirror import OfflineCopy
from datalake_core.outputs import Outputs
from datalake_core.resolver import FileInfo, Resolver, Template
from datalake_core.rucio_adapter import Did, RucioAdapter
from datalake_core.settings import ProviderConfig
from datalake_core.staging import Stager

from . import snakemake_internals as internals
from .settings import CheckedSettings, describe

# How long a retrieval waits for its siblings (other inputs Snakemake retrieves in the same
# round) to queue up, so that they are staged as one batch.
BATCH_WINDOW = 0.05


@contextlib.contextmanager
def workflow_errors(prefix: str = "") -> Iterator[None]:
    """The core's errors as WorkflowError, which Snakemake reports as the message alone: the
    core's messages already say what failed and what to check, a traceback would bury that.
    Also a decorator (`@workflow_errors()`) for methods that need it throughout."""
    try:
        yield
    except SettingsError as exc:  # settings made without the command line (the API)
        raise WorkflowError(describe(exc)) from None
    except (DataLakeError, QueryError) as exc:
        raise WorkflowError(f"{prefix}{exc}") from None


class StorageProvider(StorageProviderBase):
    @workflow_errors("datalake storage plugin: ")
    def __post_init__(self) -> None:
        settings = self.settings
        raw = settings.values() if isinstance(settings, CheckedSettings) else {
            f.name: getattr(settings, f.name) for f in fields(settings)
        } if settings is not None else {}
        self.cfg = ProviderConfig.parse(raw)
        self.run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
        self._rucio: RucioAdapter | None = None
        self._rucio_lock = threading.Lock()
        self._objects: weakref.WeakSet[StorageObject] = weakref.WeakSet()
        self._producers: dict[str, str] = {}
        self.jobs = job_auth.JobAuthority(self.cfg, as_job=internals.running_as_job())
        # A job stores its products under its submitter's run; its journal is its own file.
        self.run_id = self.jobs.run_id() or self.run_id
        self.journal = Journal(self.jobs.journal_id(self.run_id))
        self.offline: OfflineCopy | None = None
        if self.cfg.local_copy is not None:
            # Verification runs: a local copy answers in place of the DataLake.
            self.offline = OfflineCopy(self.cfg.local_copy, self.logger, self.journal,
                                       link_mode=self.cfg.link_mode)
            self.resolver: Resolver | OfflineCopy = self.offline
            self.stager: Stager | OfflineCopy = self.offline
            self.outputs: Outputs | OfflineCopy = self.offline
            return
        resolver = Resolver(self.rucio, prefetch_limit=self.cfg.prefetch_limit)
        outputs = Outputs(self.cfg, self.rucio, self.logger, self.run_id, journal=self.journal,
                          resolver=resolver)
        if self.jobs.workflow():
            outputs.workflow = str(self.jobs.workflow())
        self.resolver, self.outputs = resolver, outputs
        self.stager = Stager(self.cfg, resolver, self.rucio, self.logger,
                             stage_ahead=self._workflow_inputs, journal=self.journal,
                             scheduler=lambda: internals.scheduler_name(self._dag()))

    @workflow_errors()
    def rucio(self) -> RucioAdapter:
        """The Rucio client, connected on first use (not while Snakemake merely starts)."""
        with self._rucio_lock:
            if self._rucio is None:
                self._rucio = self.jobs.connect(self.run_id)
            return self._rucio

    @classmethod
    def example_queries(cls) -> list[ExampleQuery]:
        return [
            ExampleQuery("datalake://lofar/L123456/L123456_SB000_uv.MS.tar",
                         "a file (DID lofar:L123456/L123456_SB000_uv.MS.tar)", QueryType.ANY),
            ExampleQuery("datalake://lofar/L123456/L123456_SB{sb}_uv.MS.tar",
                         "one file per subband, via a wildcard", QueryType.INPUT),
        ]

    def rate_limiter_key(self, query: str, operation: Operation) -> Any:
        return "datalake"

    def default_max_requests_per_second(self) -> float:
        return 100.0

    def use_rate_limiter(self) -> bool:
        # Questions are answered from bulk passes; limiting them one by one would only delay.
        return False

    @classmethod
    def is_valid_query(cls, query: str) -> StorageQueryValidationResult:
        reason = dlquery.validation_error(query)
        return StorageQueryValidationResult(query=query, valid=reason is None, reason=reason)

    def register(self, obj: StorageObject) -> None:
        self._objects.add(obj)

    def _dag(self) -> Any:
        """Snakemake's DAG, reached through a storage object's file. Not part of the plugin
        interface: callers must cope with None."""
        for obj in list(self._objects):
            dag = internals.dag_of(obj)
            if dag is not None:
                return dag
        return None

    def _own(self, files: Iterable[Any]) -> Iterable[StorageObject]:
        for obj in internals.storage_objects(files):
            if isinstance(obj, StorageObject) and obj.provider is self and obj.did is not None:
                yield obj

    def _workflow_inputs(self) -> list[Did]:
        """The DataLake inputs of every job Snakemake still has to run, in the order of the
        jobs, for stage-ahead and tape recalls."""
        dag = self._dag()
        dids: dict[Did, None] = {}
        with contextlib.suppress(Exception):
            for job in internals.jobs_to_run_in_order(dag):
                for obj in self._own(internals.job_inputs(job)):
                    dids[obj.did] = None  # type: ignore[index]
        return list(dids)

    def rule_of(self, query: str) -> str | None:
        """The name of the rule writing `query`, for provenance (None if Snakemake's DAG is not
        reachable)."""
        if query not in self._producers:
            dag = self._dag()
            with contextlib.suppress(Exception):
                for job in internals.all_jobs(dag):
                    for obj in self._own(internals.job_outputs(job)):
                        self._producers[obj.query] = internals.rule_name(job)
        return self._producers.get(query)


CATALOGUE_SECOND = 1.0  # the resolution of Rucio's timestamps


def stored_mtime(info: FileInfo) -> float:
    """Rucio keeps whole seconds: a file stored in the second its local source was written
    would seem older than that source, and a rerun would store it again. The end of its second
    is never earlier than the moment it was made."""
    return info.created_at + CATALOGUE_SECOND


class StorageObject(StorageObjectRead, StorageObjectWrite, StorageObjectGlob):
    provider: StorageProvider

    @workflow_errors()
    def __post_init__(self) -> None:
        self.did: Did | None = None
        self.provider.register(self)
        if dlquery.has_wildcards(self.query):
            self.provider.resolver.register_template(self.query)
            return
        self.did = dlquery.parse(self.query)
        self.provider.resolver.register(self.did)

    # -- identity ------------------------------------------------------------------------------
    def local_footprint(self) -> int:
        # Snakemake checks free space after the batch was staged: a file in place needs none.
        path = self.local_path()
        return 0 if path.is_symlink() or path.exists() else self.size()

    def local_suffix(self) -> str:
        # `scope/name`; for a template the wildcards stay in, as Snakemake expects.
        return self.query[len(dlquery.SCHEME):]

    def get_inventory_parent(self) -> str | None:
        return None

    def _did(self) -> Did:
        if self.did is None:
            raise WorkflowError(f"{self.query}: still contains wildcards")
        return self.did

    @workflow_errors()
    def _info(self) -> FileInfo | None:
        resolver = self.provider.resolver
        info = resolver.get(self._did())
        if info is not None and isinstance(resolver, Resolver):
            resolver.require_file(info)
        return info

    # -- what Snakemake asks while building the DAG ---------------------------------------------
    async def inventory(self, cache: IOCacheStorageInterface) -> None:
        """Resolve everything pending in one pass and put all of it into Snakemake's cache."""
        if self.did is None or self._overwrite_local_path is not None:
            return
        self._info()
        prefix = self.provider.local_prefix
        for did, info in self.provider.resolver.known().items():
            key = str(prefix / f"{did.scope}/{did.name}")
            if key in cache.exists_in_storage:
                continue
            if info is not None and info.did_type != "FILE":
                continue  # left to exists(), which says what the DID is instead
            exists = info is not None and info.exists
            cache.exists_in_storage[key] = exists
            if info is not None and exists:
                cache.mtime[key] = Mtime(storage=stored_mtime(info))
                cache.size[key] = info.bytes

    def exists(self) -> bool:
        info = self._info()
        return info is not None and info.exists

    def mtime(self) -> float:
        return stored_mtime(self._require())

    def size(self) -> int:
        return self._require().bytes

    def checksum(self) -> str | None:
        # Rucio's adler32 is no hashlib algorithm, so Snakemake could not compare it with a local
        # file; md5 is, when the catalogue has it. Otherwise Snakemake checksums the local copy.
        info = self._require()
        return f"md5:{info.md5}" if info.md5 else None

    def _require(self) -> FileInfo:
        info = self._info()
        if info is None:
            raise WorkflowError(f"{self._did()} is not in the DataLake")
        return info

    # -- inputs --------------------------------------------------------------------------------
    async def managed_retrieve(self) -> None:
        if self.did is None:
            return await super().managed_retrieve()
        stager = self.provider.stager
        future = stager.request(self.did, self.local_path())
        # Let the other retrievals of this round queue up, then stage them together off the
        # event loop; the base class then only picks up this file's result.
        await asyncio.sleep(BATCH_WINDOW)
        await asyncio.get_running_loop().run_in_executor(None, stager.flush)
        # Awaited (not just waited for): an asyncio future whose exception nobody takes is
        # printed with a traceback when it is collected. The outcome itself reaches Snakemake
        # through retrieve_object, which the base class calls next.
        with contextlib.suppress(Exception):
            await asyncio.wrap_future(future)
        return await super().managed_retrieve()

    @workflow_errors()
    def retrieve_object(self) -> None:
        self.provider.stager.stage(self._did(), self.local_path())

    def cleanup(self) -> None:
        # A symlink or hardlink is removed as a link: the replica it points to stays.
        path = self.local_path()
        with contextlib.suppress(FileNotFoundError):
            if path.is_symlink() or path.is_file():
                path.unlink()

    # -- outputs -------------------------------------------------------------------------------
    @workflow_errors()
    def store_object(self) -> None:
        did = self._did()
        rule = self.provider.rule_of(self.query)
        provenance = {
            "created_by": "snakemake-storage-plugin-datalake",
            "snakemake_run": self.provider.run_id,
            "snakemake_workflow": str(self.provider.outputs.workflow),
        }
        if rule:
            provenance["snakemake_rule"] = str(rule)
        # Outputs tells the resolver what it stored (no request); a local copy is looked at again.
        self.provider.outputs.store(did, self.local_path(), provenance)
        if self.provider.offline is not None:
            self.provider.offline.refresh([did])

    @workflow_errors()
    def remove(self) -> None:
        did = self._did()
        self.provider.outputs.remove(did)
        self.provider.resolver.refresh([did])

    # -- glob_wildcards ------------------------------------------------------------------------
    @workflow_errors()
    def list_candidate_matches(self) -> Iterable[str]:
        template = Template.from_query(self.query)
        if template is None:
            return [self.query] if self.did is not None else []
        offline = self.provider.offline
        if offline is not None:
            base = offline.root / template.scope
            names = [str(p.relative_to(base)) for p in base.rglob("*") if p.is_file()]
        else:
            names = self.provider.rucio().list_files(template.scope, template.glob)
        # A name that would not be a valid query (e.g. with characters a shell or a file system
        # would interpret) never becomes a wildcard value.
        queries = (dlquery.to_query(Did(template.scope, n)) for n in names
                   if template.regex.fullmatch(n))
        return [q for q in queries if dlquery.validation_error(q) is None]

