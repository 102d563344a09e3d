"""The service as the tests run it: researchers with Rucio accounts of their own, their data in
their scopes, and `lofar-datalake serve` started as a real process over TLS."""

from __future__ import annotations

import io
import pwd
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml
from rucio_accounts import add_researcher_account, upload_as
from service_issuer import give_token_client, register_oidc_client, token_options

from lofar_datalake_testbed.layout import free_port

REPO = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).with_name("lofar-datalake"))
STATIONS = ("ams", "dwl", "exl")

# A researcher's workflow: daily statistics of weather stations read from the DataLake, and a
# probe of what the run may see of the service (deterministic, so both runs agree on it; the
# processes it sees differ, so they are kept outside results/). The probe also leaves a daemon
# behind (a double fork into a session of its own), which must not outlive the run.
WORKFLOW = r'''
import json, os, subprocess, sys

SCOPE, PREFIX = config["scope"], config["prefix"]
STATIONS = config["stations"].split(",")


def readable(path):
    try:
        with open(path, "rb") as handle:
            handle.read(1)
        return True
    except OSError:
        return False


def processes():
    """Every process the run can see: its uid and command line, by pid."""
    seen = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read()
            seen[pid] = {"uid": os.stat(f"/proc/{pid}").st_uid,
                         "cmdline": cmdline.replace(b"\0", b" ").decode().strip()}
        except OSError:
            pass
    return seen


rule all:
    input:
        "results/summary.json",
        "results/probe.json",


rule daily:
    input:
        storage.datalake(f"datalake://{SCOPE}/{PREFIX}/{{station}}.csv"),
    output:
        "results/daily/{station}.json",
    run:
        rows = open(input[0]).read().splitlines()[1:]
        values = [float(r.split(",")[1]) for r in rows]
        json.dump({"n": len(values), "mean": sum(values) / len(values)}, open(output[0], "w"))


rule summary:
    input:
        expand("results/daily/{station}.json", station=STATIONS),
    output:
        "results/summary.json",
    run:
        days = [json.load(open(p)) for p in input]
        json.dump({"stations": len(days), "n": sum(d["n"] for d in days)}, open(output[0], "w"))


rule probe:
    output:
        "results/probe.json",
        "probe/env.json",  # outside results/: not a product, the two runs' differ
        "probe/processes.json",
    run:
        subprocess.run(["sh", "-c", 'setsid "$0" -c "import time; time.sleep(3600)" "$1" '
                        "</dev/null >/dev/null 2>&1 &", sys.executable, config["leftover"]],
                       check=True)
        json.dump({"root": os.getuid() == 0,
                   "readable": {p: readable(p) for p in config["forbidden"]},
                   "exists": {p: os.path.exists(p) for p in config["absent"]},
                   "listed": {p: sorted(os.listdir(p)) for p in config["listed"]}},
                  open(output[0], "w"))
        json.dump(dict(os.environ), open(output[1], "w"))
        json.dump(processes(), open(output[2], "w"))
'''


def series(station: str) -> bytes:
    rng = random.Random(station)
    rows = [f"2026-01-01T{h:02d}:00,{rng.gauss(4.0, 3.0):.2f}" for h in range(24)]
    return ("time,celsius\n" + "\n".join(rows) + "\n").encode()


def archive(files: dict[str, str | bytes]) -> bytes:
    """A .tar.gz of `files` (path -> content)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@dataclass
class Researcher:
    name: str
    password: str
    scope: str
    prefix: str
    credential: Path  # the secret the service holds: their Rucio password, or their client's
    token_client: str = ""  # with one at the testbed's issuer (their runs hold tokens): its id

    @property
    def auth(self) -> tuple[str, str]:
        return self.name, self.password

    def dids(self) -> list[str]:
        return [f"{self.scope}:{self.prefix}/{s}.csv" for s in STATIONS]


@dataclass
class Service:
    url: str
    ca: str
    cert: str  # the server's certificate
    rucio_base: str  # the client configuration whose servers the runs talk to
    state: Path
    etc: Path
    args: list[str]
    log: Path
    researchers: dict[str, Researcher]
    proc: subprocess.Popen[bytes] | None = None
    forbidden: list[str] = field(default_factory=list)  # files a run may not read
    hidden: list[str] = field(default_factory=list)  # directories a run sees empty
    oidc_client: str = ""  # its client at the testbed's issuer, when people log in there

    def start(self) -> None:
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen([CLI, "serve", *self.args], cwd=REPO, stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-4000:]
            try:
                requests.get(f"{self.url}/login", verify=self.ca, timeout=5)
                return
            except requests.ConnectionError:
                time.sleep(0.5)
        raise AssertionError("the service did not answer within 120 s: "
                             + self.log.read_text()[-4000:])

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(180)

    def api(self, method: str, path: str, who: str, **kwargs) -> requests.Response:
        return requests.request(method, f"{self.url}{path}", auth=self.researchers[who].auth,
                                verify=self.ca, timeout=120, **kwargs)

    def submit(self, who: str, files: dict[str, str | bytes], dids: list[str] | None = None,
               site: str = "SITE_A", **fields: str) -> requests.Response:
        researcher = self.researchers[who]
        data = {"site": site, "configfile": "config.yaml",
                "dids": "\n".join(dids if dids is not None else researcher.dids()), **fields}
        return self.api("POST", "/api/submissions", who, data=data,
                        files={"archive": ("workflow.tar.gz", archive(files))})

    def workflow(self, who: str, **config: object) -> dict[str, str | bytes]:
        researcher = self.researchers[who]
        values = {"scope": researcher.scope, "prefix": researcher.prefix,
                  "stations": ",".join(STATIONS), "forbidden": self.forbidden,
                  "absent": [str(self.state / "service"), *self.forbidden],
                  "listed": [str(self.state), str(self.state / "runs"), *self.hidden],
                  "leftover": str(self.state), **config}
        return {"Snakefile": WORKFLOW, "config.yaml": yaml.safe_dump(values)}

    def survivors(self, within: float = 30) -> list[str]:
        """The live processes (zombies aside) of the researchers' users that belong to this
        service's runs (their command lines name its state directory: the runs' containers,
        Snakemake, the daemon the workflow leaves behind), once none is left or `within`
        seconds have passed: processes killed with a run's container may take a moment."""
        uids = set()
        for name in self.researchers:
            try:
                uids.add(pwd.getpwnam(f"ldl-{name}").pw_uid)
            except KeyError:
                continue
        deadline = time.monotonic() + within
        while True:
            found = [line for line in _processes(uids) if str(self.state) in line]
            if not found or time.monotonic() > deadline:
                return found
            time.sleep(0.5)

    def wait(self, who: str, submission: int, timeout: float = 900) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            record = self.api("GET", f"/api/submissions/{submission}", who).json()
            if record["state"] in ("done", "failed", "rejected"):
                return record
            time.sleep(2)
        raise AssertionError(f"submission {submission} still {record['state']} after "
                             f"{timeout} s")


def _processes(uids: set[int]) -> list[str]:
    """The live processes of `uids`: pid, state and command line."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            status = dict(line.split(":", 1) for line in (proc / "status").read_text()
                          .splitlines() if ":" in line)
            if int(status["Uid"].split()[0]) in uids and not status["State"].strip().startswith(
                    "Z"):
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                found.append(f"{proc.name} {status['State'].strip()} {cmdline}")
        except (OSError, KeyError, ValueError):
            continue
    return found


def open_directory(prefix: str) -> Path:
    """A directory the researchers' system users can reach (pytest's own are private)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o711)
    return path


def make_service(testbed, limits: dict[str, dict[str, int]] | None = None,
                 probe_interval: int = 0, sites: str = "",
                 read_scopes: dict[str, list[str]] | None = None,
                 oidc_subjects: dict[str, str] | None = None,
                 token_clients: Sequence[str] = ()) -> Iterator[Service]:
    """The service with alice and bob; with `probe_interval` also `probe`, a researcher of
    the same kind (no data of its own) the site-health probes run as; `sites`: a sites file's
    text (default: the testbed's config/sites.example.yaml); `read_scopes`: scopes beyond
    their own that a researcher may read (e.g. the public `lofar`); `oidc_subjects`: people
    log in through the testbed's issuer too (the service's client registered there), each
    researcher named here being the person with that `sub` and no password of the service's;
    `token_clients`: researchers whose runs get access tokens from a token client at the
    testbed's issuer instead of their Rucio password (`give_token_client`)."""
    from lofar_datalake.service.researchers import hash_password

    root = open_directory("lofar-datalake-service-")
    etc = root / "etc"
    etc.mkdir(mode=0o700)
    tag = secrets.token_hex(3)
    researchers: dict[str, Researcher] = {}
    entries = {}
    for name in ("alice", "bob", *(("probe",) if probe_interval else ())):
        account = f"{name}{tag}"
        password = f"pw-{secrets.token_hex(12)}"
        scope = f"user.{account}"
        add_researcher_account(testbed, account, password, scope)
        credential = etc / f"{name}.secret"
        credential.write_text(password)
        credential.chmod(0o600)
        researchers[name] = Researcher(name, f"login-{secrets.token_hex(8)}", scope,
                                       f"stations-{tag}", credential)
        entries[name] = {"password_hash": hash_password(researchers[name].password),
                         "rucio_account": account,
                         "scopes": [scope, *(read_scopes or {}).get(name, [])],
                         "credential": str(credential),
                         "limits": (limits or {}).get(name, {"concurrent_runs": 1})}
        if name in (oidc_subjects or {}):
            entries[name]["oidc_subject"] = (oidc_subjects or {})[name]
            del entries[name]["password_hash"]
        if name in token_clients:
            give_token_client(testbed, researchers[name], entries[name], account)
        if name == "probe":
            continue  # its files are the service's to put
        data = root / "upload" / name
        data.mkdir(parents=True)
        files = []
        for i, station in enumerate(STATIONS):
            path = data / f"{station}.csv"
            path.write_bytes(series(station))
            files.append((path, f"{scope}:{researchers[name].prefix}/{station}.csv",
                          ("SITE_A_DISK", "SITE_B_DISK")[i % 2]))
        upload_as(testbed, root / "rucio" / name, account, password, files)
    (etc / "researchers.yaml").write_text(yaml.safe_dump({"researchers": entries}))
    port = free_port()
    service = Service(
        url=f"https://127.0.0.1:{port}", ca=str(testbed.pki.ca_cert),
        cert=str(testbed.pki.server_cert), rucio_base=str(testbed.layout.client_config),
        state=root / "state",
        etc=etc, log=root / "service.log", researchers=researchers,
        args=["--researchers", str(etc / "researchers.yaml"), "--state", str(root / "state"),
              "--port", str(port), "--tls-cert", str(testbed.pki.server_cert),
              "--tls-key", str(testbed.pki.server_key),
              "--rucio-config", str(testbed.layout.client_config),
              "--ca-bundle", str(testbed.pki.ca_cert), "--workers", "2"])
    if probe_interval:
        service.args += ["--probe", "probe", "--probe-interval", str(probe_interval),
                         "--probe-timeout", "180", "--probe-x509-proxy", str(testbed.pki.proxy)]
    if token_clients:
        service.args += token_options(testbed)
    if sites:
        (etc / "sites.yaml").write_text(sites)
        service.args += ["--sites", str(etc / "sites.yaml")]
    service.forbidden = [str(root / "state" / "service" / "session.key"),
                         str(researchers["bob"].credential), str(testbed.layout.client_config)]
    service.hidden = [str(etc), str(testbed.layout.client_config.parent)]
    if oidc_subjects is not None:
        service.oidc_client = register_oidc_client(testbed, service)
    try:
        service.start()
        yield service
    finally:
        service.stop()
        if service.oidc_client:
            from lofar_datalake_testbed.issuer_accounts import remove_client

            remove_client(testbed.layout, service.oidc_client)
        shutil.rmtree(root, ignore_errors=True)
