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

from . import storage_write
from .did import Did as Did
from .errors import AlreadyExists, NotFound
from .errors import DataLakeError as DataLakeError
from .errors import DuplicateRuleError as DuplicateRuleError
from .errors import RucioAuthError as RucioAuthError
from .errors import RucioUnavailable as RucioUnavailable
from .polling import poll_delays
from .replica_io import ReplicaIO
from .rucio_connection import GuardedClient, new_client, wrap

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


class RucioAdapter(ReplicaIO):
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

    def distance(self, source: str, destination: str) -> int | None:
        """Rucio's distance from one RSE to another (lower is nearer); None where none is set."""
        with rucio_errors(f"reading the distance from {source} to {destination}"):
            found = list(self.client.get_distance(source, destination))
        return int(found[0]["distance"]) if found else None

    def expand_rse_expression(self, expression: str) -> list[str]:
        # Rucio's reason says what is wrong with the expression.
        with rucio_errors(f"RSE expression {expression!r}", failed=""):
            return sorted(str(r["rse"]) for r in self.client.list_rses(expression))

    # -- where replicas are written (the bytes themselves: replica_io) ---------------------
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

    def has_replica(self, did: Did, rse: str) -> bool:
        return any(rse in r.get("rses", {}) for r in self.list_replicas([did]))

    def keep_on(self, did: Did, rse: str, lifetime: int | None = None) -> None:
        """The rule an upload adds for a new file: one copy on `rse`, for this account."""
        with rucio_errors(f"rule for the upload of {did} to {rse}"):
            self.client.add_replication_rule([did.as_dict()], 1, rse, lifetime=lifetime)

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

    def account_rules(self, rse_expression: str) -> dict[Did, dict[str, Any]]:
        """This account's rules to `rse_expression` (any state), by DID, in one request."""
        with rucio_errors(f"listing the rules to {rse_expression}"):
            rules = self.client.list_replication_rules(
                {"account": self.account, "rse_expression": rse_expression})
            return {Did(r["scope"], r["name"]): dict(r) for r in rules}

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
        """Wait until the rule is OK; raise with the rule's error if it gets STUCK or times out.
        One request per look, 0.25 s after the last at first, doubling up to `poll` seconds."""
        deadline = time.monotonic() + timeout
        delays = poll_delays(poll)
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
            time.sleep(next(delays))

