"""Site health for real: the service probes each testbed site at each RSE it reads, as a probe
account of its own (a non-admin Rucio account and scope), through the same sandbox as the
researchers' runs. The matrix goes green; SITE_C's storage server is stopped and its site turns
red with the reason, is no longer offered and refuses a submission naming the RSE, while the
other sites stay offered; once the storage is back the site passes and is offered again. The
page is checked in headless Chromium."""

from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path

import pytest
import requests
from service_support import Service, make_service

pytestmark = pytest.mark.integration

# Every site reads one other RSE and nobody reads SITE_C_DAV but SITE_C: its storage going
# down takes out SITE_C alone. Site A stages by Rucio rules, B and C by the plugin's FTS jobs.
SITES = """
sites:
  SITE_A: {profile: profiles/local, rse: SITE_A_DISK, cores: 2, reads: [SITE_B_DISK]}
  SITE_B: {profile: profiles/local-site-b, rse: SITE_B_DISK, cores: 2, reads: [SITE_A_DISK]}
  SITE_C: {profile: profiles/local-site-c, rse: SITE_C_DAV, cores: 2, reads: [SITE_A_DISK]}
stage_seconds: {preprocess: 20.0, process: 60.0}
"""
BROKEN = "SITE_C_DAV"  # its WebDAV server is stopped
INTERVAL_S = 10  # rounds follow each other (a round takes longer)


@pytest.fixture(scope="module")
def service(testbed_session):
    testbed_session.up()
    yield from make_service(testbed_session, probe_interval=INTERVAL_S, sites=SITES)


def matrix(service: Service) -> dict[str, dict]:
    answer = service.api("GET", "/api/sites", "alice")
    assert answer.status_code == 200, answer.text
    return {s["site"]: s for s in answer.json()["sites"]}


def wait_for(service: Service, what: str, check, timeout: float = 420) -> dict[str, dict]:
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


def offered_in_form(service: Service) -> list[str]:
    home = login(service, "alice").get(f"{service.url}/").text
    return re.findall(r'<option value="([^"]+)">', home)


def test_the_matrix_goes_green_at_every_site(service, testbed_session):
    sites = wait_for(service, "every site healthy", lambda m: all(
        s["status"] == "healthy" for s in m.values()))
    seconds = {f"{name} x {p['rse']}": p["seconds"] for name, s in sites.items()
               for p in s["probes"]}
    print(f"probe seconds: {seconds}")
    assert len(seconds) == 6 and all(s < 120 for s in seconds.values()), seconds
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


@pytest.fixture(scope="module")
def broken(service, testbed_session):
    """SITE_C's storage stopped, and both of SITE_C's probes failed since (at SITE_C_DAV the
    service cannot put the probe file there; reading SITE_A_DISK the workflow cannot bring the
    file to SITE_C_DAV); the storage is back after."""
    [webdav] = [p for p in testbed_session.services() if p.name == f"webdav-{BROKEN}"]
    stopped = dt.datetime.now(dt.UTC)
    webdav.stop()
    try:
        yield stopped, wait_for(service, "both of SITE_C's probes failing", lambda m: all(
            (cell := probed_after(m["SITE_C"], rse, stopped)) is not None and not cell["ok"]
            for rse in (BROKEN, "SITE_A_DISK")))
    finally:
        testbed_session.up()


def test_a_stopped_storage_turns_its_site_red_with_the_reason(service, broken):
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
    # Nobody else reads SITE_C_DAV: the other sites stay offered.
    assert [s for s, h in sites.items() if h["offered"]] == ["SITE_A", "SITE_B"]
    assert offered_in_form(service) == ["SITE_A", "SITE_B"]
    assert service.api("GET", "/api/submissions", "bob").json()["sites"] == ["SITE_A", "SITE_B"]


def test_a_submission_to_the_failing_site_is_rejected_naming_the_rse(service, broken):
    answer = service.submit("alice", service.workflow("alice"), site="SITE_C")
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert detail["state"] == "rejected"
    assert re.match(rf"site SITE_C is not offered: its probe reading {BROKEN} failed "
                    r"(just now|\d+ s ago|\d+ min ago) \(at 20\d\d-", detail["error"]), detail
    assert "choose one of SITE_A, SITE_B" in detail["error"]
    assert not (service.state / "runs" / str(detail["id"])).exists()  # nothing ran


def test_the_sites_page_reads_well_in_a_browser(service, broken, tmp_path):
    """The matrix with green and red cells in headless Chromium: every text at least 4.5:1
    against its background."""
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
        shot = browser.screenshot(tmp_path / "service-sites.png")
        texts = browser.texts()
    assert re.match(r"failed (just now|\d+ (s|min) ago)\n.* Connection refused", red), red
    assert re.match(r"ok (just now|\d+ (s|min) ago)", green), green
    assert shot.stat().st_size > 10_000
    faint = [str(t) for t in texts if t.contrast < 4.5]
    assert faint == [], faint


def test_the_site_is_offered_again_once_its_probes_pass(service, broken, testbed_session):
    testbed_session.up()
    back = dt.datetime.now(dt.UTC)
    sites = wait_for(service, "SITE_C healthy again", lambda m: (
        (cell := probed_after(m["SITE_C"], BROKEN, back)) is not None and cell["ok"]
        and m["SITE_C"]["status"] == "healthy"))
    assert all(s["offered"] for s in sites.values())
    assert offered_in_form(service) == ["SITE_A", "SITE_B", "SITE_C"]
