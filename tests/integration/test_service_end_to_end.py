"""`lofar-datalake serve` for real: researchers with Rucio accounts and scopes of their own log
in, submit a workflow as an archive, and read the DataLake verdict in pages and JSON. The
service runs on the session's testbed with TLS, its queue in an embedded PostgreSQL; each
comparison runs at a testbed site as the researcher's own system user and Rucio account."""

from __future__ import annotations

import json
import pwd
import re
import signal
import time
from pathlib import Path

import pytest
import requests
from service_support import STATIONS, Service, make_service

from lofar_datalake.service import database

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def service(testbed_session):
    testbed_session.up()
    yield from make_service(testbed_session)


def login(service: Service, who: str) -> requests.Session:
    """A browser's session: the login form, its CSRF token, the cookie."""
    session = requests.Session()
    session.verify = service.ca
    session.trust_env = False  # else $REQUESTS_CA_BUNDLE would win over session.verify
    form = session.get(f"{service.url}/login").text
    token = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
    answer = session.post(f"{service.url}/login", data={
        "username": who, "password": service.researchers[who].password, "csrf": token})
    assert answer.status_code == 200 and "Your limits" in answer.text, answer.text[-2000:]
    return session


@pytest.fixture(scope="module")
def finished(service):
    """Alice's workflow submitted as an archive and run to its end: (as submitted, at the end)."""
    answer = service.submit("alice", service.workflow("alice"))
    assert answer.status_code == 201, answer.text
    submitted = answer.json()
    return submitted, service.wait("alice", submitted["id"])


def test_a_researcher_submits_a_workflow_and_reads_an_equivalent_verdict(service, finished):
    submitted, record = finished
    assert submitted["state"] == "queued" and submitted["site"] == "SITE_A"
    assert record["state"] == "done", (record["error"], service.api(
        "GET", f"/api/submissions/{submitted['id']}/log", "alice").text[-4000:])
    summary = record["summary"]
    assert summary["equivalent"] is True and summary["differing"] == []
    assert summary["products"] == len(STATIONS) + 2  # daily per station, summary, probe
    assert summary["runs"]["datalake"]["files_staged"] == len(STATIONS)
    assert record["verdict"]["equivalent"] is True  # the whole verdict.json, from the database

    # What the run could see of the service: nothing. It ran as the researcher's own user, in
    # a container where the service's files are not even there: of the state directory only
    # the way to its own run, the directories of the other private files empty.
    probe = service.state / "runs" / str(submitted["id"]) / "compare" / "datalake" / (
        "results/probe.json")
    seen = json.loads(probe.read_text())
    assert seen["root"] is False
    assert seen["readable"] == {path: False for path in service.forbidden}
    assert seen["exists"] == {path: False for path in [str(service.state / "service"),
                                                       *service.forbidden]}
    assert seen["listed"] == {str(service.state): ["runs"],
                              str(service.state / "runs"): [str(submitted["id"])],
                              **{directory: [] for directory in service.hidden}}
    # Its own processes only (a PID namespace): all of them its user's, the first its
    # container's; the service is not among them.
    processes = json.loads((probe.parents[1] / "probe" / "processes.json").read_text())
    service_cmdline = Path(f"/proc/{service.proc.pid}/cmdline").read_bytes().replace(
        b"\0", b" ").decode().strip()
    assert {p["uid"] for p in processes.values()} == {pwd.getpwnam("ldl-alice").pw_uid}
    assert Path(processes["1"]["cmdline"].split()[0]).name == "bwrap", processes
    assert service_cmdline not in [p["cmdline"] for p in processes.values()]
    # The daemon it left behind (a session of its own) went with the run.
    assert service.survivors() == []
    # Its environment holds nothing of the service's: no secret, no path into its state.
    session_key = (service.state / "service" / "session.key").read_text().strip()
    bobs_secret = service.researchers["bob"].credential.read_text().strip()
    env = json.loads((probe.parents[1] / "probe" / "env.json").read_text())
    for name, value in env.items():
        for secret in (session_key, bobs_secret, str(service.state / "service"),
                       service.rucio_base):
            assert secret not in value, name

    page = login(service, "alice").get(f"{service.url}/submissions/{submitted['id']}")
    assert 'id="verdict">equivalent<' in page.text
    report = login(service, "alice").get(
        f"{service.url}/submissions/{submitted['id']}/report/report.html")
    assert report.status_code == 200 and "EQUIVALENT" in report.text
    log = service.api("GET", f"/api/submissions/{submitted['id']}/log", "alice")
    assert "==> EQUIVALENT" in log.text


def test_the_pages_read_well_in_a_browser(service, finished, tmp_path):
    """Login, the researcher's page and the verdict, seen in headless Chromium: every text at
    least 4.5:1 against its background (WCAG AA); screenshots kept with
    LOFAR_DATALAKE_SCREENSHOTS=DIR."""
    from browser import Browser

    submitted, _ = finished
    with Browser(trust=Path(service.cert)) as browser:
        browser.open(f"{service.url}/login")
        shots = [browser.screenshot(tmp_path / "service-login.png")]
        browser.page.fill("#username", "alice")
        browser.page.fill("#password", service.researchers["alice"].password)
        browser.page.click("button[type=submit]")
        browser.page.wait_for_selector("#history")
        shots.append(browser.screenshot(tmp_path / "service-home.png"))
        pages = [browser.texts()]
        browser.page.click(f"a[href='/submissions/{submitted['id']}']")
        browser.page.wait_for_selector("#verdict")
        assert browser.page.inner_text("#verdict") == "equivalent"
        assert browser.page.inner_text("#state") == "done"
        shots.append(browser.screenshot(tmp_path / "service-submission.png"))
        pages.append(browser.texts())
    assert all(shot.stat().st_size > 10_000 for shot in shots)
    faint = [str(t) for texts in pages for t in texts if t.contrast < 4.5]
    assert faint == [], faint


def test_a_researcher_sees_only_their_own_submissions(service):
    mine = service.submit("alice", {"Snakefile": "rule all:\n  input: []\n"},
                          dids=["user.nobody:x"]).json()["detail"]
    assert service.api("GET", f"/api/submissions/{mine['id']}", "bob").status_code == 404
    assert mine["id"] not in [s["id"] for s in service.api(
        "GET", "/api/submissions", "bob").json()["history"]]
    assert service.api("GET", f"/api/submissions/{mine['id']}", "alice").status_code == 200
    browser = login(service, "bob")
    assert browser.get(f"{service.url}/submissions/{mine['id']}").status_code == 404
    assert browser.get(
        f"{service.url}/submissions/{mine['id']}/report/report.html").status_code == 404
    wrong = requests.get(f"{service.url}/api/submissions", auth=("alice", "not her password"),
                         verify=service.ca, timeout=30)
    assert wrong.status_code == 401


@pytest.mark.parametrize(("files", "dids", "fields", "expected"), [
    ("good", ["lofar:L700001_SB000_uv.MS.tar"], {}, "lofar:L700001_SB000_uv.MS.tar"),
    ("no config", None, {}, "config.yaml"),
    ("syntax error", None, {}, "line 3"),
    ("good", None, {"site": "SITE_X"}, "SITE_X"),
    ("git", None, {"git_url": "file:///nonexistent/repository",
                   "git_commit": "0" * 40}, "/nonexistent/repository"),
])
def test_a_bad_submission_gets_a_clear_error_and_nothing_runs(service, files, dids, fields,
                                                                 expected):
    workflow = {"good": service.workflow("bob"),
                "no config": {"Snakefile": service.workflow("bob")["Snakefile"]},
                "syntax error": {"Snakefile": "rule all:\n    input: []\nthis is not python\n",
                                 "config.yaml": "{}\n"}}
    if files == "git":
        answer = service.api("POST", "/api/submissions", "bob", data={
            "site": "SITE_A", "configfile": "config.yaml",
            "dids": "\n".join(service.researchers["bob"].dids()), **fields})
    else:
        site = fields.pop("site", "SITE_A")
        answer = service.submit("bob", workflow[files], dids=dids, site=site, **fields)
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert detail["state"] == "rejected" and expected in detail["error"], detail
    assert not (service.state / "runs" / str(detail["id"])).exists()  # nothing kept, nothing ran
    history = service.api("GET", "/api/submissions", "bob").json()["history"]
    assert {"id": detail["id"], "state": "rejected"}.items() <= next(
        s for s in history if s["id"] == detail["id"]).items()


def test_an_archive_over_the_researchers_limit_is_refused(service):
    limit = service.api("GET", "/api/submissions", "bob").json()["limits"]["archive_bytes"]
    big = {**service.workflow("bob"), "data.bin": b"\0" * (limit + 1)}
    answer = service.submit("bob", big)
    assert answer.status_code in (413, 422), answer.text
    assert f"{limit / 1024**2:.0f} MiB" in answer.text


def test_a_restart_loses_nothing(service):
    """Two submissions of alice (one run at a time): the first is running and the second
    queued when the service stops; after the restart the first is resumed and both finish."""
    first = service.submit("alice", service.workflow("alice", note="first")).json()
    second = service.submit("alice", service.workflow("alice", note="second")).json()
    seen = []
    for _ in range(240):
        seen.append([service.api("GET", f"/api/submissions/{s['id']}", "alice").json()["state"]
                     for s in (first, second)])
        if seen[-1] == ["running", "queued"]:
            break
        time.sleep(0.5)
    assert seen[-1] == ["running", "queued"], seen[-5:]
    service.stop(signal.SIGTERM)
    assert service.proc is not None and service.proc.returncode == 0, service.log.read_text()
    assert service.log.read_text().rstrip().endswith("stopped")
    assert not database.is_running(service.state / "service" / "db")  # stopped, not left behind
    assert service.survivors() == []  # the stopped run, and all it started
    service.start()
    records = [service.wait("alice", s["id"]) for s in (first, second)]
    assert [r["state"] for r in records] == ["done", "done"], [
        (r["error"], service.api("GET", f"/api/submissions/{r['id']}/log", "alice").text[-3000:])
        for r in records]
    assert records[0]["attempts"] == 2 and records[1]["attempts"] == 1
    assert all(r["summary"]["equivalent"] for r in records)
