"""Short-lived credentials for the jobs a Snakemake run sends to a batch system.

A job at a site (a Slurm job, an HTCondor job on a worker without a shared file system) runs the
storage plugin itself and must talk to Rucio, but must never hold the account's password: a
batch system keeps jobs' environments and files in its records, and a worker is not the user's
machine. The submitting Snakemake process therefore logs in once and writes a *job credential*:
one private file (0600) with a Rucio auth token (Rucio's REST `/auth/userpass` or `/auth/x509`;
the server fixes its lifetime, one hour), its expiry, the run id, the Rucio client
configuration without any secret, and the X.509 proxy if the user has one (Rucio's WebDAV
protocol refuses to run without one; grid jobs carry their proxy the same way). Jobs find the
file by the path in `SNAKEMAKE_STORAGE_DATALAKE_JOB_CREDENTIAL` (a path, harmless in records)
either where it is (shared file system) or by the same relative path in their sandbox (HTCondor
file transfer), and set up a private Rucio configuration that holds only the token.

In token mode (auth type `oidc`) the credential carries the user's WLCG bearer token instead of
a Rucio token: the job's private configuration then says `auth_type = oidc` and
`BEARER_TOKEN_FILE` names a private copy of the token (`bearer`).

The submitting process renews the file at half the token's lifetime (in token mode: discovers
the token again, which the user's agent renews), so jobs submitted later get a fresh token; a
job that reaches Rucio after its token expired fails with a message saying so.
"""

from __future__ import annotations

import atexit
import configparser
import io
import json
import os
import shutil
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import DataLakeError, JobCredentialError

# Relative to the run's working directory: where the submit host writes it and where a job
# finds it in its sandbox when HTCondor transferred it (keep it out of .snakemake/datalake,
# which jobs transfer back).
DEFAULT_PATH = Path(".snakemake") / "datalake-credential" / "job-credential.json"
# Options of a Rucio client configuration that never leave the submit host.
SECRET_OPTIONS = ("password", "oidc_refresh_token", "client_secret")


@dataclass(frozen=True)
class JobCredential:
    account: str
    run_id: str
    expires_at: float  # POSIX seconds
    rucio_config: dict[str, dict[str, str]]  # the submit host's, secrets removed
    token: str = field(repr=False)
    x509_proxy: str | None = field(default=None, repr=False)
    workflow: str | None = None  # the submitter's name for the run's products dataset
    bearer: bool = False  # `token` is a WLCG bearer token (token mode), not a Rucio token

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> JobCredential:
        data = json.loads(text)
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def seconds_left(self, now: float | None = None) -> float:
        return self.expires_at - (time.time() if now is None else now)

    @property
    def kind(self) -> str:
        return "bearer token" if self.bearer else "Rucio token"


def public_config(path: Path) -> dict[str, dict[str, str]]:
    """The Rucio client configuration at `path` without its secrets."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path)
    return {
        section: {k: v for k, v in parser[section].items() if k not in SECRET_OPTIONS}
        for section in parser.sections()
    }


def _expiry(header: str | None) -> float:
    """Rucio's `X-Rucio-Auth-Token-Expires` (`%a, %d %b %Y %H:%M:%S UTC`); one hour if absent."""
    from email.utils import parsedate_to_datetime

    if header:
        try:
            return parsedate_to_datetime(header.replace("UTC", "GMT")).timestamp()
        except (TypeError, ValueError):
            pass
    return time.time() + 3600


def request_token(auth_host: str, account: str, auth_type: str, username: str | None,
                  password: str | None, x509_proxy: str | None, ca: str | bool,
                  timeout: float) -> tuple[str, float]:
    """A fresh Rucio auth token and its expiry, from the server's REST authentication."""
    import requests

    headers = {"X-Rucio-Account": account, "X-Rucio-AppID": "lofar-datalake-jobs"}
    kwargs: dict[str, Any] = {"headers": headers, "verify": ca}
    if auth_type == "userpass":
        if not (username and password):
            raise JobCredentialError(
                f"no user name and password for account {account}: jobs get a token made with "
                "them (SNAKEMAKE_STORAGE_DATALAKE_PASSWORD or the Rucio configuration)")
        headers |= {"X-Rucio-Username": username, "X-Rucio-Password": password}
        url = f"{auth_host.rstrip('/')}/auth/userpass"
    elif auth_type == "x509_proxy" and x509_proxy:
        kwargs["cert"] = x509_proxy
        url = f"{auth_host.rstrip('/')}/auth/x509_proxy"
    else:
        raise JobCredentialError(
            f"jobs cannot get a token for auth type {auth_type}: use userpass or x509_proxy, "
            "or --storage-datalake-job-auth inherit (jobs then log in as this process does)")
    try:
        answer = requests.get(url, timeout=timeout, **kwargs)
    except requests.RequestException as exc:
        raise JobCredentialError(f"cannot reach {auth_host} for the jobs' token: "
                                 f"{type(exc).__name__}") from None
    token = answer.headers.get("X-Rucio-Auth-Token")
    if answer.status_code != 200 or not token:
        raise JobCredentialError(f"Rucio at {auth_host} gave no token for account {account} "
                                 f"(HTTP {answer.status_code})")
    return token, _expiry(answer.headers.get("X-Rucio-Auth-Token-Expires"))


def write(credential: JobCredential, path: Path) -> None:
    """Atomically, mode 0600 from the first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    fd, tmp = tempfile.mkstemp(prefix=".job-credential-", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        handle.write(credential.to_json())
    os.replace(tmp, path)


def find(configured: Path) -> Path:
    """The credential file: where the submit host wrote it, or by the same relative path (or
    name) in this job's directory, where HTCondor's file transfer puts it."""
    candidates = [configured]
    if configured.is_absolute():
        candidates += [Path.cwd() / DEFAULT_PATH, Path.cwd() / configured.name]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.R_OK):
            return candidate
    raise JobCredentialError(
        f"job credential {configured} not found (nor in {Path.cwd()}): the submitting Snakemake "
        "writes it; where jobs share no file system it must travel with them (HTCondor: "
        f"htcondor_transfer_input_files: {DEFAULT_PATH})")


def read(configured: Path) -> JobCredential:
    path = find(configured)
    try:
        credential = JobCredential.from_json(path.read_text())
    except (ValueError, TypeError, KeyError) as exc:
        raise JobCredentialError(f"job credential {path} is not readable: "
                                 f"{type(exc).__name__}") from None
    if credential.seconds_left() <= 0:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(credential.expires_at))
        raise JobCredentialError(
            f"the job's {credential.kind} (account {credential.account}) expired at {stamp}: "
            "the job started, or reached the DataLake, more than the token's lifetime after it was "
            "submitted; resubmit it (the submitting Snakemake renews the token)")
    return credential


def install(credential: JobCredential) -> Path:
    """A private Rucio configuration for this job that authenticates with the token only;
    RUCIO_CONFIG (and X509_USER_PROXY, when the credential carries a proxy; BEARER_TOKEN_FILE,
    when it carries a bearer token) point at it; the directory is removed when the process
    exits. Returns the configuration's path."""
    private = Path(tempfile.mkdtemp(prefix="lofar-datalake-job-"))  # 0700
    # The token outlives no job: gone when the job's process ends (its commands run before).
    atexit.register(shutil.rmtree, private, True)
    token_file = private / "rucio-token"
    bearer_file = private / "bearer-token"
    parser = configparser.ConfigParser(interpolation=None)
    for section, options in credential.rucio_config.items():
        parser[section] = dict(options)
    if not parser.has_section("client"):
        parser["client"] = {}
    parser["client"]["account"] = credential.account
    parser["client"]["auth_token_file_path"] = str(token_file)
    # Rucio's client wants a password option for userpass even when it holds a token; empty,
    # so that an expired token fails to authenticate instead of finding anything to log in with.
    parser["client"]["password"] = ""
    if credential.bearer:
        parser["client"]["auth_type"] = "oidc"
    buffer = io.StringIO()
    parser.write(buffer)
    config = private / "rucio.cfg"
    _private_file(bearer_file if credential.bearer else token_file, credential.token)
    _private_file(config, buffer.getvalue())
    if credential.bearer:
        os.environ.pop("BEARER_TOKEN", None)  # it would come first in discovery
        os.environ["BEARER_TOKEN_FILE"] = str(bearer_file)
    os.environ.pop("RUCIO_AUTH_TYPE", None)  # inherited; it would win over the configuration
    os.environ["RUCIO_CONFIG"] = str(config)
    from rucio.common.config import clean_cached_config

    clean_cached_config()  # Rucio keeps the first configuration it read for the process
    if credential.x509_proxy:
        proxy = private / "x509-proxy.pem"
        _private_file(proxy, credential.x509_proxy)
        os.environ["X509_USER_PROXY"] = str(proxy)
    return config


def _private_file(path: Path, text: str) -> None:
    """Written 0600 from the first byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


class Renewer:
    """Keeps the credential file fresh while the submitting process runs: a new token at half
    the current one's lifetime (a daemon thread; it dies with the process)."""

    def __init__(self, issue: Any, path: Path, first: JobCredential) -> None:
        self._issue = issue
        self._path = path
        self._current = first
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-credential", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(max(30.0, self._current.seconds_left() / 2)):
            try:
                self._current = self._issue()
                write(self._current, self._path)
            except DataLakeError:
                continue  # the next round tries again; jobs still hold the current token

    def stop(self) -> None:
        self._stop.set()
