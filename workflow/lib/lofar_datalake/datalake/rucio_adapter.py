"""The one place that talks to Rucio (client API only: a user machine may have `rucio-clients`).

Rucio reads its configuration from RUCIO_CONFIG on first use; callers set that (or pass explicit
connection settings) before creating a `RucioAdapter`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checksums import adler32_of_file

log = logging.getLogger(__name__)


class DataLakeError(RuntimeError):
    """An operation on the DataLake failed; the message names what was tried and why."""


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


class RucioAdapter:
    def __init__(self, client: Any | None = None) -> None:
        from rucio.client import Client

        self.client = client if client is not None else Client()

    @property
    def account(self) -> str:
        return str(self.client.account)

    # -- catalogue ---------------------------------------------------------------------------
    def list_replicas(self, dids: Sequence[Did], schemes: Sequence[str] | None = None,
                      ) -> list[dict[str, Any]]:
        """One bulk request for many files. `sort='random'`: the default geoip sort costs a
        lookup per file on the server."""
        if not dids:
            return []
        return list(self.client.list_replicas(
            [d.as_dict() for d in dids], schemes=list(schemes) if schemes else None,
            all_states=True, sort="random",
        ))

    def rse_attributes(self, rse: str) -> dict[str, Any]:
        return dict(self.client.list_rse_attributes(rse))

    # -- data movement ---------------------------------------------------------------------
    def upload(self, path: Path, did: Did, rse: str) -> str:
        """Upload one file (Rucio registers it and verifies adler32); returns its adler32."""
        from rucio.client.uploadclient import UploadClient
        from rucio.common.exception import RucioException

        item = {
            "path": str(path), "rse": rse, "did_scope": did.scope, "did_name": did.name,
            "register_after_upload": True,
        }
        try:
            UploadClient(self.client, logger=log).upload([item])
        except RucioException as exc:
            raise DataLakeError(f"upload of {path} as {did} to {rse} failed: {exc}") from exc
        return adler32_of_file(path)

    def download(self, did: Did, rse: str, dest_dir: Path) -> Path:
        """Download one file from one RSE into dest_dir (checksum verified by Rucio)."""
        from rucio.client.downloadclient import DownloadClient
        from rucio.common.exception import RucioException

        # Rucio keeps the `/`-separated name under base_dir but does not create its parents.
        (dest_dir / did.name).parent.mkdir(parents=True, exist_ok=True)
        item = {"did": str(did), "rse": rse, "base_dir": str(dest_dir), "no_subdir": True}
        try:
            results = DownloadClient(self.client, logger=log).download_dids([item])
        except RucioException as exc:
            raise DataLakeError(f"download of {did} from {rse} failed: {exc}") from exc
        return Path(results[0]["dest_file_paths"][0])

    # -- rules -----------------------------------------------------------------------------
    def add_rule(self, dids: Iterable[Did], rse_expression: str, copies: int = 1,
                 lifetime: int | None = None, activity: str | None = None) -> str:
        from rucio.common.exception import RucioException

        try:
            ids = self.client.add_replication_rule(
                [d.as_dict() for d in dids], copies, rse_expression, lifetime=lifetime,
                activity=activity, asynchronous=False,
            )
        except RucioException as exc:
            raise DataLakeError(f"rule to {rse_expression} failed: {exc}") from exc
        return str(ids[0])

    def rule_state(self, rule_id: str) -> RuleState:
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
