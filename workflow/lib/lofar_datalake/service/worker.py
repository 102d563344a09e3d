"""Workers: each takes the oldest queued submission whose researcher is under their limit of
concurrent runs, and runs it as `lofar-datalake compare` at the chosen site, in a container
(sandbox.py) as the researcher's system user, with the researcher's own Rucio identity. While
it runs the worker records its progress and enforces the wall-time and disk limits; at the end
it stores the verdict. When the service stops, running comparisons are stopped too and stay
`running` in the database, so that the next start resumes them (`Store.recover`).
"""

from __future__ import annotations

import configparser
import contextlib
import io
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..compare.rules import DEFAULT_RULES_FILE
from . import run_credentials, runs, sandbox
from .model import ProbeSettings, Researcher, State, Submission
from .runs import RunPaths
from .store import Store
from .token_client import Issuer, TokenError

CLI = str(Path(sys.executable).with_name("lofar-datalake"))
CHECK_EVERY_S = 2.0
DISK_EVERY_S = 10.0
STOP_GRACE_S = 20.0


@dataclass(frozen=True)
class SiteEntry:
    name: str
    profile: Path  # absolute
    rse: str
    reads: tuple[str, ...] = ()  # other RSEs its jobs may read from (the sites file's `reads`)


@dataclass(frozen=True)
class Settings:
    """What the workers need of the service's configuration."""

    state: Path
    researchers: Mapping[str, Researcher]
    sites: Mapping[str, SiteEntry]
    rucio_base: Path  # a Rucio client configuration whose servers the runs talk to
    ca_bundle: Path  # the CA that signed the DataLake's servers
    max_attempts: int = 2  # starts of one submission, counting resumes after a restart
    poll_s: float = 1.0
    probes: ProbeSettings | None = None  # the site-health probes; None: no probes run
    issuer: Issuer | None = None  # the DataLake's token issuer (researchers' token clients)
    # The service's other private files (what each is: its path), e.g. the researchers file and
    # the TLS key: their directories are hidden from the runs, as those below are.
    private: Mapping[str, Path] = field(default_factory=dict)

    @property
    def walls(self) -> sandbox.Walls:
        """What no run may see (sandbox.walls): the state directory, and the directories of
        the Rucio configuration, the researchers' credentials, the probes' X.509 proxy and the
        private files. None without root: then nothing runs in a container."""
        if not sandbox.isolated():
            return sandbox.Walls()
        files = {"--rucio-config": self.rucio_base, **self.private,
                 **_secret_files(self.researchers)}
        if self.probes is not None and self.probes.x509_proxy:
            files["--probe-x509-proxy"] = Path(self.probes.x509_proxy)
        return sandbox.walls([("the state directory (--state)", self.state),
                              *((what, path.parent) for what, path in files.items())],
                             needed=[DEFAULT_RULES_FILE, *(s.profile for s in self.sites.values())])


def _secret_files(researchers: Mapping[str, Researcher]) -> dict[str, Path]:
    """The files the service holds the researchers' secrets in, by what each is."""
    found = {}
    for name, researcher in researchers.items():
        if researcher.credential:
            found[f"researcher {name}'s credential"] = Path(researcher.credential)
        if researcher.token_client is not None:
            found[f"researcher {name}'s token client secret"] = Path(
                researcher.token_client.secret_file)
    return found


def rucio_config(base: Path, researcher: Researcher, paths: RunPaths) -> str:
    """The researcher's client configuration: the base's servers, their account, no secret
    (a password comes through the environment; with a token client, `auth_type = oidc` and the
    token from the file BEARER_TOKEN_FILE names) and a Rucio token file of the run's own."""
    given = configparser.ConfigParser(interpolation=None)
    given.read(base)
    host = given["client"]["rucio_host"]
    config = configparser.ConfigParser(interpolation=None)
    config["client"] = {
        "rucio_host": host, "auth_host": given["client"].get("auth_host", host),
        "ca_cert": str(paths.ca_bundle), **_auth(researcher), "account": researcher.rucio_account,
        "request_retries": "2", "auth_token_file_path": str(paths.home / ".rucio-token"),
    }
    if given.has_section("policy"):
        config["policy"] = dict(given["policy"])
    text = io.StringIO()
    config.write(text)
    return text.getvalue()


def _auth(researcher: Researcher) -> dict[str, str]:
    if researcher.token_client is not None:
        return {"auth_type": "oidc"}
    return {"auth_type": "userpass", "username": researcher.rucio_account}


def compare_command(submission: Submission, paths: RunPaths, site: SiteEntry,
                    researcher: Researcher) -> list[str]:
    """`lofar-datalake compare` of the submission at its site; a resumed one (a second
    start) lets Snakemake redo the jobs the stop left incomplete."""
    resume = ["--rerun-incomplete"] if submission.attempts > 1 else []
    return [CLI, "compare", "--out", str(paths.compare), "--profile", str(site.profile), "--",
            "--snakefile", str(paths.workflow / submission.snakefile),
            "--configfile", str(paths.workflow / submission.configfile),
            "--storage-datalake-rucio-config", str(paths.rucio_config),
            "--storage-datalake-ca-bundle", str(paths.ca_bundle),
            "--storage-datalake-account", researcher.rucio_account,
            *([] if researcher.token_client else ["--storage-datalake-username",
                                                   researcher.rucio_account]), *resume]


class Worker(threading.Thread):
    def __init__(self, name: str, store: Callable[[], Store], settings: Settings,
                 stop: threading.Event, claim_lock: threading.Lock) -> None:
        super().__init__(name=name, daemon=True)
        self.open_store, self.settings, self.stop, self.claim_lock = (
            store, settings, stop, claim_lock)

    def run(self) -> None:
        store = self.open_store()
        limits = {n: r.limits.concurrent_runs for n, r in self.settings.researchers.items()}
        try:
            while not self.stop.is_set():
                with self.claim_lock:
                    submission = store.claim(limits)
                if submission is None:
                    self.stop.wait(self.settings.poll_s)
                else:
                    self.execute(store, submission)
        finally:
            store.close()

    def execute(self, store: Store, submission: Submission) -> None:
        paths = RunPaths.of(self.settings.state, submission.id)
        researcher = self.settings.researchers.get(submission.researcher)
        site = self.settings.sites.get(submission.site)
        problem = ("its researcher is no longer in the researchers file" if researcher is None
                   else f"site {submission.site} is no longer offered" if site is None
                   else "its workflow was lost (the service stopped while receiving it)"
                   if not paths.workflow.is_dir() else "")
        if problem or researcher is None or site is None:
            store.finish(submission.id, State.FAILED, None, {}, problem)
            return
        user = sandbox.user_for(researcher.name)
        self._prepare(paths, researcher, user)
        if submission.attempts > 1:
            _unlock(paths)
        with contextlib.ExitStack() as held:
            try:
                credentials = held.enter_context(run_credentials.for_run(
                    self.settings.issuer, researcher, paths.bearer_token,
                    user if sandbox.isolated() else None, paths.log))
            except (TokenError, OSError) as exc:
                store.finish(submission.id, State.FAILED, None, {},
                             f"no credentials for the run: {exc}")
                return
            env = sandbox.environment(paths.home, credentials.env)
            command = [*sandbox.prefix(user, paths.root, self.settings.walls),
                       *compare_command(submission, paths, site, researcher)]
            with open(paths.log, "a") as log:
                proc = subprocess.Popen(command, cwd=paths.root, stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)
                stopped = self._watch(store, submission, paths, researcher, proc)
        _forget_job_credentials(paths)
        if stopped is None:
            return  # the service is stopping: the submission stays running, to be resumed
        if stopped:
            store.finish(submission.id, State.FAILED, proc.returncode,
                         runs.read_verdict(paths), stopped)
            return
        self._finish(store, submission, paths, proc.returncode)

    def _prepare(self, paths: RunPaths, researcher: Researcher, user: str) -> None:
        (paths.home / "tmp").mkdir(parents=True, exist_ok=True)
        paths.rucio_config.write_text(rucio_config(self.settings.rucio_base, researcher, paths))
        shutil.copyfile(self.settings.ca_bundle, paths.ca_bundle)
        sandbox.hand_over(paths.root, user)

    def _watch(self, store: Store, submission: Submission, paths: RunPaths,
               researcher: Researcher, proc: subprocess.Popen[bytes]) -> str | None:
        """Wait for the run; the reason it was stopped ("" if it ended by itself, None if
        the service is stopping)."""
        limits = researcher.limits
        started, last_disk = time.monotonic(), 0.0
        while proc.poll() is None:
            if self.stop.wait(CHECK_EVERY_S):
                _terminate(proc)
                return None
            store.set_progress(submission.id, runs.progress(paths))
            now = time.monotonic()
            if now - started > limits.wall_time_s:
                _terminate(proc)
                return f"stopped at the wall-time limit of {limits.wall_time_s} s"
            if now - last_disk > DISK_EVERY_S:
                last_disk = now
                used = runs.disk_bytes(paths.root)
                if used > limits.disk_bytes:
                    _terminate(proc)
                    return (f"stopped: its directory held {used / 1024**2:.0f} MiB, over the "
                            f"disk limit of {limits.disk_bytes / 1024**2:.0f} MiB")
        return ""

    def _finish(self, store: Store, submission: Submission, paths: RunPaths,
                exit_code: int) -> None:
        """compare's exit code: 0 equivalent, 1 not equivalent (both DONE: the comparison
        answered), anything else a failed run, named from the verdict where it says."""
        verdict = runs.read_verdict(paths)
        store.set_progress(submission.id, runs.progress(paths))
        if exit_code in (0, 1) and verdict:
            store.finish(submission.id, State.DONE, exit_code, verdict)
            return
        failed = [f"the {side} run failed (exit {r.get('exit_code')})"
                  for side, r in (verdict.get("runs") or {}).items() if r.get("exit_code")]
        reason = "; ".join(failed) or f"compare ended with exit code {exit_code}"
        store.finish(submission.id, State.FAILED, exit_code, verdict,
                     f"{reason}; see the log below")


def _forget_job_credentials(paths: RunPaths) -> None:
    """The credential the plugin wrote for the run's jobs holds a Rucio or access token that
    outlives the run: gone with it (a resumed run writes a new one)."""
    for kept in paths.compare.glob("*/.snakemake/datalake-credential"):
        shutil.rmtree(kept, ignore_errors=True)


def _unlock(paths: RunPaths) -> None:
    """What `snakemake --unlock` does, for each run of a resumed comparison: the stopped run
    left its directory locked, and nothing else runs there (the service stopped its runs, or
    killed what a dead service left, before it resumed any)."""
    for locks in paths.compare.glob("*/.snakemake/locks"):
        shutil.rmtree(locks, ignore_errors=True)


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    """Stop the run and everything it started (its container, or its own session)."""
    for sig, wait in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, 10.0)):
        try:
            sandbox.signal_run(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue
