"""`lofar-datalake serve` for researchers whose runs hold access tokens only: each has a token
client at the testbed's issuer (no Rucio password the service knows), registered with their
own storage scopes and the audiences of Rucio, FTS and the storage, and an identity that maps
its tokens to their non-admin Rucio account. At SITE_B, whose profile stages with FTS, the
token is what Rucio, the FTS service and both storages take; the service renews it while the
run lasts, and neither it nor the client's secret is left anywhere a run leaves things. A client
granted less than a run needs, or one the issuer does not know, fails the submission with the
issuer's answer. A probe login with a token client probes SITE_B and SITE_C with its token."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterable
from pathlib import Path

import pytest
from secret_search import Sampler, files_containing, process_args
from service_issuer import register_token_client
from service_support import STATIONS, Service, make_service

from datalake_core.journal import InputEvent, read_journal
from lofar_datalake_testbed import tokens

pytestmark = pytest.mark.integration

# Short, so that the run outlives its first token (renewed after 10 s) and would fail without
# the renewed ones: a comparison runs two Snakemake runs and FTS copies, far longer than that.
LIFETIME_S = 20
_JWT = re.compile(rb"eyJ[\w-]*\.[\w-]+\.[\w-]*")


@pytest.fixture(scope="module")
def service(testbed_session):
    testbed_session.up()
    yield from make_service(testbed_session, token_clients=("alice", "bob"))


def claims(token: bytes | str) -> dict:
    part = (token.encode() if isinstance(token, str) else token).split(b".")[1]
    return json.loads(base64.urlsafe_b64decode(part + b"=" * (-len(part) % 4)))


def tokens_of(client: str, roots: Iterable[Path], skip: Iterable[Path] = ()) -> list[Path]:
    """Files under `roots` holding any JWT the issuer gave `client`."""
    found = []
    for path in files_containing("eyJ", roots, skip):
        for match in _JWT.findall(path.read_bytes()):
            try:
                if claims(match).get("sub") == client:
                    found.append(path)
                    break
            except ValueError:
                continue
    return found


@pytest.fixture(scope="module")
def finished(service: Service, testbed_session):
    """Alice's workflow at SITE_B, her client's tokens living LIFETIME_S; the token file and the
    process list sampled while it runs: (submitted, at the end, samples)."""
    alice = service.researchers["alice"]
    register_token_client(testbed_session, alice, [alice.scope], lifetime=LIFETIME_S)
    answer = service.submit("alice", service.workflow("alice"), site="SITE_B")
    assert answer.status_code == 201, answer.text
    submitted = answer.json()
    token_file = service.state / "runs" / str(submitted["id"]) / "home" / "bearer-token"

    def token() -> str:
        return f"{token_file.read_text()} {time.time()}"  # when seen, to judge its expiry

    with Sampler({"token": token, "ps": process_args}, every=1.0) as sampled:
        record = service.wait("alice", submitted["id"])
    return submitted, record, sampled


def test_a_researcher_with_only_a_token_client_runs_at_an_fts_site_with_an_equivalent_verdict(
        service, finished):
    submitted, record, sampled = finished
    run = service.state / "runs" / str(submitted["id"])
    assert record["state"] == "done", (record["error"], service.api(
        "GET", f"/api/submissions/{submitted['id']}/log", "alice").text[-4000:])
    summary = record["summary"]
    assert summary["equivalent"] is True and summary["differing"] == []
    assert summary["products"] == len(STATIONS) + 2
    # Every input was read from the site's RSE: FTS copied those elsewhere with the token.
    alice = service.researchers["alice"]
    read = {e.did: e.rse for e in read_journal(run / "compare" / "datalake")
            if isinstance(e, InputEvent)}
    assert read == {did: "SITE_B_DISK" for did in alice.dids()}

    # The run held a token and nothing else: no password, no certificate; Rucio in oidc mode.
    env = json.loads((run / "compare" / "datalake" / "probe" / "env.json").read_text())
    assert env["BEARER_TOKEN_FILE"] == str(run / "home" / "bearer-token")
    assert not {"SNAKEMAKE_STORAGE_DATALAKE_PASSWORD", "X509_USER_PROXY"} & set(env)
    config = (run / "rucio.cfg").read_text()
    assert "auth_type = oidc" in config and "password" not in config

    # Renewed while it ran: more than one token, each seen before it expired, all for the
    # audiences and scopes the run needs, none beyond her own scope for writing.
    seen = {}
    for sample in sampled.seen.get("token", ()):
        value, _, at = sample.rpartition(" ")
        seen.setdefault(value, float(at))
    assert len(seen) >= 2, "the token was never renewed"
    own = "/" + alice.scope.replace(".", "/")
    for value, at in seen.items():
        said = claims(value)
        assert said["sub"] == alice.token_client and at < said["exp"]
        assert set(said["scope"].split()) == {"openid", "profile", f"storage.read:{own}",
                                              f"storage.create:{own}", f"storage.modify:{own}"}
        assert "rucio" in said["aud"] and tokens.ANY_AUDIENCE not in said["aud"]


def test_neither_the_client_secret_nor_a_token_is_left_where_the_run_leaves_things(
        service, finished, testbed_session):
    submitted, record, sampled = finished
    run = service.state / "runs" / str(submitted["id"])
    alice = service.researchers["alice"]
    secret = alice.credential.read_text().strip()
    layout = testbed_session.layout
    fts_store = list(layout.fts_dir.glob("fts.sqlite*"))  # FTS keeps a job's token, as FTS does
    assert not (run / "home" / "bearer-token").exists()
    assert not list(run.glob("compare/*/.snakemake/datalake-credential"))
    roots = [service.state, service.log, layout.logs, layout.fts_dir]
    assert files_containing(secret, roots) == []
    assert tokens_of(alice.token_client, roots, skip=fts_store) == []
    answers = [service.api("GET", f"/api/submissions/{submitted['id']}{part}", "alice").text
               for part in ("", "/log")]
    assert not [a for a in answers if secret in a or _JWT.search(a.encode())]
    assert secret not in json.dumps(record) and not _JWT.search(json.dumps(record).encode())
    assert sampled.containing(secret) == []
    assert not [s for s in sampled.seen.get("ps", ()) if _JWT.search(s.encode())]


def test_a_token_client_without_storage_create_on_its_scope_fails_naming_the_scope(
        service, testbed_session):
    bob = service.researchers["bob"]
    own = "/" + bob.scope.replace(".", "/")
    register_token_client(testbed_session, bob, [bob.scope], without=[f"storage.create:{own}"])
    answer = service.submit("bob", service.workflow("bob"), site="SITE_B")
    assert answer.status_code == 201, answer.text
    submitted = answer.json()["id"]
    record = service.wait("bob", submitted, timeout=300)
    assert record["state"] == "failed"
    issuer = tokens.issuer_url(testbed_session.layout.ports())
    assert record["error"].startswith(
        f"no credentials for the run: the token issuer {issuer} did not grant client "
        f"{bob.token_client} storage.create:{own};"), record["error"]
    assert bob.credential.read_text().strip() not in json.dumps(record)
    assert not (service.state / "runs" / str(submitted) / "compare").exists()  # nothing ran


def test_a_token_client_whose_secret_the_issuer_does_not_know_is_refused_with_its_answer(
        service, testbed_session):
    bob = service.researchers["bob"]
    secret = bob.credential.read_text()
    try:
        bob.credential.write_text("not-the-registered-secret")
        register_token_client(testbed_session, bob, [bob.scope])
        bob.credential.write_text(secret)  # the service holds the old one
        answer = service.submit("bob", service.workflow("bob"), site="SITE_B")
    finally:
        bob.credential.write_text(secret)
        register_token_client(testbed_session, bob, [bob.scope])
    record = answer.json()
    record = record.get("detail", record)
    assert record["state"] == "rejected", record
    issuer = tokens.issuer_url(testbed_session.layout.ports())
    assert record["error"].startswith(
        f"Rucio cannot be asked as you: the token issuer {issuer} refused a token for client "
        f"{bob.token_client}: HTTP 401 invalid_client"), record["error"]
    assert secret.strip() not in json.dumps(record)


# SITE_B and SITE_C both stage with FTS: each probed at its own RSE and at SITE_A_DISK.
PROBED_SITES = """
sites:
  SITE_B: {profile: profiles/local-site-b, rse: SITE_B_DISK, cores: 2, reads: [SITE_A_DISK]}
  SITE_C: {profile: profiles/local-site-c, rse: SITE_C_DAV, cores: 2, reads: [SITE_A_DISK]}
stage_seconds: {preprocess: 20.0, process: 60.0}
"""


@pytest.fixture(scope="module")
def probing(testbed_session):
    """The service with a probe login whose client gives the probes tokens (one round)."""
    testbed_session.up()
    yield from make_service(testbed_session, probe_interval=3600, sites=PROBED_SITES,
                            token_clients=("probe",))


def test_a_probe_login_with_a_token_client_probes_the_fts_sites_with_its_token(probing):
    service = probing
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        sites = service.api("GET", "/api/sites", "alice").json()["sites"]
        cells = {(s["site"], p["rse"]): p for s in sites for p in s["probes"]}
        if len(cells) == 4 and all(p["probed"] for p in cells.values()):
            break
        time.sleep(3)
    assert {k: (p["ok"], p["detail"]) for k, p in cells.items()} == {
        (site, rse): (True, "") for site, rse in (
            ("SITE_B", "SITE_B_DISK"), ("SITE_B", "SITE_A_DISK"),
            ("SITE_C", "SITE_C_DAV"), ("SITE_C", "SITE_A_DISK"))}
    for site, rse in cells:  # Rucio, FTS and the storage took the token alone
        run = service.state / "runs" / f"probe-{site}-{rse}"
        assert "auth_type = oidc" in (run / "rucio.cfg").read_text()
        assert not (run / "home" / "bearer-token").exists()
    secret = service.researchers["probe"].credential.read_text().strip()
    assert files_containing(secret, [service.state, service.log]) == []
