"""The one place that talks to FTS (through the `fts3` REST client): submit a job of many
copies, wait for it (cancelling it when it outlives its time), and report each file's outcome.

Jobs ask FTS for no retries of their own (`retry=-1`): the caller resubmits failed files with
its own bounded backoff, so the number of attempts and the time they take do not depend on
the FTS server's default retry policy.

A token given as a function (token mode: `storage_credentials.for_fts`) is asked for again
before each request; when it returns a renewed token, the next request uses that.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .bearer_token import redact
from .errors import DataLakeError, FtsTimeout

FINAL_JOB_STATES = {"FINISHED", "FAILED", "FINISHEDDIRTY", "CANCELED"}
# Status queries that may fail in a row (e.g. while the FTS server restarts) before a wait
# gives up; the job itself survives a restart of the server.
MAX_POLL_ERRORS = 5
NO_FTS_RETRY = -1


@dataclass(frozen=True)
class FtsTransfer:
    source: str
    destination: str
    size: int
    adler32: str | None


@dataclass(frozen=True)
class FtsOutcome:
    transfer: FtsTransfer
    ok: bool
    reason: str | None


class FtsAdapter:
    def __init__(self, endpoint: str, *, token: str | Callable[[], str] | None = None,
                 verify: str | bool = True, x509_proxy: str | None = None) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._verify = verify
        self._x509_proxy = x509_proxy
        self._token_source = token if callable(token) else None
        self._token = token() if callable(token) else token
        self.context = self._context(self._token)

    def _context(self, token: str | None) -> Any:
        from fts3.rest.client import easy

        verify = self._verify
        # The client verifies against `capath` whenever verification is on (by default the grid
        # directory /etc/grid-security/certificates), ignoring `verify`: a CA bundle goes there.
        capath = verify if isinstance(verify, str) else None
        try:
            if token:
                return easy.Context(self.endpoint, fts_access_token=token, verify=verify,
                                    capath=capath)
            if self.endpoint.startswith("http://"):
                # Over plain http no client certificate can be presented.
                return _AnonymousContext(self.endpoint, no_creds=True, verify=verify)
            return easy.Context(self.endpoint, ucert=self._x509_proxy, ukey=self._x509_proxy,
                                verify=verify, capath=capath)
        except Exception as exc:  # the client raises bare Exceptions and M2Crypto errors
            raise DataLakeError(f"cannot use FTS at {self.endpoint}: "
                                f"{redact(str(exc))}") from None

    def _fresh(self) -> Any:
        """The context to use now: one with the renewed token if it was renewed."""
        if self._token_source is not None:
            token = self._token_source()
            if token != self._token:
                self.context = self._context(token)
                self._token = token
        return self.context

    def submit(self, transfers: Sequence[FtsTransfer]) -> str:
        from fts3.rest.client import easy

        files = [
            easy.new_transfer(t.source, t.destination, filesize=t.size,
                              checksum=f"ADLER32:{t.adler32}" if t.adler32 else None)
            for t in transfers
        ]
        # Overwrite: a destination left unregistered by an interrupted run is replaced, and the
        # target checksum check guarantees what ends up there.
        job = easy.new_job(files, verify_checksum="both" if all(t.adler32 for t in transfers)
                           else "none", overwrite=True, reuse=False, retry=NO_FTS_RETRY,
                           metadata={"issuer": "snakemake-storage-plugin-datalake"})
        context = self._fresh()
        try:
            return str(easy.submit(context, job))
        except Exception as exc:
            raise DataLakeError(f"FTS submission to {self.endpoint} failed: "
                                f"{redact(str(exc))}") from None

    def wait(self, job_id: str, timeout: float, poll: float = 1.0,
             progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        from fts3.rest.client import easy

        deadline = time.monotonic() + timeout
        errors = 0
        while True:
            context = self._fresh()
            try:
                status = easy.get_job_status(context, job_id, list_files=True)
            except Exception as exc:
                errors += 1
                if errors >= MAX_POLL_ERRORS or time.monotonic() > deadline:
                    raise DataLakeError(f"FTS job {job_id} at {self.endpoint}: {exc}") from None
                time.sleep(poll)
                continue
            errors = 0
            if progress is not None:
                progress(status)
            if status["job_state"] in FINAL_JOB_STATES:
                return dict(status)
            if time.monotonic() > deadline:
                raise FtsTimeout(f"FTS job {job_id} at {self.endpoint} not finished after "
                                 f"{timeout:.0f} s (state {status['job_state']})")
            time.sleep(poll)

    def cancel(self, job_id: str) -> str | None:
        """Cancel a job (best effort); its state afterwards, None if FTS did not answer."""
        from fts3.rest.client import easy

        try:
            return str(easy.cancel(self._fresh(), job_id))
        except Exception:
            return None

    def run(self, transfers: Sequence[FtsTransfer], timeout: float,
            progress: Callable[[dict[str, Any]], None] | None = None,
            on_submit: Callable[[str], None] | None = None) -> list[FtsOutcome]:
        """One job for all transfers; the outcome of each (a failed file is not an error).
        A job still running after `timeout` is canceled and its unfinished files failed."""
        if not transfers:
            return []
        job_id = self.submit(transfers)
        if on_submit is not None:
            on_submit(job_id)
        late: str | None = None
        try:
            status = self.wait(job_id, timeout, progress=progress)
        except FtsTimeout as exc:
            # Not left running: a copy landing after the caller has given up would be a
            # replica nobody registers.
            canceled = self.cancel(job_id)
            late = f"{exc}; {'job canceled' if canceled else 'cancelling it failed'}"
            status = self._last_status(job_id)
        by_dest = {f.get("dest_surl"): f for f in status.get("files", [])}
        outcomes = []
        for t in transfers:
            f = by_dest.get(t.destination)
            if f is not None and f.get("file_state") == "FINISHED":
                outcomes.append(FtsOutcome(t, True, None))
            elif late is not None:
                outcomes.append(FtsOutcome(t, False, late))
            elif f is None:
                outcomes.append(FtsOutcome(t, False, f"not in FTS job {job_id}"))
            else:
                outcomes.append(FtsOutcome(t, False, str(f.get("reason") or
                                                         f.get("file_state"))))
        return outcomes

    def _last_status(self, job_id: str) -> dict[str, Any]:
        from fts3.rest.client import easy

        try:
            return dict(easy.get_job_status(self._fresh(), job_id, list_files=True))
        except Exception:
            return {}


def _anonymous_context_class() -> type:
    from fts3.rest.client import easy

    class AnonymousContext(easy.Context):
        # fts3 3.14 reads this attribute even when `no_creds` skipped setting it.
        fts_access_token = None

    return AnonymousContext


def _AnonymousContext(*args: Any, **kwargs: Any) -> Any:
    return _anonymous_context_class()(*args, **kwargs)
