"""Taking a submission in: everything is checked before anything runs, and a bad submission is
recorded as rejected with the reason the researcher reads.

A site failing its health probes (health.py) is refused, naming the RSE whose probe failed and
when. The DIDs are checked against the researcher's scopes and asked of Rucio as the researcher
(unknown ones, inputs over their limit, and, at a degraded site, inputs with files only on
RSEs it cannot read, are refused), the workflow is unpacked (or checked
out) into a new run directory, its Snakefile and config found, and the workflow parsed by
Snakemake in the run's container, as the researcher's system user (sandbox.py: parsing runs
the Snakefile's Python). Only then is it queued.
"""

from __future__ import annotations

import datetime as dt
import shutil
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import git_checkout, health, inputs, run_credentials, sandbox, submission
from .model import Researcher, Source, State, Submission
from .runs import RunPaths
from .store import Store
from .submission import SubmissionError
from .token_client import TokenError
from .worker import Settings, rucio_config


@dataclass(frozen=True)
class Request:
    """A submission as the form or the API gives it."""

    site: str
    configfile: str
    dids: Sequence[str]
    snakefile: str = ""  # empty: Snakefile or workflow/Snakefile
    archive: Path | None = None  # an uploaded archive, saved by the web layer
    archive_name: str = ""
    git_url: str = ""
    git_commit: str = ""


def source_of(request: Request) -> Source:
    if request.archive is not None:
        return Source("archive", request.archive_name or "upload")
    return Source("git", f"{git_checkout.safe_url(request.git_url)}@{request.git_commit}")


def take(store: Store, settings: Settings, researcher: Researcher, request: Request,
         queue_lock: threading.Lock) -> Submission:
    """Check and queue a submission; a bad one is stored as rejected, with the reason."""
    state = settings.state
    incoming = state / "runs" / f"incoming-{uuid.uuid4().hex}"
    try:
        site = _check_health(store, settings, request.site)
        snakefile, configfile, dids = _check(settings, researcher, request, incoming, site)
    except SubmissionError as exc:
        shutil.rmtree(incoming, ignore_errors=True)
        return store.add(researcher.name, request.site, source_of(request),
                         request.snakefile, request.configfile, list(request.dids),
                         state=State.REJECTED, error=str(exc))
    # Queued and moved into place under the lock the workers claim under: no worker can take
    # the submission before its directory is where it looks for it.
    with queue_lock:
        queued = store.add(researcher.name, request.site, source_of(request), snakefile,
                           configfile, dids)
        incoming.rename(RunPaths.of(state, queued.id).root)
    return queued


def _check_health(store: Store, settings: Settings, site: str) -> health.SiteHealth | None:
    """A site failing its health probes is refused (probes off: every site is offered); the
    site's health, for its inputs to be checked against."""
    if settings.probes is None or site not in settings.sites:
        return None
    sites = health.site_health(settings.sites, store.probe_matrix())
    if not sites[site].offered:
        others = [name for name in health.offered(sites) if name != site]
        raise SubmissionError(health.refusal(sites[site], others, dt.datetime.now(dt.UTC)))
    return sites[site]


def _check_reads(site: health.SiteHealth | None, found: Mapping[str, inputs.Input]) -> None:
    """A degraded site is refused inputs with files it cannot read (health.input_refusal)."""
    replicas = {did: i.replicas for did, i in found.items()}
    if site is not None and (why := health.input_refusal(site, replicas, dt.datetime.now(dt.UTC))):
        raise SubmissionError(why)


def _check(settings: Settings, researcher: Researcher, request: Request, incoming: Path,
           site: health.SiteHealth | None = None) -> tuple[str, str, list[str]]:
    if request.site not in settings.sites:
        raise SubmissionError(f"site {request.site!r} is not offered; choose one of "
                              f"{', '.join(sorted(settings.sites))}")
    dids = submission.check_dids(request.dids, researcher.scopes)
    paths = RunPaths(incoming)
    workflow = paths.workflow
    (paths.home / "tmp").mkdir(parents=True)
    paths.rucio_config.write_text(rucio_config(settings.rucio_base, researcher, paths))
    shutil.copyfile(settings.ca_bundle, paths.ca_bundle)
    found = inputs.check(dids, researcher, paths.rucio_config,
                         _rucio_credentials(settings, researcher))
    _check_reads(site, found)
    workflow.mkdir()
    user = sandbox.user_for(researcher.name)
    sandbox.hand_over(incoming, user)
    run_as = sandbox.prefix(user, incoming, settings.walls)
    if request.archive is not None:
        submission.unpack_archive(request.archive, workflow, researcher.limits.archive_bytes)
    elif request.git_url and request.git_commit:
        # In the run's container: a file:// URL reaches only what the researcher may read.
        git_checkout.checkout(request.git_url, request.git_commit, workflow, run_as=run_as,
                            max_bytes=researcher.limits.archive_bytes)
    else:
        raise SubmissionError("give the workflow: an archive, or a git repository URL and a "
                              "commit")
    snakefile, configfile = submission.find_workflow(workflow, request.snakefile or None,
                                                     request.configfile)
    sandbox.hand_over(incoming, user)  # what was unpacked, too
    submission.check_parses(workflow, snakefile, configfile, run_as,
                            sandbox.environment(paths.home))
    return (str(snakefile.relative_to(workflow)), str(configfile.relative_to(workflow)), dids)


def _rucio_credentials(settings: Settings, researcher: Researcher) -> dict[str, str]:
    try:
        return run_credentials.for_service(settings.issuer, researcher)
    except TokenError as exc:
        raise SubmissionError(f"Rucio cannot be asked as you: {exc}") from None
