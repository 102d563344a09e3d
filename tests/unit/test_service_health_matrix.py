"""The site-health probes' pure parts: which site x RSE pairs are probed, which sites the matrix
leaves failing, degraded or healthy, why a failing site is refused and which inputs a degraded
one refuses, ages for people, a probe's names, command and failure detail, and the matrix page
and the form rendered."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest
from starlette.requests import Request

from lofar_datalake.service import health, probing
from lofar_datalake.service.model import ProbeResult, ProbeSettings, Researcher
from lofar_datalake.service.runs import RunPaths
from lofar_datalake.service.web import TEMPLATES
from lofar_datalake.service.worker import SiteEntry

NOW = dt.datetime(2026, 12, 4, 1, 0, tzinfo=dt.UTC)
SITES = {
    "SITE_A": SiteEntry("SITE_A", Path("/p/local"), "SITE_A_DISK", ("SITE_B_DISK", "SITE_C_DAV")),
    "SITE_B": SiteEntry("SITE_B", Path("/p/b"), "SITE_B_DISK", ("SITE_A_DISK", "SITE_B_DISK")),
    "SITE_C": SiteEntry("SITE_C", Path("/p/c"), "SITE_C_DAV"),
}


def result(site: str, rse: str, ok: bool = True, minutes: float = 3, detail: str = ""
           ) -> ProbeResult:
    return ProbeResult(site, rse, ok, NOW - dt.timedelta(minutes=minutes), 7.5, detail)


def all_passing() -> list[ProbeResult]:
    return [result(site, rse) for site, rse in health.pairs(SITES)]


def test_each_site_is_probed_at_its_own_rse_and_each_it_reads_once() -> None:
    assert health.pairs(SITES) == [
        ("SITE_A", "SITE_A_DISK"), ("SITE_A", "SITE_B_DISK"), ("SITE_A", "SITE_C_DAV"),
        ("SITE_B", "SITE_B_DISK"), ("SITE_B", "SITE_A_DISK"),  # its own RSE listed again: once
        ("SITE_C", "SITE_C_DAV")]
    assert health.columns(SITES) == ["SITE_A_DISK", "SITE_B_DISK", "SITE_C_DAV"]


def test_a_site_is_healthy_when_every_latest_probe_passed() -> None:
    sites = health.site_health(SITES, all_passing())
    assert {n: h.status for n, h in sites.items()} == dict.fromkeys(SITES, health.Status.HEALTHY)
    assert health.offered(sites) == ["SITE_A", "SITE_B", "SITE_C"]


def failing(*pairs: tuple[str, str]) -> list[ProbeResult]:
    """Every probe passed but those of `pairs`, which failed."""
    return [result(r.site, r.rse, ok=False, detail=f"x\n{r.rse} refused")
            if (r.site, r.rse) in pairs else r for r in all_passing()]


def test_a_failed_probe_at_a_sites_own_rse_takes_that_site_out_and_only_it() -> None:
    matrix = failing(("SITE_A", "SITE_A_DISK"))
    sites = health.site_health(SITES, matrix)
    assert sites["SITE_A"].status is health.Status.FAILING and not sites["SITE_A"].offered
    assert [r.rse for r in sites["SITE_A"].failed] == ["SITE_A_DISK"]
    assert sites["SITE_A"].unreadable == [] and sites["SITE_A"].summary == "failing"
    assert health.offered(sites) == ["SITE_B", "SITE_C"]
    # Passing again: the latest probe is what counts (Store.probe_matrix gives only that).
    matrix[0] = result("SITE_A", "SITE_A_DISK", minutes=0)
    assert health.site_health(SITES, matrix)["SITE_A"].status is health.Status.HEALTHY


def test_a_site_that_cannot_read_another_rse_is_degraded_and_still_offered() -> None:
    sites = health.site_health(SITES, failing(("SITE_A", "SITE_C_DAV"), ("SITE_A", "SITE_B_DISK")))
    assert sites["SITE_A"].status is health.Status.DEGRADED and sites["SITE_A"].offered
    assert sites["SITE_A"].unreadable == ["SITE_B_DISK", "SITE_C_DAV"]
    assert sites["SITE_A"].summary == "degraded: cannot read SITE_B_DISK, SITE_C_DAV"
    assert health.offered(sites) == ["SITE_A", "SITE_B", "SITE_C"]
    # Its own RSE failing too outweighs what it cannot read.
    sites = health.site_health(SITES, failing(("SITE_A", "SITE_C_DAV"), ("SITE_A", "SITE_A_DISK")))
    assert sites["SITE_A"].status is health.Status.FAILING
    # SITE_B reads its own RSE too (listed in `reads`): a failure there is still its own.
    sites = health.site_health(SITES, failing(("SITE_B", "SITE_B_DISK")))
    assert sites["SITE_B"].status is health.Status.FAILING


def test_a_site_not_probed_yet_is_offered_and_said_to_be_so() -> None:
    partial = [result("SITE_A", "SITE_A_DISK")]
    sites = health.site_health(SITES, partial)
    assert sites["SITE_A"].status is health.Status.UNPROBED
    assert sites["SITE_A"].cells["SITE_B_DISK"] is None
    assert sites["SITE_C"].status is health.Status.UNPROBED
    assert health.offered(sites) == ["SITE_A", "SITE_B", "SITE_C"]
    # A failure outweighs probes not run yet; probes of pairs no longer listed do not count.
    failed = [result("SITE_B", "SITE_A_DISK", ok=False), result("SITE_C", "SITE_B_DISK", False),
              result("SITE_A", "SITE_A_DISK", ok=False)]
    sites = health.site_health(SITES, failed)
    assert sites["SITE_A"].status is health.Status.FAILING
    assert sites["SITE_B"].status is health.Status.DEGRADED
    assert sites["SITE_C"].status is health.Status.UNPROBED


def test_a_refusal_names_the_site_its_own_rse_when_and_why() -> None:
    matrix = [*all_passing()[1:], result("SITE_A", "SITE_A_DISK", ok=False, minutes=2,
                                         detail="Traceback...\nupload to SITE_A_DISK refused"),
              result("SITE_A", "SITE_C_DAV", ok=False, detail="not this one")]
    sites = health.site_health(SITES, matrix)
    said = health.refusal(sites["SITE_A"], ["SITE_B", "SITE_C"], NOW)
    assert said == (
        "site SITE_A is not offered: its probe reading SITE_A_DISK failed 2 min ago (at "
        "2026-12-04 00:58:00 UTC: upload to SITE_A_DISK refused), so it can neither stage "
        "inputs nor store products there. It is offered again once that probe passes (see "
        "/sites); choose one of SITE_B, SITE_C")
    assert health.refusal(sites["SITE_A"], [], NOW).endswith(
        "no site passes its probes at the moment")


def degraded_a() -> health.SiteHealth:
    """SITE_A unable to read SITE_C_DAV (since 2 min) and SITE_B_DISK (since 5 min)."""
    matrix = [r for r in all_passing() if r.site != "SITE_A" or r.rse == "SITE_A_DISK"]
    matrix += [result("SITE_A", "SITE_C_DAV", ok=False, minutes=2,
                      detail="Traceback...\nput to SITE_C_DAV: Connection refused"),
               result("SITE_A", "SITE_B_DISK", ok=False, minutes=5, detail="stage timed out")]
    return health.site_health(SITES, matrix)["SITE_A"]


def test_a_degraded_site_refuses_a_file_whose_replicas_are_all_where_it_cannot_read() -> None:
    said = health.input_refusal(degraded_a(), {
        "user.a:c.csv": {"user.a:c.csv": ["SITE_C_DAV"]},
        "user.a:ab.csv": {"user.a:ab.csv": ["SITE_A_DISK", "SITE_C_DAV"]}}, NOW)
    assert said == (
        "site SITE_A cannot read your input user.a:c.csv, whose only replicas are on "
        "SITE_C_DAV: its probe reading SITE_C_DAV failed 2 min ago (at 2026-12-04 00:58:00 UTC: "
        "put to SITE_C_DAV: Connection refused). Choose another site (see /sites), or submit "
        "again once that probe passes")


def test_a_degraded_site_names_the_files_of_a_dataset_it_cannot_read_and_each_rse() -> None:
    files = {f"user.a:f{i}": ["SITE_C_DAV"] for i in range(5)}
    files |= {"user.a:f5": ["SITE_B_DISK", "SITE_C_DAV"], "user.a:ok": ["SITE_C_DAV", "SITE_X"]}
    said = health.input_refusal(degraded_a(), {"user.a:ds": files,
                                               "user.a:one": {"user.a:g": ["SITE_B_DISK"]}}, NOW)
    assert said is not None
    assert said.startswith(
        "site SITE_A cannot read the files user.a:f0, user.a:f1, user.a:f2 and 3 more of your "
        "input user.a:ds, whose only replicas are on SITE_B_DISK, SITE_C_DAV; the file "
        "user.a:g of your input user.a:one, whose only replicas are on SITE_B_DISK: its probe "
        "reading SITE_B_DISK failed 5 min ago (at 2026-12-04 00:55:00 UTC: stage timed out); "
        "its probe reading SITE_C_DAV failed 2 min ago")
    assert said.endswith("or submit again once those probes pass")
    assert "user.a:ok" not in said  # a replica on an RSE not probed: not the probes' to judge


def test_a_degraded_site_takes_inputs_it_can_read_and_files_without_replicas() -> None:
    site = degraded_a()
    assert health.input_refusal(site, {
        "user.a:ds": {"user.a:x": ["SITE_A_DISK"], "user.a:y": ["SITE_C_DAV", "SITE_A_DISK"]},
        "user.a:lost": {"user.a:lost": []}}, NOW) is None
    assert health.input_refusal(site, {}, NOW) is None
    # A healthy site, or one failing at its own RSE only, refuses no input by its replicas.
    healthy = health.site_health(SITES, all_passing())["SITE_A"]
    own = health.site_health(SITES, failing(("SITE_A", "SITE_A_DISK")))["SITE_A"]
    for other in (healthy, own):
        assert health.input_refusal(other, {"user.a:d": {"user.a:d": ["SITE_A_DISK"]}},
                                    NOW) is None


def test_a_cell_shows_a_long_failures_start_and_reason() -> None:
    assert health.gist("first\nupload to X failed: refused") == "upload to X failed: refused"
    long = health.gist("upload of " + "x " * 150 + "failed: Connection refused; check it")
    assert long.startswith("upload of x x") and long.endswith(" failed: Connection refused; "
                                                              "check it")
    assert " … x " in long and len(long) <= 180 and health.gist("") == "no detail"
    unbroken = health.gist("    user.p:" + "n" * 200 + " not stored: upload failed; run it again")
    assert unbroken.startswith("user.p:nnn") and unbroken.endswith(" upload failed; run it again")


@pytest.mark.parametrize(("seconds", "said"), [
    (0, "just now"), (4.9, "just now"), (40, "40 s ago"), (59.4, "59 s ago"), (60, "1 min ago"),
    (3 * 60 + 59, "3 min ago"), (3600, "1 h ago"), (47 * 3600, "47 h ago"),
    (3 * 86400, "3 days ago")])
def test_ages_read_as_people_say_them(seconds: float, said: str) -> None:
    assert health.age(seconds) == said


def test_the_api_lists_each_cell_with_its_age_and_detail() -> None:
    sites = health.site_health(SITES, [result("SITE_C", "SITE_C_DAV", ok=False, detail="no")])
    assert health.as_json(sites, NOW)[2] == {
        "site": "SITE_C", "rse": "SITE_C_DAV", "status": "failing", "offered": False,
        "cannot_read": [],
        "probes": [{"rse": "SITE_C_DAV", "probed": True, "ok": False,
                    "checked_at": "2026-12-04T00:57:00+00:00", "age": "3 min ago",
                    "seconds": 7.5, "detail": "no"}]}
    assert health.as_json(sites, NOW)[0]["probes"][0] == {"rse": "SITE_A_DISK",
                                                         "probed": False}
    degraded = health.as_json({"SITE_A": degraded_a()}, NOW)[0]
    assert degraded["status"] == "degraded" and degraded["offered"]
    assert degraded["cannot_read"] == ["SITE_B_DISK", "SITE_C_DAV"]


def test_a_probe_reads_a_new_file_and_stores_a_new_product() -> None:
    plan = probing.plan("SITE A/x", "SITE_C_DAV", "user.probe", NOW, token="t0k")
    assert plan.input == "service-probe/in/SITE_C_DAV/SITE_A_x/20261204T010000Z.txt"
    assert plan.output == "service-probe/out/SITE_A_x/SITE_C_DAV/20261204T010000Z.txt"
    assert plan.content.decode() == (
        "lofar-datalake site-health probe of SITE_C_DAV for SITE A/x at 20261204T010000Z t0k\n")
    assert plan.config() == {"scope": "user.probe", "input": plan.input,
                             "output": plan.output, "site": "SITE A/x",
                             "sha256": hashlib.sha256(plan.content).hexdigest()}
    later = probing.plan("SITE A/x", "SITE_C_DAV", "user.probe", NOW + dt.timedelta(seconds=1))
    assert later.input != plan.input and later.output != plan.output  # Rucio names: immutable


def test_the_probe_runs_the_probe_workflow_with_the_sites_profile_as_the_probe_account(
        ) -> None:
    paths = RunPaths(Path("/state/runs/probe-SITE_C-SITE_A_DISK"))
    probe = Researcher("probe", "$argon2id$x", "probe7", ("user.probe7",), "/etc/p.secret")
    command = probing.probe_command(paths, SITES["SITE_C"], probe, 60)
    assert command[1:3] == ["--snakefile", str(probing.SNAKEFILE)]
    assert probing.SNAKEFILE.is_file()
    options = dict(zip(command[1::2], command[2::2], strict=False))
    assert options["--profile"] == "/p/c" and options["--directory"] == str(paths.root / "work")
    assert options["--configfile"] == str(paths.root / "probe.json")
    assert options["--storage-datalake-account"] == "probe7"
    assert options["--storage-datalake-username"] == "probe7"
    assert options["--storage-datalake-rucio-config"] == str(paths.rucio_config)
    assert options["--storage-datalake-stage-timeout"] == "60"
    assert options["--storage-datalake-output-rules"] == ""  # no copies elsewhere
    # Its files expire: a probe every few minutes would otherwise pile them up.
    assert options["--storage-datalake-output-lifetime"] == str(probing.KEEP_S)
    assert options["--storage-datalake-rule-lifetime"] == str(probing.KEEP_S)
    assert not any("secret" in part or "password" in part for part in command)


def test_a_failures_detail_says_what_failed_then_why_and_no_secret() -> None:
    log = "\n".join([
        *(f"datalake: step {i} done" for i in range(30)),
        "Error in rule probe:", "job      count", "-----  -------", "probe        1",
        "datalake: password hunter2 in /srv/state/runs/probe-A-B/work/x",
        "Authorization: Bearer eyJhbGciOi.payload.sig", "", "[Fri Dec  4 00:32:57 2026]",
        "WorkflowError:", "datalake://user.p/service-probe/out/t.txt (in storage)",
        "Shutting down, this might take some time.",
        "Exiting because a job execution failed. Look below for error messages",
        "Complete log: .snakemake/log/2026.snakemake.log",
        "WorkflowError:", "At least one job did not complete successfully."])
    detail = probing.failure_detail("the probe workflow failed (exit 1)", log, ["hunter2"],
                                    ["/srv/state/runs/probe-A-B", "/srv"])
    lines = detail.splitlines()
    assert len(lines) == 1 + probing.DETAIL_LINES
    assert lines[0] == "the probe workflow failed (exit 1)"
    assert lines[-2:] == ["datalake: password *** in …/work/x",
                          "Authorization: Bearer ***"]
    assert "hunter2" not in detail and "eyJ" not in detail and "Complete log" not in detail
    assert "count" not in detail and "Error in rule" not in detail
    # A long line keeps its start and its end (the reason); the whole keeps the last line.
    reason = "upload of x failed: " + "/y" * 600 + " (connection refused)"
    long = probing.failure_detail("the probe workflow failed (exit 1)", "\n".join(
        ["z" * 900] * 20 + [reason]), [])
    assert long.endswith("(connection refused)") and len(long) <= probing.DETAIL_CHARS
    assert long.splitlines()[-1].startswith("upload of x failed: /y/y")
    assert max(map(len, long.splitlines())) <= 700
    assert probing.failure_detail("", "", []) == ""


def page(template: str, **context: object) -> str:
    request = Request({"type": "http", "method": "GET", "path": "/", "headers": [],
                       "query_string": b""})
    return " ".join(TEMPLATES.get_template(template).render(request=request, csrf="t",
                                                            **context).split())


def test_the_matrix_page_shows_green_red_degraded_and_not_probed_cells() -> None:
    matrix = failing(("SITE_A", "SITE_A_DISK"), ("SITE_B", "SITE_A_DISK"))
    matrix[0] = result("SITE_A", "SITE_A_DISK", ok=False, detail="x\nupload to SITE_A_DISK refused")
    shown = page("sites.html", user=None, sites=health.site_health(SITES, matrix),
                 rses=health.columns(SITES), probes=ProbeSettings("probe", 600), now=NOW)
    assert "Every 10 min each site" in shown
    assert '<th>SITE_B <span class="hint">on SITE_B_DISK</span></th>' in shown
    assert 'class="cell cell-failed" data-rse="SITE_A_DISK"' in shown
    assert "failed</strong> 3 min ago" in shown and "upload to SITE_A_DISK refused" in shown
    assert shown.count("cell cell-ok") == 4 and shown.count("cell cell-na") == 3
    assert ('<span class="state site-failing">failing</span> <span class="hint">not offered'
            in shown)
    assert ('<span class="state site-degraded">degraded: cannot read SITE_A_DISK</span> '
            '<span class="hint">offered' in shown)


def test_the_form_offers_a_degraded_site_saying_what_it_cannot_read() -> None:
    user = Researcher("alice", "", "alice7", ("user.alice7",), "")
    shown = page("home.html", user=user, history=[], usage={"running": 0, "queued": 0},
                 limits=user.limits, sites=["SITE_A", "SITE_B"],
                 cannot_read={"SITE_A": ["SITE_B_DISK", "SITE_C_DAV"]})
    assert ('<option value="SITE_A">SITE_A (cannot read SITE_B_DISK, SITE_C_DAV)</option>'
            '<option value="SITE_B">SITE_B</option>') in shown
