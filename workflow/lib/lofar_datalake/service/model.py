"""The service's records: researchers, their limits, and submissions through their states.

A submission is checked when it arrives (nothing runs if it is bad: it is recorded as
`rejected` with the reason), queued, run by a worker (`running`), and ends `done` (the
comparison ran; its verdict says equivalent or not) or `failed` (a run failed, the wall-time
limit ended it, or the service stopped while it ran more often than it may be retried).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class State(StrEnum):
    REJECTED = "rejected"
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    @property
    def final(self) -> bool:
        return self in (State.REJECTED, State.DONE, State.FAILED)


@dataclass(frozen=True)
class Limits:
    """What one researcher may use; every limit is enforced and shown on their pages."""

    concurrent_runs: int = 1  # runs at once; more wait in the queue
    wall_time_s: int = 3600  # a run still going after this is stopped and failed
    archive_bytes: int = 50 * 1024**2  # an uploaded workflow archive, unpacked
    disk_bytes: int = 5 * 1024**3  # a run's directory (workflow, both runs, the local copy)
    staged_bytes: int = 10 * 1024**3  # the DIDs a submission reads, by Rucio's sizes


@dataclass(frozen=True)
class Researcher:
    name: str  # the login
    password_hash: str  # argon2id (argon2-cffi), never the password; "": no password login
    rucio_account: str
    scopes: tuple[str, ...]  # the Rucio scopes whose DIDs their workflows may read
    credential: str  # path of a file holding their Rucio password (mode 0600); "": none
    limits: Limits = Limits()
    oidc_subject: str = ""  # their `sub` at the service's OpenID issuer (--oidc-issuer), if any
    token_client: TokenClient | None = None  # their runs get access tokens instead of a password


@dataclass(frozen=True)
class TokenClient:
    """The researcher's OAuth client at the DataLake's issuer, registered for them by its IAM
    with the WLCG storage scopes they may have: the service gets their runs' access tokens with
    it (the client-credentials grant), and the secret never reaches a run."""

    id: str
    secret_file: str  # path of a file holding the client's secret (mode 0600)


@dataclass(frozen=True)
class Source:
    """Where a submission's workflow came from."""

    kind: str  # "archive" or "git"
    ref: str  # the archive's file name, or "<url>@<commit>"


@dataclass
class Submission:
    id: int
    researcher: str
    site: str
    source: Source
    snakefile: str  # relative to the workflow's root
    configfile: str  # relative to the workflow's root
    dids: list[str]
    state: State
    created: dt.datetime
    started: dt.datetime | None = None
    finished: dt.datetime | None = None
    attempts: int = 0  # times a worker started it
    progress: str = ""  # the last progress line the run printed
    exit_code: int | None = None
    error: str = ""  # why it was rejected or failed, for the researcher
    verdict: dict[str, Any] = field(default_factory=dict)  # compare's verdict.json, when done


@dataclass(frozen=True)
class ProbeSettings:
    """The periodic site-health probes (health.py): who runs them and how often."""

    login: str  # the researchers file's entry whose Rucio account, scope and secret they use
    interval_s: int = 600  # seconds between the starts of two rounds over every site x RSE
    timeout_s: int = 300  # one probe still running after this is stopped and failed
    x509_proxy: str = ""  # the storage credential the probes write with (writing needs one)


@dataclass(frozen=True)
class ProbeResult:
    """One probe of a site reading one RSE: staged to the site's RSE, read, and a product
    written there."""

    site: str
    rse: str
    ok: bool
    checked_at: dt.datetime
    seconds: float
    detail: str = ""  # why it failed: the last lines of the error, no secret in them
