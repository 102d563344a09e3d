"""The one place that talks to Rucio (client API only: a user machine may have `rucio-clients`).

Rucio reads its configuration from RUCIO_CONFIG on first use; callers set that (or pass explicit
connection settings) before creating a `RucioAdapter`.

Rucio's exceptions do not leave this module: `rucio_errors` turns them into the core's errors
(datalake_core.errors), naming the operation, the DID and the RSE.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from . import storage_write
from .checksums import adler32_of_file, same_adler32
from .errors import AlreadyExists, NotFound, StorageWriteError, TransferFailed
from .errors import DataLakeError as DataLakeError
from .errors import DuplicateRuleError as DuplicateRuleError
from .errors import RucioAuthError as RucioAuthError
from .errors import RucioUnavailable as RucioUnavailable
from .materialise import copy
from .rucio_connection import GuardedClient, new_client, wrap
from .transfer_http import fetch

# Rucio's bulk endpoints accept large lists, but one request per 1,000 DIDs keeps each answer
# (and a server-side query) of a predictable size.
BULK_CHUNK = 1000


@contextlib.contextmanager
def rucio_errors(what: str, failed: str = "failed") -> Iterator[None]:
    """Rucio's exceptions raised inside as the core's errors: `what` was being done, then
    `failed` (empty where Rucio's reason says it all), then Rucio's reason.

    The only place that knows Rucio's exception classes. The class of the error tells the
    answers callers act on (not found, exists already) from failures. Connection and login
    failures arrive here already explained (RucioUnavailable, RucioAuthError) and pass
    unchanged, as does anything that is not Rucio's."""
    from rucio.common import exception as rucio

    try:
        yield
    except rucio.RucioException as exc:
        if isinstance(exc, rucio.DuplicateRule):
            raise DuplicateRuleError(f"{what} exists already: {exc}") from exc
        kind: type[DataLakeError] = DataLakeError
        if isinstance(exc, rucio.DataIdentifierNotFound | rucio.RuleNotFound):
            kind = NotFound
        elif isinstance(exc, rucio.DataIdentifierAlreadyExists | rucio.FileAlreadyExists):
            kind = AlreadyExists
        raise kind(f"{what} {failed}: {exc}" if failed else f"{what}: {exc}") from exc


@dataclass(frozen=True)
class Did:
    scope: str
    name: str

    def __str__(self) -> str:
        return f"{self.scope}:{self.name}"

    def as_dict(self) -> dict[str, str]:
        return {"scope": self.scope, "name": self.name}


@dataclass(frozen=True)
class RuleState:
    rule_id: str
    state: str  # OK | REPLICATING | STUCK | SUSPENDED | WAITING_APPROVAL | INJECT
    locks_ok: int
    locks_replicating: int
    locks_stuck: int
    error: str | None


def chunks(items: Sequence[Any], size: int = BULK_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class RucioAdapter:
    def __init__(self, client: Any | None = None, timeout: float | None = None) -> None:
        from .request_counter import install_if_requested

        install_if_requested()
        # Every call goes through the guard: an unreachable server or refused credentials
        # become a DataLakeError saying what to check, not a traceback.
        self.client: GuardedClient = (new_client(None, None, None, timeout) if client is None
                                      else wrap(client, timeout))
        # An RSE's write protocols, read once: they do not change while a run stores products.
        self._write_protocols: dict[str, dict[str, Any]] = {}

    @classmethod
    def connect(cls, rucio_config: Path | None = None, account: str | None = None,
                auth_type: str | None = None, username: str | None = None,
                password: str | None = None, timeout: float | None = None) -> RucioAdapter:
        """A client with explicit settings; anything not given comes from the Rucio config.
        The password is handed to Rucio only, never formatted into a message."""
        if rucio_config is not None:
            # Rucio reads its config file once per process, from this variable.
            os.environ["RUCIO_CONFIG"] = str(rucio_config)
        from .request_counter import install_if_requested

        install_if_requested()  # before the client makes its first (authentication) request
        creds = None
        if username is not None or password is not None:
            creds = {"username": username, "password": password}
        return cls(new_client(account, auth_type, creds, timeout))

    @property
    def account(self) -> str:
        return str(self.client.account)

    # -- catalogue ---------------------------------------------------------------------------
    def list_replicas(self, dids: Sequence[Did], schemes: Sequence[str] | None = None,
                      ) -> list[dict[str, Any]]:
        """One bulk request per 1,000 files; DIDs that do not exist are simply absent.
        `sort='random'`: the default geoip sort costs a lookup per file on the server."""
        out: list[dict[str, Any]] = []
        for part in chunks(list(dids)):
            with rucio_errors(f"listing the replicas of {len(part)} DIDs ({part[0]}, ...)"):
                out.extend(self.client.list_replicas(
                    [d.as_dict() for d in part], schemes=list(schemes) if schemes else None,
                    all_states=True, sort="random",
                ))
        return out

    def get_metadata_bulk(self, dids: Sequence[Did]) -> list[dict[str, Any]]:
        """The DID table columns (created_at, bytes, adler32, md5, type) of many DIDs, one
        request per 1,000; DIDs that do not exist are absent."""
        out: list[dict[str, Any]] = []
        for part in chunks(list(dids)):
            with rucio_errors(f"reading the metadata of {len(part)} DIDs ({part[0]}, ...)"):
                out.extend(self.client.get_metadata_bulk([d.as_dict() for d in part]))
        return out

    def get_metadata(self, did: Did) -> dict[str, Any] | None:
        try:
            with rucio_errors(f"reading the metadata of {did}"):
                return dict(self.client.get_metadata(did.scope, did.name))
        except NotFound:
            return None

    def add_replicas(self, rse: str, files: Sequence[dict[str, Any]]) -> None:
        """Register replicas (scope, name, bytes, adler32[, pfn]) that are already on `rse`."""
        for part in chunks(list(files)):
            with rucio_errors(f"registering {len(part)} replicas on {rse}"):
                self.client.add_replicas(rse, list(part))

    def list_files(self, scope: str, pattern: str) -> list[str]:
        """Names of the files in `scope` matching a Rucio wildcard pattern (`*`)."""
        with rucio_errors(f"listing the files {scope}:{pattern}"):
            return [str(n) for n in
                    self.client.list_dids(scope, {"name": pattern}, did_type="file")]

    def collection_files(self, did: Did, sample: int = 3) -> tuple[int, list[Did]]:
        """How many files a dataset or container holds (at any depth), and the first few."""
        count = 0
        first: list[Did] = []
        with rucio_errors(f"listing the files of {did}"):
            for f in self.client.list_files(did.scope, did.name):
                count += 1
                if len(first) < sample:
                    first.append(Did(str(f["scope"]), str(f["name"])))
        return count, first

    def set_metadata(self, did: Did, meta: dict[str, Any]) -> None:
        with rucio_errors(f"setting metadata {sorted(meta)} on {did}"):
            self.client.set_metadata_bulk(did.scope, did.name, meta)

    # -- datasets --------------------------------------------------------------------------
    def ensure_dataset(self, dataset: Did) -> bool:
        """Create the dataset unless it exists; True if this call created it."""
        try:
            with rucio_errors(f"creating dataset {dataset}"):
                self.client.add_dataset(dataset.scope, dataset.name)
        except AlreadyExists:
            return False
        return True

    def attach(self, dataset: Did, dids: Sequence[Did]) -> bool:
        """Attach files to a dataset; False if they were attached already."""
        try:
            with rucio_errors(f"attaching {len(dids)} files to {dataset}"):
                self.client.attach_dids(dataset.scope, dataset.name,
                                        [d.as_dict() for d in dids])
        except AlreadyExists:
            return False
        return True

    def register_into(self, dataset: Did, rse: str, files: Sequence[dict[str, Any]]) -> None:
        """Register new files (scope, name, bytes, adler32[, meta]) whose bytes are on `rse`:
        the DIDs with their metadata, their replicas on `rse` and their place in `dataset`, in
        one request and one transaction (`attach_dids` with `rse`, as Rucio's upload client
        registers into a dataset). Rucio refuses all of it if a DID exists with another size or
        adler32."""
        with rucio_errors(f"registering {len(files)} replicas on {rse} in {dataset}"):
            self.client.attach_dids(dataset.scope, dataset.name, list(files), rse=rse)

    def detach(self, dataset: Did, dids: Sequence[Did]) -> None:
        with rucio_errors(f"detaching {len(dids)} files from {dataset}"):
            self.client.detach_dids(dataset.scope, dataset.name, [d.as_dict() for d in dids])

    # -- RSEs --------------------------------------------------------------------------------
    def rse_attributes(self, rse: str) -> dict[str, Any]:
        with rucio_errors(f"reading the attributes of {rse}"):
            return dict(self.client.list_rse_attributes(rse))

    def rse_info(self, rse: str) -> dict[str, Any]:
        """The RSE with its protocols, in the form `rsemanager` functions take."""
        with rucio_errors(f"reading RSE {rse}"):
            return dict(self.client.get_rse(rse))

    def expand_rse_expression(self, expression: str) -> list[str]:
        # Rucio's reason says what is wrong with the expression.
        with rucio_errors(f"RSE expression {expression!r}", failed=""):
            return sorted(str(r["rse"]) for r in self.client.list_rses(expression))

    # -- data movement ---------------------------------------------------------------------
    def upload(self, path: Path, did: Did, rse: str, *, verify: str | bool | None = None
               ) -> str:
        """Upload one file and register it as Rucio's upload client does: the bytes onto `rse`
        (storage_write: TLS verified against `verify`, default the CA the Rucio client trusts),
        their size checked, then a replica with bytes and adler32 and, for a new file, a rule
        on `rse` for this account. Returns the adler32.

        A failed upload registers nothing: if registering fails, the bytes written are deleted
        again. A file registered already with the same adler32 gains a replica on `rse`
        (nothing is done if it has one); with another adler32 it is an error."""
        size, checksum = path.stat().st_size, adler32_of_file(path)
        existing = self.get_metadata(did)
        if existing is not None:
            if not same_adler32(existing.get("adler32"), checksum):
                raise AlreadyExists(f"{did} is registered with adler32 {existing.get('adler32')}"
                                    f" but {path} has {checksum}; Rucio files are immutable")
            if self._has_replica(did, rse):
                return checksum
        tls = self.storage_tls() if verify is None else verify
        try:
            written = storage_write.write(path, self.write_targets(rse, did), size=size,
                                          adler32=checksum, verify=tls)
        except StorageWriteError as exc:
            raise type(exc)(f"upload of {path} as {did} to {rse} failed: {exc}") from None
        try:
            self.add_replicas(rse, [{**did.as_dict(), "bytes": size, "adler32": checksum}])
        except DataLakeError as exc:
            raise type(exc)(f"{exc}; {self._undo(did, written, tls)}") from None
        if existing is None:
            try:
                with rucio_errors(f"rule for the upload of {did} to {rse}"):
                    self.client.add_replication_rule([did.as_dict()], 1, rse)
            except DataLakeError as exc:
                raise type(exc)(f"{exc}; {did} is registered on {rse} without a rule keeping it "
                                "there") from None
        return checksum

    def upload_into(self, path: Path, did: Did, rse: str, dataset: Did, *, size: int,
                    adler32: str, meta: dict[str, Any], verify: str | bool | None = None,
                    overwrite: bool = False, before_register: Callable[[], Any] | None = None,
                    ) -> storage_write.Target:
        """Upload a file the catalogue does not hold and register it with one request
        (`register_into`): bytes and metadata, the replica on `rse`, attached to `dataset`. No
        rule is added (the caller adds those it needs in its own requests).

        The bytes are written only where no file is yet (storage_write `exclusive`;
        StorageTargetExists otherwise) unless `overwrite` (the caller found that Rucio knows
        nothing of the file there). `before_register` runs once the bytes are written (the
        caller creates the dataset there, so a failed write leaves nothing in Rucio). A failed
        registration deletes the bytes again."""
        tls = self.storage_tls() if verify is None else verify
        try:
            written = storage_write.write(path, self.write_targets(rse, did), size=size,
                                          adler32=adler32, verify=tls, exclusive=not overwrite)
        except StorageWriteError as exc:
            raise type(exc)(f"upload of {path} as {did} to {rse} failed: {exc}") from None
        file = {**did.as_dict(), "bytes": size, "adler32": adler32, "meta": meta}
        try:
            if before_register is not None:
                before_register()
            self.register_into(dataset, rse, [file])
        except DataLakeError as exc:
            raise type(exc)(f"{exc}; {self._undo(did, written, tls)}") from None
        return written

    def write_targets(self, rse: str, did: Did) -> list[storage_write.Target]:
        """Where each write protocol of `rse` puts `did`, in the RSE's order of preference
        (the RSE's protocols are read once per adapter)."""
        from rucio.rse import rsemanager

        info = self._write_protocols.get(rse)
        if info is None:
            info = self._write_protocols[rse] = self.rse_info(rse)
        targets = []
        with rucio_errors(f"the write protocols of {rse}"):
            for proto in rsemanager.get_protocols_ordered(info, "write", domain="wan"):
                scheme = str(proto["scheme"])
                pfns = rsemanager.lfns2pfns(info, [did.as_dict()], operation="write",
                                            scheme=scheme)
                targets.append(storage_write.Target(rse, scheme, str(pfns[str(did)]),
                                                    str(proto.get("prefix") or "/")))
        return targets

    def storage_tls(self) -> str | bool:
        """What storage certificates are checked against when the caller does not say: the CA
        the Rucio client trusts for its server (`ca_cert`, $X509_CERT_DIR), else the system's."""
        ca = getattr(self.client.raw, "ca_cert", None)
        return ca if isinstance(ca, str) and ca else True

    def _has_replica(self, did: Did, rse: str) -> bool:
        return any(rse in r.get("rses", {}) for r in self.list_replicas([did]))

    def _undo(self, did: Did, written: storage_write.Target, tls: str | bool) -> str:
        """Delete the bytes of a failed registration, unless the replica is registered after all
        (a concurrent upload of the same file, an answer lost after the server acted): bytes
        without a replica are harmless, a replica without bytes is not."""
        try:
            if self._has_replica(did, written.rse):
                return f"{did} is registered on {written.rse} all the same: its bytes stay"
        except DataLakeError as exc:
            return (f"whether {did} is registered on {written.rse} is unknown ({exc}): the "
                    f"bytes written to {written.pfn} stay")
        try:
            storage_write.remove(written, verify=tls)
        except DataLakeError as exc:
            return f"the bytes written to {written.pfn} could not be deleted again: {exc}"
        return f"the bytes written to {written.pfn} were deleted again"

    def download(self, did: Did, rse: str, dest_dir: Path, *, verify: str | bool | None = None,
                 timeout: float = 60.0) -> Path:
        """Download one file from one RSE to dest_dir/<name>, size and adler32 verified, through
        the RSE's protocols in its order of preference: a `file` PFN is copied if the file is
        on this machine, an https one read with TLS verified (transfer_http; `verify` as for
        `upload`). Rucio's download client is not used: its WebDAV protocol verifies nothing."""
        found = self.list_replicas([did], schemes=["file", "https", "davs"])
        pfns = sorted((int(i.get("priority") or 0), p) for r in found
                      for p, i in r.get("pfns", {}).items() if i.get("rse") == rse)
        if not pfns:
            raise NotFound(f"download of {did} from {rse}: no replica there")
        size, checksum = int(found[0]["bytes"]), found[0].get("adler32")
        dest = dest_dir / did.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            for _, pfn in pfns:
                local = Path(unquote(urlsplit(pfn).path))
                if pfn.startswith("file://") and local.is_file():
                    copy(local, dest, size=size, adler32=checksum)
                    return dest
                if pfn.startswith(("https://", "davs://")):
                    fetch(pfn.replace("davs://", "https://", 1), dest, size=size,
                          adler32=checksum, timeout=timeout,
                          verify=self.storage_tls() if verify is None else verify)
                    return dest
            raise TransferFailed(f"no replica readable here among {', '.join(p for _, p in pfns)}")
        except TransferFailed as exc:
            raise DataLakeError(f"download of {did} from {rse} failed: {exc}") from None

    # -- rules -----------------------------------------------------------------------------
    def add_rule(self, dids: Iterable[Did], rse_expression: str, copies: int = 1,
                 lifetime: int | None = None, activity: str | None = None,
                 comment: str | None = None) -> str:
        """Rules for the DIDs in one request; returns the first rule's id."""
        return self.add_rules(dids, rse_expression, copies, lifetime, activity, comment)[0]

    def add_rules(self, dids: Iterable[Did], rse_expression: str, copies: int = 1,
                  lifetime: int | None = None, activity: str | None = None,
                  comment: str | None = None) -> list[str]:
        """One request; Rucio makes one rule per DID and returns all their ids."""
        with rucio_errors(f"rule to {rse_expression}"):
            ids = self.client.add_replication_rule(
                [d.as_dict() for d in dids], copies, rse_expression, lifetime=lifetime,
                activity=activity, asynchronous=False, comment=comment,
            )
        return [str(i) for i in ids]

    def stuck_rules(self, rse_expression: str) -> dict[Did, str]:
        """This account's STUCK rules to `rse_expression`, with Rucio's reason, in one request."""
        with rucio_errors(f"listing the stuck rules to {rse_expression}"):
            rules = self.client.list_replication_rules(
                {"account": self.account, "state": "S", "rse_expression": rse_expression})
            return {Did(r["scope"], r["name"]): str(r.get("error") or "rule STUCK")
                    for r in rules}

    def list_did_rules(self, did: Did) -> list[dict[str, Any]]:
        with rucio_errors(f"listing the rules of {did}"):
            return [dict(r) for r in self.client.list_did_rules(did.scope, did.name)]

    def transfer_record(self, did: Did, rse: str) -> dict[str, Any] | None:
        """Rucio's record of the last transfer of `did` to `rse` (bytes, FTS job id, source,
        state), from the request history; None if there is none."""
        for lister in (self.client.list_request_history_by_did, self.client.list_request_by_did):
            try:
                with rucio_errors(f"the transfer record of {did} to {rse}"):
                    return dict(lister(did.name, rse, scope=did.scope))
            except (RucioUnavailable, RucioAuthError):
                raise
            except (DataLakeError, StopIteration, TypeError, ValueError):
                pass  # no record there: try the next list
        return None

    def delete_rule(self, rule_id: str) -> None:
        try:
            with rucio_errors(f"deleting rule {rule_id}"):
                self.client.delete_replication_rule(rule_id, purge_replicas=False)
        except NotFound:
            pass  # gone already: what was asked for

    def rule_state(self, rule_id: str) -> RuleState:
        with rucio_errors(f"reading rule {rule_id}"):
            info = self.client.get_replication_rule(rule_id)
        return RuleState(
            rule_id=rule_id, state=str(info["state"]), locks_ok=int(info["locks_ok_cnt"]),
            locks_replicating=int(info["locks_replicating_cnt"]),
            locks_stuck=int(info["locks_stuck_cnt"]), error=info.get("error"),
        )

    def wait_rule(self, rule_id: str, timeout: float, poll: float = 1.0,
                  progress: Callable[[RuleState], None] | None = None) -> RuleState:
        """Wait until the rule is OK; raise with the rule's error if it gets STUCK or times out."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.rule_state(rule_id)
            if progress is not None:
                progress(state)
            if state.state == "OK":
                return state
            if state.state == "STUCK":
                raise DataLakeError(f"rule {rule_id} is STUCK: {state.error or 'no reason given'}")
            if time.monotonic() > deadline:
                raise DataLakeError(
                    f"rule {rule_id} not OK after {timeout:.0f} s (state {state.state}, "
                    f"{state.locks_replicating} replicating); are the conveyor daemons running?")
            time.sleep(poll)

