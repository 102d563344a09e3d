"""Site health: every site is probed, periodically, at each RSE it may read (its own and the
sites file's `reads`). A site whose probe at its own RSE failed cannot stage or store there and
is not offered for new submissions until that probe passes; a site that only cannot read some
other RSE is degraded: still offered, but a submission there whose input files have replicas
only on such RSEs is refused (`input_refusal`), naming the files, the RSEs and why.

Why: a site with broken storage, staging or catalogue access fails every comparison sent to it,
after minutes of the researcher's waiting; the probe (probing.py, the workflow in probe/) finds
out in seconds, and the matrix page says which site and RSE, since when, and why.

One probe runs at a time at each site (`Prober`, a thread; the sites are probed side by side),
so probes never compete with each other for a site, and a site whose probes hang until their
time limit delays no other site's. The results live in the database (Store.record_probe,
Store.probe_matrix). A site never probed yet (a new service, a site just added) is offered, and
the page says it is not probed yet. The rest of this module is the pure logic the page, the
API and intake share.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum

from . import probing
from .model import ProbeResult
from .store import Store
from .worker import Settings, SiteEntry


class Status(StrEnum):
    HEALTHY = "healthy"
    FAILING = "failing"  # the probe at its own RSE failed: it cannot stage or store there
    DEGRADED = "degraded"  # only probes reading other RSEs failed: it cannot read those
    UNPROBED = "not probed yet"  # some of its probes have not run yet, and none failed


def site_rses(site: SiteEntry) -> list[str]:
    """The RSEs a site is probed at: its own first, then those it reads, each once."""
    return list(dict.fromkeys((site.rse, *site.reads)))


def pairs(sites: Mapping[str, SiteEntry]) -> list[tuple[str, str]]:
    """Every (site, RSE) to probe: the sites by name, each site's RSEs in the order it probes
    them."""
    return [(name, rse) for name in sorted(sites) for rse in site_rses(sites[name])]


def columns(sites: Mapping[str, SiteEntry]) -> list[str]:
    """The matrix's RSEs: every site's own RSE and what it reads, sorted."""
    return sorted({rse for site in sites.values() for rse in site_rses(site)})


@dataclass(frozen=True)
class SiteHealth:
    site: str
    rse: str  # its own: where its runs stage their inputs and store their products
    status: Status
    cells: dict[str, ProbeResult | None]  # the latest probe at each RSE the site reads

    @property
    def offered(self) -> bool:
        return self.status is not Status.FAILING

    @property
    def failed(self) -> list[ProbeResult]:
        return [r for r in self.cells.values() if r is not None and not r.ok]

    @property
    def unreadable(self) -> list[str]:
        """The other RSEs whose latest probe at this site failed."""
        return [r.rse for r in self.failed if r.rse != self.rse]

    @property
    def summary(self) -> str:
        """The status as the page and the form say it: "degraded: cannot read X, Y"."""
        if self.status is Status.DEGRADED:
            return f"{self.status.value}: cannot read {', '.join(self.unreadable)}"
        return self.status.value


def site_health(sites: Mapping[str, SiteEntry],
                matrix: Iterable[ProbeResult]) -> dict[str, SiteHealth]:
    """Each site's status from the latest probes (`Store.probe_matrix`): failing by its own
    RSE's probe, degraded by any other's, as a failure outweighs probes not run yet; probes of
    pairs the sites file no longer lists are ignored."""
    latest = {(r.site, r.rse): r for r in matrix}
    out = {}
    for name in sorted(sites):
        own = sites[name].rse
        cells = {rse: latest.get((name, rse)) for rse in site_rses(sites[name])}
        failed = {rse for rse, r in cells.items() if r is not None and not r.ok}
        status = (Status.FAILING if own in failed else Status.DEGRADED if failed
                  else Status.UNPROBED if None in cells.values() else Status.HEALTHY)
        out[name] = SiteHealth(name, own, status, cells)
    return out


def offered(health: Mapping[str, SiteHealth]) -> list[str]:
    """The sites a researcher may choose: all but the failing ones."""
    return [name for name, h in health.items() if h.offered]


def age(seconds: float) -> str:
    """How long ago, for a person: "just now", "40 s ago", "3 min ago", "5 h ago", "2 days ago"."""
    if seconds < 5:
        return "just now"
    if seconds < 60:
        return f"{seconds:.0f} s ago"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min ago"
    if seconds < 48 * 3600:
        return f"{seconds // 3600:.0f} h ago"
    return f"{seconds // 86400:.0f} days ago"


def since(result: ProbeResult, now: dt.datetime) -> str:
    return age(max(0.0, (now - result.checked_at).total_seconds()))


def gist(detail: str, most: int = 180) -> str:
    """A failure's last line for a matrix cell: a long one by its start (what failed) and its
    end (why), cut between words."""
    last = (detail.strip().splitlines() or ["no detail"])[-1].strip()
    if len(last) <= most:
        return last
    head = last[:most * 2 // 5]
    head = head.rsplit(" ", 1)[0] if " " in head else head
    tail = last[-(most - len(head) - 3):]
    return f"{head} … {tail.split(' ', 1)[1] if ' ' in tail else tail}"


def failure(result: ProbeResult, now: dt.datetime) -> str:
    """A failed probe for a refusal: the RSE, when, and the last line of why."""
    last = (result.detail.strip().splitlines() or ["no detail"])[-1]
    return (f"its probe reading {result.rse} failed {since(result, now)} (at "
            f"{result.checked_at:%Y-%m-%d %H:%M:%S} UTC: {last})")


def refusal(health: SiteHealth, others: Sequence[str], now: dt.datetime) -> str:
    """Why a submission to a failing site is refused: its own RSE's probe failed, when, and
    the last line of why."""
    [own] = [r for r in health.failed if r.rse == health.rse]
    choose = (f"choose one of {', '.join(others)}" if others
              else "no site passes its probes at the moment")
    return (f"site {health.site} is not offered: {failure(own, now)}, so it can neither stage "
            f"inputs nor store products there. It is offered again once that probe passes "
            f"(see /sites); {choose}")


def input_refusal(health: SiteHealth, replicas: Mapping[str, Mapping[str, Sequence[str]]],
                  now: dt.datetime) -> str | None:
    """Why a submission to a degraded site is refused, or None: the inputs with a file whose
    AVAILABLE replicas (`replicas`: DID -> each of its files -> RSEs) are all on RSEs the
    site's probes could not read, naming the DID (and the file of a dataset), the RSEs, and
    each of those probes' failure. A file with no replica at all is the run's to report."""
    failed = {r.rse: r for r in health.failed if r.rse != health.rse}
    unread, rses = [], set()
    for did, files in replicas.items():
        lost = {f: set(on) for f, on in files.items() if on and set(on) <= failed.keys()}
        if lost:
            on = sorted(set().union(*lost.values()))
            rses.update(on)
            unread.append(f"{_input(did, sorted(lost))}, whose only replicas are on "
                          f"{', '.join(on)}")
    if not unread:
        return None
    why = "; ".join(failure(failed[rse], now) for rse in sorted(rses))
    again = "that probe passes" if len(rses) == 1 else "those probes pass"
    return (f"site {health.site} cannot read {'; '.join(unread)}: {why}. Choose another site "
            f"(see /sites), or submit again once {again}")


def _input(did: str, files: Sequence[str], most: int = 3) -> str:
    """An input for a refusal: the DID, or the (first `most`) files of a dataset."""
    if list(files) == [did]:
        return f"your input {did}"
    more = f" and {len(files) - most} more" if len(files) > most else ""
    return (f"the file{'s' if len(files) > 1 else ''} {', '.join(files[:most])}{more} of your "
            f"input {did}")


class Prober(threading.Thread):
    """Rounds over every (site, RSE), one probe at a time at each site, a round starting
    every `interval_s` seconds (at once when the last one took longer)."""

    def __init__(self, store: Callable[[], Store], settings: Settings,
                 stop: threading.Event) -> None:
        super().__init__(name="prober", daemon=True)
        if settings.probes is None:
            raise ValueError("the prober needs the probes' settings")
        self.open_store, self.settings, self.stop, self.probes = (
            store, settings, stop, settings.probes)

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            self.round()
            self.stop.wait(max(0.0, self.probes.interval_s - (time.monotonic() - started)))

    def round(self) -> None:
        """Every site's probes, one after another at each site and the sites side by side: a
        site whose probes hang to their time limit holds up no other site's."""
        names = sorted(self.settings.sites)
        with ThreadPoolExecutor(max_workers=max(1, len(names)), thread_name_prefix="probe") as pool:
            list(pool.map(self.probe_site, names))

    def probe_site(self, name: str) -> None:
        researcher = self.settings.researchers[self.probes.login]
        try:
            store = self.open_store()  # a connection of its own: one per thread
        except Exception:  # the database is away: the next round tries again
            traceback.print_exc()
            return
        try:
            for rse in site_rses(self.settings.sites[name]):
                if self.stop.is_set():
                    return
                try:
                    outcome = probing.probe(self.settings, researcher, self.settings.sites[name],
                                            rse, self.stop)
                except Exception as exc:  # the service's own failure: said, the probe failed
                    traceback.print_exc()
                    outcome = probing.Outcome(False, 0.0, "the service could not run the "
                                                          f"probe: {type(exc).__name__}: {exc}")
                if outcome is None:
                    return  # the service is stopping: an interrupted probe says nothing
                try:
                    store.record_probe(name, rse, outcome.ok, outcome.seconds, outcome.detail)
                except Exception:  # the database is away: the next round records again
                    traceback.print_exc()
                print(f"probe {name} x {rse}: {'ok' if outcome.ok else 'FAILED'} in "
                      f"{outcome.seconds:.1f} s", flush=True)
        finally:
            store.close()


def as_json(sites: Mapping[str, SiteHealth], now: dt.datetime) -> list[dict[str, object]]:
    """The matrix for `/api/sites`: each site's status and its latest probe at each RSE."""
    return [{"site": h.site, "rse": h.rse, "status": h.status.value, "offered": h.offered,
             "cannot_read": h.unreadable,
             "probes": [{"rse": rse, "probed": False} if r is None else {
                 "rse": rse, "probed": True, "ok": r.ok, "checked_at": r.checked_at.isoformat(),
                 "age": since(r, now), "seconds": round(r.seconds, 1), "detail": r.detail}
                 for rse, r in h.cells.items()]}
            for h in sites.values()]
