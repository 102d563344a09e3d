"""Site health for real: the service probes each testbed site at each RSE it reads (the
testbed's sites file: SITE_A and SITE_B read SITE_C_DAV too), as a probe account of its own (a
non-admin Rucio account and scope), through the same sandbox as the researchers' runs. The
matrix goes green; SITE_C's storage server is stopped: SITE_C, which can no longer stage or
store on its own RSE, fails with the reason, is no longer offered and refuses a submission
naming the RSE; SITE_A and SITE_B, which can no longer read SITE_C_DAV, are degraded and still
offered, and refuse only a submission whose inputs have replicas on SITE_C_DAV alone, naming
the DID, the RSE and why; once the storage is back every site is healthy again. The page is
checked in headless Chromium."""

from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path

import pytest
import requests
from rucio_accounts import upload_as
from service_support import Service, make_service

pytestmark = pytest.mark.integration

# The testbed's sites (config/sites.example.yaml): each reads the other two RSEs, 9 probes a
# round. Site A stages by Rucio rules, B and C by the plugin's FTS jobs.
PROBES = 9
BROKEN = "SITE_C_DAV"  # its WebDAV server is stopped
INTERVAL_S = 10  # rounds follow each other (a round takes longer)
WALL_S = 15  # alice's runs: a submission taken need not run to its end here


@pytest.fixture(scope="module")
def service(testbed_session):
    testbed_session.up()
    yield from make_service(testbed_session, probe_interval=INTERVAL_S,
                            limits={"alice": {"concurrent_runs": 1, "wall_time_s": WALL_S}})


def matrix(service: Service) -> dict[str, dict]:
    answer = service.api("GET", "/api/sites", "alice")
    assert answer.status_code == 200, answer.text
    return {s["site"]: s for s in answer.json()["sites"]}


def wait_for(service: Service, what: str, check, timeout: float = 900) -> dict[str, dict]:
    """The matrix once `check(matrix)` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sites = matrix(service)
        if check(sites):
            return sites
        time.sleep(3)
    raise AssertionError(f"{what}: not within {timeout} s; the matrix: {sites}\n"
                         + service.log.read_text()[-3000:])


def probed_after(site: dict, rse: str, moment: dt.datetime) -> dict | None:
    [cell] = [p for p in site["probes"] if p["rse"] == rse]
    if cell["probed"] and dt.datetime.fromisoformat(cell["checked_at"]) > moment:
        return cell
    return None


def login(service: Service, who: str) -> requests.Session:
    session = requests.Session()
    session.verify, session.trust_env = service.ca, False
    form = session.get(f"{service.url}/login").text
    token = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
    session.post(f"{service.url}/login", data={
        "username": who, "password": service.researchers[who].password, "csrf": token})
    return session


def form_options(service: Service) -> dict[str, str]:
    """The form's sites, each with its option's text."""
    home = login(service, "alice").get(f"{service.url}/").text
    return dict(re.findall(r'<option value="([^"]+)">([^<]*)</option>', home))


def offered_in_form(service: Service) -> list[str]:
    return list(form_options(service))


def test_the_matrix_goes_green_at_every_site(service, testbed_session):
    sites = wait_for(service, "every site healthy", lambda m: all(
        s["status"] == "healthy" for s in m.values()))
    seconds = {f"{name} x {p['rse']}": p["seconds"] for name, s in sites.items()
               for p in s["probes"]}
    print(f"probe seconds: {seconds}")
    assert len(seconds) == PROBES and all(s < 120 for s in seconds.values()), seconds
    assert service.api("GET", "/api/submissions", "bob").json()["sites"] == [
        "SITE_A", "SITE_B", "SITE_C"]
    assert offered_in_form(service) == ["SITE_A", "SITE_B", "SITE_C"]
    # On the storage: each probe file put on the RSE probed, staged to the site's RSE (by a
    # Rucio rule at SITE_A, by the plugin's FTS jobs at SITE_B), and the products there.
    rses = testbed_session.layout.root / "rse"
    scope = service.researchers["probe"].scope.replace(".", "/")

    def files(rse: str, pattern: str) -> list[Path]:
        return sorted((rses / rse / scope).glob(f"*/*/service-probe/{pattern}"))

    for site_rse, site, read in (("SITE_A_DISK", "SITE_A", "SITE_B_DISK"),
                                 ("SITE_B_DISK", "SITE_B", "SITE_A_DISK")):
        assert files(read, f"in/{read}/{site}/*.txt"), read
        assert files(site_rse, f"in/{read}/{site}/*.txt"), (site, read)
        [product, *_] = files(site_rse, f"out/{site}/{read}/*.txt")
        assert product.read_text().startswith(f"{site} read ")


def test_every_rule_keeping_a_probes_files_expires(service, rucio):
    """Probe files put, staged and stored are all kept by rules with an end: a probe every few
    minutes would otherwise fill the storage."""
    scope = service.researchers["probe"].scope
    rules = list(rucio.client.list_replication_rules(filters={"scope": scope}))
    assert len(rules) >= PROBES * 2, rules  # per probe: the file put, its product (and staged)
    forever = [(r["name"], r["rse_expression"]) for r in rules if r["expires_at"] is None]
    assert forever == []


@pytest.fixture(scope="module")
def only_on_broken(service, testbed_session, tmp_path_factory) -> str:
    """A file of alice's whose one replica is on SITE_C_DAV, put there while it is up."""
    alice = service.researchers["alice"]
    path = tmp_path_factory.mktemp("only-on-c") / "only-c.csv"
    path.write_text("time,celsius\n2026-01-01T00:00,3.5\n")
    did = f"{alice.scope}:{alice.prefix}/only-c.csv"
    upload_as(testbed_session, tmp_path_factory.mktemp("alice-rucio"),
              alice.scope.removeprefix("user."), alice.credential.read_text(),
              [(path, did, BROKEN)])
    return did


@pytest.fixture(scope="module")
def broken(service, testbed_session, only_on_broken):
    """SITE_C's storage stopped, and since then SITE_C's probes failed (at SITE_C_DAV the
    service cannot put the probe file there; reading SITE_A_DISK the workflow cannot bring the
    file to SITE_C_DAV), and so did SITE_A's and SITE_B's reading SITE_C_DAV; the storage is
    back after."""
    [webdav] = [p for p in testbed_session.services() if p.name == f"webdav-{BROKEN}"]
    stopped = dt.datetime.now(dt.UTC)
    webdav.stop()
    failed = (("SITE_C", BROKEN), ("SITE_C", "SITE_A_DISK"), ("SITE_A", BROKEN),
              ("SITE_B", BROKEN))

    def all_failed(matrix: dict[str, dict]) -> bool:
        return all((cell := probed_after(matrix[site], rse, stopped)) is not None
                   and not cell["ok"] for site, rse in failed)

    try:
        yield stopped, wait_for(service, f"the probes of {failed} failing", all_failed)
    finally:
        testbed_session.up()


def test_a_stopped_storage_fails_its_site_with_the_reason_and_degrades_its_readers(
        service, broken):
    stopped, sites = broken
    assert sites["SITE_C"]["status"] == "failing" and not sites["SITE_C"]["offered"]
    cell = probed_after(sites["SITE_C"], BROKEN, stopped)
    for probe in sites["SITE_C"]["probes"]:
        print(f"SITE_C x {probe['rse']}: ok={probe['ok']} in {probe['seconds']} s:\n"
              f"{probe['detail']}")
    assert BROKEN in cell["detail"] and "Connection refused" in cell["detail"]
    staged = probed_after(sites["SITE_C"], "SITE_A_DISK", stopped)
    assert BROKEN in staged["detail"], staged["detail"]
    assert service.researchers["probe"].credential.read_text() not in cell["detail"]
    assert str(service.state) not in cell["detail"]
    # The sites that only read SITE_C_DAV are degraded, not failing: still offered, saying so.
    for site in ("SITE_A", "SITE_B"):
        assert sites[site]["status"] == "degraded" and sites[site]["offered"], sites[site]
        assert sites[site]["cannot_read"] == [BROKEN]
    assert [s for s, h in sites.items() if h["offered"]] == ["SITE_A", "SITE_B"]
    assert form_options(service) == {"SITE_A": f"SITE_A (cannot read {BROKEN})",
                                     "SITE_B": f"SITE_B (cannot read {BROKEN})"}
    listed = service.api("GET", "/api/submissions", "bob").json()
    assert listed["sites"] == ["SITE_A", "SITE_B"]
    assert listed["cannot_read"] == {"SITE_A": [BROKEN], "SITE_B": [BROKEN]}


def test_a_submission_to_the_failing_site_is_rejected_naming_the_rse(service, broken):
    answer = service.submit("alice", service.workflow("alice"), site="SITE_C")
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert detail["state"] == "rejected"
    assert re.match(rf"site SITE_C is not offered: its probe reading {BROKEN} failed "
                    r"(just now|\d+ s ago|\d+ min ago) \(at 20\d\d-", detail["error"]), detail
    assert "choose one of SITE_A, SITE_B" in detail["error"]
    assert not (service.state / "runs" / str(detail["id"])).exists()  # nothing ran


def test_a_degraded_site_refuses_inputs_only_on_the_rse_it_cannot_read(service, broken,
                                                                       only_on_broken):
    alice = service.researchers["alice"]
    answer = service.submit("alice", service.workflow("alice"), site="SITE_A",
                            dids=[*alice.dids(), only_on_broken])
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    print(f"refused: {detail['error']}")
    assert detail["state"] == "rejected"
    assert re.match(rf"site SITE_A cannot read your input {re.escape(only_on_broken)}, whose "
                    rf"only replicas are on {BROKEN}: its probe reading {BROKEN} failed "
                    r"(just now|\d+ s ago|\d+ min ago) \(at 20\d\d-\d\d-\d\d [\d:]+ UTC: .+\)\. "
                    r"Choose another site \(see /sites\), or submit again once that probe passes$",
                    detail["error"]), detail
    assert not any(did in detail["error"] for did in alice.dids())  # those it can read
    assert not (service.state / "runs" / str(detail["id"])).exists()  # nothing ran


def test_a_degraded_site_takes_inputs_it_can_read(service, broken):
    """alice's stations are on SITE_A_DISK and SITE_B_DISK: SITE_A takes them and the run is
    queued (her wall-time limit stops it early: its end is not this test's)."""
    answer = service.submit("alice", service.workflow("alice"), site="SITE_A")
    assert answer.status_code == 201, answer.text
    taken = answer.json()
    assert taken["state"] == "queued" and not taken["error"], taken
    ended = service.wait("alice", taken["id"], timeout=300)
    print(f"taken: {ended['state']} {ended['error']}")
    assert ended["state"] == "done" or ended["error"] == (
        f"stopped at the wall-time limit of {WALL_S} s"), ended


def test_the_sites_page_reads_well_in_a_browser(service, broken, tmp_path):
    """The matrix with green and red cells and a degraded site in headless Chromium: every text
    at least 4.5:1 against its background."""
    from browser import Browser

    with Browser(trust=Path(service.cert)) as browser:
        browser.open(f"{service.url}/login")
        browser.page.fill("#username", "alice")
        browser.page.fill("#password", service.researchers["alice"].password)
        browser.page.click("button[type=submit]")
        browser.page.wait_for_selector("#history")
        browser.page.click("a[href='/sites']")
        browser.page.wait_for_selector("#matrix")
        red = browser.page.inner_text(f"#site-SITE_C td[data-rse='{BROKEN}']")
        green = browser.page.inner_text("#site-SITE_A td[data-rse='SITE_A_DISK']")
        degraded = browser.page.inner_text("#site-SITE_A .state")
        shot = browser.screenshot(tmp_path / "service-sites.png")
        texts = browser.texts()
    assert re.match(r"failed (just now|\d+ (s|min) ago)\n.* Connection refused", red), red
    assert re.match(r"ok (just now|\d+ (s|min) ago)", green), green
    assert degraded == f"degraded: cannot read {BROKEN}"
    assert shot.stat().st_size > 10_000
    faint = [str(t) for t in texts if t.contrast < 4.5]
    assert faint == [], faint


def test_every_site_is_healthy_and_offered_again_once_the_storage_is_back(
        service, broken, testbed_session):
    testbed_session.up()
    back = dt.datetime.now(dt.UTC)
    wait_for(service, "every site healthy again", lambda m: (
        (cell := probed_after(m["SITE_C"], BROKEN, back)) is not None and cell["ok"]
        and all(s["status"] == "healthy" for s in m.values())))
    assert form_options(service) == {s: s for s in ("SITE_A", "SITE_B", "SITE_C")}
