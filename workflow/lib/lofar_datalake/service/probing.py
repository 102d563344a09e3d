"""One site-health probe of a site at one RSE (health.py runs them): the service puts a new small
file on the RSE as the probe account, then the probe workflow (probe/Snakefile) runs with the
site's Snakemake profile: the profile's stage policy brings the file to the site's RSE (unless
it is that RSE), the job reads it and checks its sha256, and its product is stored through the
DataLake on the site's RSE.

A new file each time, not one kept per RSE: a file staged once stays at the site, and every
later probe would read that replica in place and never the RSE it is meant to test. Rucio names
are immutable, so inputs and products carry the time:

    <scope>:service-probe/in/<RSE>/<site>/<time>.txt      put by the service on <RSE>
    <scope>:service-probe/out/<site>/<RSE>/<time>.txt     stored by the probe at <site>

The probe is workflow code and runs as researchers' runs do (worker.py): in a container, as
the probe login's system user (sandbox.py), in a directory of its own
(<state>/runs/probe-<site>-<RSE>/, the last probe's files and log kept), with a clean
environment holding the account's secret and the storage credential (an X.509 proxy: writing
to the DataLake's storage needs one; a copy in that directory), which is deleted when the
probe ends. A probe login with a token client needs no proxy: its access token
(run_credentials.py, a file in that directory while the probe runs) is taken by Rucio, FTS and
the storage alike. The upload is the service's own code and runs as the service, the secret
in its environment only (`python -m lofar_datalake.service.probing`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from datalake_core.journal import InputEvent, read_journal

from . import as_account, run_credentials, sandbox
from .model import Researcher
from .runs import RunPaths
from .token_client import TokenError
from .worker import Settings, SiteEntry, rucio_config

SNAKEFILE = Path(__file__).with_name("probe") / "Snakefile"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
PREFIX = "service-probe"
UPLOAD_TIMEOUT_S = 120
# How long a probe's files are kept: their rules expire then, and the DataLake's reaper frees
# the storage (a probe every few minutes at each site and RSE would otherwise pile them up).
# A day leaves an operator time to look at a failed probe's files.
KEEP_S = 24 * 3600
DETAIL_LINES = 12
DETAIL_CHARS = 4000
# Snakemake's words around a failure that say nothing of why: its closing words, the job's
# description (its files are the probe's, the same each time), and the generic wrappers.
BOILERPLATE = ("Shutting down, this might take some time", "Exiting because a job execution",
               "Complete log", "Removing output files of failed job", "Will exit after finishing",
               "Removing local copy of storage file", "Elapsed time:", "Select jobs to execute",
               "Execute 1 jobs", "Finished jobid", "message: None", "jobid:", "input:",
               "output:", "log:", "reason:", "resources:", "localrule ", "WorkflowError:",
               "RuleException:", "At least one job did not complete successfully",
               "Error in rule probe:", "CalledProcessError in file", "Command 'set -euo pipefail",
               "Job stats:", "Finished retrieval.")
_NOISE = re.compile(r"^(\[\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\]"  # a job's time
                    r"|datalake://\S+ \((in|send to|retrieve from) storage\)"  # a file named
                    r"|\d+ of \d+ steps \(\d+%\) done"
                    r"|job\s+count|-+\s+-+|\w+\s+\d+)$")  # the table of jobs
_BEARER = re.compile(r"(?i)(bearer\s+|x-rucio-auth-token:\s*)\S+")


@dataclass(frozen=True)
class Outcome:
    ok: bool
    seconds: float
    detail: str = ""


@dataclass(frozen=True)
class Plan:
    """What one probe reads and writes."""

    site: str
    rse: str
    scope: str
    input: str  # names in `scope`
    output: str
    content: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    def config(self) -> dict[str, str]:
        """The probe workflow's config."""
        return {"scope": self.scope, "input": self.input, "output": self.output,
                "sha256": self.sha256, "site": self.site}


def plan(site: str, rse: str, scope: str, now: dt.datetime, token: str = "") -> Plan:
    stamp = now.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    part = re.sub(r"[^A-Za-z0-9._-]", "_", site)  # a site's name as a part of a Rucio name
    text = (f"lofar-datalake site-health probe of {rse} for {site} at {stamp} "
            f"{token or secrets.token_hex(8)}\n")
    return Plan(site, rse, scope, f"{PREFIX}/in/{rse}/{part}/{stamp}.txt",
                f"{PREFIX}/out/{part}/{rse}/{stamp}.txt", text.encode())


def probe_command(paths: RunPaths, site: SiteEntry, researcher: Researcher,
                  stage_timeout_s: int) -> list[str]:
    """Snakemake running the probe workflow with the site's profile, as the probe account.
    Products get no extra replication rules (the profile's would move every product again):
    the probe tests storing at the site's RSE."""
    return [SNAKEMAKE, "--snakefile", str(SNAKEFILE), "--directory", str(workdir(paths)),
            "--profile", str(site.profile), "--workflow-profile", "none", "--cores", "1",
            "--configfile", str(paths.root / "probe.json"),
            "--storage-datalake-rucio-config", str(paths.rucio_config),
            "--storage-datalake-ca-bundle", str(paths.ca_bundle),
            "--storage-datalake-account", researcher.rucio_account,
            *([] if researcher.token_client else ["--storage-datalake-username",
                                                   researcher.rucio_account]),
            "--storage-datalake-stage-timeout", str(stage_timeout_s),
            "--storage-datalake-fts-attempts", "1",
            "--storage-datalake-output-rules", "",
            "--storage-datalake-output-lifetime", str(KEEP_S),
            "--storage-datalake-rule-lifetime", str(KEEP_S)]


def workdir(paths: RunPaths) -> Path:
    return paths.root / "work"


def failure_detail(headline: str, text: str, hide: Sequence[str],
                   paths: Sequence[str] = ()) -> str:
    """What failed (`headline`) and the last lines of the output (`text`) saying why, for the
    matrix page, whose cells show the last line: the `hide` strings (secrets) and bearer
    tokens masked, the service's `paths` shortened to "…", Snakemake's words that say nothing
    of why (BOILERPLATE, _NOISE) and blank lines left out."""
    text = f"{headline}\n{text}"
    for word in hide:
        if word:
            text = text.replace(word, "***")
    for path in sorted(paths, key=len, reverse=True):
        text = text.replace(path, "…")
    text = _BEARER.sub(r"\1***", text)
    lines = [_shortened(line.rstrip()) for line in text.splitlines()
             if line.strip() and not line.strip().startswith(BOILERPLATE)
             and not _NOISE.match(line.strip())]
    if not lines:
        return ""
    kept = lines[1:][-DETAIL_LINES:]
    while len(kept) > 1 and len("\n".join([lines[0], *kept])) > DETAIL_CHARS:
        kept.pop(0)  # the headline and the last line stay
    return "\n".join([lines[0], *kept])


def _shortened(line: str, most: int = 700) -> str:
    """A long line's start and end (errors end with their reason)."""
    return line if len(line) <= most else f"{line[:most // 2 - 2]} … {line[-most // 2 + 1:]}"


def probe(settings: Settings, researcher: Researcher, site: SiteEntry, rse: str,
          stop: threading.Event) -> Outcome | None:
    """Probe `site` at `rse`; None when `stop` was set while it ran."""
    assert settings.probes is not None
    limits = settings.probes
    paths = RunPaths(settings.state / "runs" / f"probe-{site.name}-{rse}")
    shutil.rmtree(paths.root, ignore_errors=True)
    paths.root.mkdir(mode=0o700)
    (paths.home / "tmp").mkdir(parents=True)
    workdir(paths).mkdir()
    paths.rucio_config.write_text(rucio_config(settings.rucio_base, researcher, paths))
    shutil.copyfile(settings.ca_bundle, paths.ca_bundle)
    todo = plan(site.name, rse, researcher.scopes[0], dt.datetime.now(dt.UTC))
    (paths.root / "probe.json").write_text(json.dumps(todo.config()))
    source = paths.root / "input.txt"
    source.write_bytes(todo.content)
    proxy = paths.root / "x509-proxy.pem"
    shown = [str(paths.root), str(settings.state)]
    held = contextlib.ExitStack()
    started = time.monotonic()
    try:
        user = sandbox.user_for(researcher.name)
        try:
            credentials = held.enter_context(run_credentials.for_run(
                settings.issuer, researcher, paths.bearer_token,
                user if sandbox.isolated() else None, paths.log))
        except (TokenError, OSError) as exc:
            return Outcome(False, time.monotonic() - started, failure_detail(
                f"the service has no credentials for the probe: {exc}", "", (), shown))
        extra, hide = dict(credentials.env), credentials.secrets
        if limits.x509_proxy and researcher.token_client is None:  # a token is all a token needs
            proxy.touch(0o600)
            shutil.copyfile(limits.x509_proxy, proxy)
            extra["X509_USER_PROXY"] = str(proxy)
        said = upload(todo, source, paths, researcher, extra)
        if said:
            return Outcome(False, time.monotonic() - started, failure_detail(
                f"the service could not put the probe file on {rse}: {said}", "", hide, shown))
        sandbox.hand_over(paths.root, user)  # after the upload: its token file, too
        left = max(1.0, limits.timeout_s - (time.monotonic() - started))
        command = [*sandbox.prefix(user, paths.root, settings.walls),
                   *probe_command(paths, site, researcher, max(10, int(left) // 2))]
        code = _run(command, paths, sandbox.environment(paths.home, extra), left, stop)
    finally:
        proxy.unlink(missing_ok=True)
        held.close()
    seconds = time.monotonic() - started
    if code is None and stop.is_set():
        return None
    read_from = read_at(workdir(paths), f"{todo.scope}:{todo.input}")
    if code == 0 and read_from == site.rse:
        return Outcome(True, seconds)
    log = paths.log.read_text(errors="replace") if paths.log.is_file() else ""
    why = (f"stopped at the probe's time limit of {limits.timeout_s} s" if code is None
           else f"the probe workflow failed (exit {code})" if code != 0
           # The plugin reads another replica when staging fails: the run passes, the probe not.
           else f"the probe file was read from {read_from or 'an unknown replica'}, not from "
                f"{site.rse}: it was not staged to the site's RSE")
    return Outcome(False, seconds, failure_detail(why, log, hide, shown))


def read_at(work: Path, did: str) -> str | None:
    """The RSE the probe run read `did` from, as the plugin's journal says; None if it does
    not say (or read several)."""
    rses = {e.rse for e in read_journal(work) if isinstance(e, InputEvent) and e.did == did}
    return rses.pop() if len(rses) == 1 else None


def upload(todo: Plan, source: Path, paths: RunPaths, researcher: Researcher,
           extra: dict[str, str]) -> str:
    """Put the probe file on its RSE as the probe account; "" when done, else why not."""
    request = {"path": str(source), "scope": todo.scope, "name": todo.input, "rse": todo.rse,
               "lifetime": KEEP_S}
    try:
        done = as_account.ask("lofar_datalake.service.probing", paths.rucio_config,
                              researcher.rucio_account, request, extra, UPLOAD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"no answer within {UPLOAD_TIMEOUT_S} s"
    if done.returncode == 0:
        return ""
    return (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]


def _run(command: list[str], paths: RunPaths, env: dict[str, str], timeout_s: float,
         stop: threading.Event) -> int | None:
    """Run the probe, its output in its log; its exit code, or None if it was stopped (at the
    time limit, or as the service stops). Everything it started goes with it."""
    deadline = time.monotonic() + timeout_s
    with open(paths.log, "w") as log:
        proc = subprocess.Popen(command, cwd=workdir(paths), stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        try:
            while proc.poll() is None:
                if stop.wait(0.5) or time.monotonic() > deadline:
                    return None
            return proc.returncode
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()


def _main(argv: Sequence[str]) -> int:
    from datalake_core.did import Did
    from datalake_core.errors import DataLakeError

    request = json.loads(sys.stdin.read())
    try:
        rucio = as_account.connect(list(argv))
        rucio.upload(Path(request["path"]), Did(request["scope"], request["name"]),
                     request["rse"], lifetime=request["lifetime"])
    except DataLakeError as exc:
        print(str(exc).replace("\n", " "), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
