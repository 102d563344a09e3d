"""The testbed's HTCondor site (`testbed up --sites htcondor`) next to the session's DataLake.

A job submitted from the pool's access point (the chroot, as the submitter) reaches the
DataLake on 127.0.0.1 as a grid job would: Rucio's /ping, FTS's root and the site's WebDAV
RSE, all over https verified with the CA bundle the site publishes; its result comes back by
HTCondor's file transfer. It runs as the job account in a scratch sandbox and can read none of
the testbed's secrets. A job whose input is missing is held, and the site says why. Then the
site alone is stopped: nothing runs in the chroot, nothing stays mounted. Measured on 2 cores:
site up ~5 s, the jobs ~5 s, the module 25-35 s with the session's DataLake and the chroot
cached (building the chroot adds ~35-65 s on a new machine).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import site_run  # shared by the site tests (same test directory)

from lofar_datalake_testbed import htcondor_chroot, sites
from lofar_datalake_testbed.orchestrator import Testbed as DataLake
from lofar_datalake_testbed.site_htcondor import TestbedHTCondor

pytestmark = [pytest.mark.timeout(600), pytest.mark.sites]

RSE = "SITE_HTCONDOR_DAV"
# Runs on the worker with the venv's Python: GETs each URL, tries to read each secret path.
PROBE = """\
#!{python}
import json, os, pwd, ssl, sys, urllib.error, urllib.request

ca, urls, secrets = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(",")
result = {{"user": pwd.getpwuid(os.getuid()).pw_name, "cwd": os.getcwd(),
          "scratch": os.environ.get("_CONDOR_SCRATCH_DIR"), "get": {{}}, "read": {{}}}}
verified = ssl.create_default_context(cafile=ca)
for url in urls:
    try:
        with urllib.request.urlopen(url, context=verified, timeout=20) as answer:
            result["get"][url] = [answer.status, answer.read(2000).decode(errors="replace")]
    except urllib.error.HTTPError as err:
        result["get"][url] = [err.code, err.read(2000).decode(errors="replace")]
    except Exception as err:
        result["get"][url] = [0, repr(err)]
try:  # without the testbed's CA the storage must not be trusted
    urllib.request.urlopen(urls[-1], context=ssl.create_default_context(), timeout=20)
    result["unverified"] = "accepted"
except Exception as err:
    result["unverified"] = repr(err)
for path in secrets:
    try:
        with open(path, "rb") as handle:
            handle.read(1)
        result["read"][path] = "READ"
    except OSError as err:
        result["read"][path] = type(err).__name__
with open("probe.json", "w") as out:
    json.dump(result, out)
"""
SUBMIT = """\
universe = vanilla
executable = probe.py
arguments = "{args}"
should_transfer_files = YES
when_to_transfer_output = ON_EXIT
transfer_output_files = probe.json
{extra}
output = {name}.out
error = {name}.err
log = {name}.log
request_cpus = 1
request_memory = 64
queue
"""


def _require_pool() -> None:
    needed = ("chroot", "mount", "umount")
    if not htcondor_chroot.is_complete(htcondor_chroot.chroot_path()):
        needed += ("debootstrap",)
    site_run.require(needed, "the testbed's HTCondor site (chroot, bind mounts, daemons)")


def _submit(site: TestbedHTCondor, run_dir: Path, name: str) -> str:
    done = subprocess.run(
        [*site.exec_prefix(run_dir), "condor_submit", "-terse", f"{name}.sub"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.split(".")[0].strip()  # "12.0 - 12.0" -> cluster 12


def _secrets(bed: DataLake, site: TestbedHTCondor) -> list[Path]:
    """What the job account must not read: the pipeline account's Rucio config, the root
    account's, the testbed's private keys and HTCondor's own keys in the pool root."""
    layout, pki = bed.layout, bed.pki
    found = [layout.client_config, layout.server_config, pki.ca_key, pki.server_key, pki.proxy]
    root = site.pool.root
    found += [root / "hostkey.pem", root / "trust_domain_ca_privkey.pem"]
    found += [p for d in ("passwords.d", "tokens.d") for p in [root / d / "POOL", root / d]]
    return found


def test_testbed_htcondor_site(
    testbed_session: DataLake, capsys: pytest.CaptureFixture[str]
) -> None:
    _require_pool()
    bed, layout = testbed_session, testbed_session.layout
    site = sites.compute_site(layout, "htcondor")
    assert isinstance(site, TestbedHTCondor) and site.rse == RSE
    chroot = site.pool.chroot
    if htcondor_chroot.mounts_under(chroot) or htcondor_chroot.processes_in(chroot):
        pytest.fail(f"the HTCondor chroot {chroot} is in use by another pool")
    timings: dict[str, float] = {}
    try:
        started = time.monotonic()
        bed.up(["htcondor"])
        timings["up"] = time.monotonic() - started
        _check_jobs(bed, site, timings)

        capsys.readouterr()
        assert bed.status(), capsys.readouterr().out
        rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith("htcondor/")]
        names = {r.split()[0].removeprefix("htcondor/"): r.split()[1] for r in rows}
        wanted = ("condor_master", "collector", "negotiator", "schedd", "startd")
        assert all(names.get(n) == "up" for n in wanted), rows
        assert f"127.0.0.1:{site.pool.port()}" in rows[0], rows
    finally:
        started = time.monotonic()
        killed = site.down()
        sites.remember(layout, [])
        timings["down"] = time.monotonic() - started
        print(f"\nHTCondor testbed site, seconds: {timings}")
    assert killed == [], f"killed at down: {killed}"
    assert htcondor_chroot.processes_in(chroot) == []
    assert htcondor_chroot.mounts_under(chroot) == []
    assert not (chroot / str(site.pool.root).lstrip("/")).exists(), "mount point left in chroot"
    assert all(row[1] == "down" for row in site.status_rows())


def _check_jobs(bed: DataLake, site: TestbedHTCondor, timings: dict[str, float]) -> None:
    ports = bed.layout.ports()
    urls = [
        f"https://127.0.0.1:{ports['rucio']}/ping",
        f"https://127.0.0.1:{ports['fts']}/",
        f"https://127.0.0.1:{ports['dav_' + RSE]}/",
    ]
    ca = site.ca_bundle()
    run_dir = site.run_area() / "probe"
    run_dir.mkdir()
    (run_dir / "probe.py").write_text(PROBE.format(python=Path(sys.prefix) / "bin" / "python"))
    (run_dir / "probe.py").chmod(0o755)
    secrets = _secrets(bed, site)
    args = f"{ca} {','.join(urls)} {','.join(str(p) for p in secrets)}"
    (run_dir / "probe.sub").write_text(SUBMIT.format(args=args, extra="", name="probe"))
    # Its input does not exist: HTCondor holds the job and must say why.
    missing = "transfer_input_files = not-there.dat"
    (run_dir / "held.sub").write_text(SUBMIT.format(args=args, extra=missing, name="held"))
    site.prepare_run_dir(run_dir)

    started = time.monotonic()
    cluster = _submit(site, run_dir, "probe")
    waited = subprocess.run(
        [*site.exec_prefix(run_dir), "condor_wait", "-wait", "60", "probe.log", cluster],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    timings["probe_job"] = time.monotonic() - started
    err = (run_dir / "probe.err").read_text() if (run_dir / "probe.err").exists() else ""
    assert waited.returncode == 0, f"{waited.stdout}{waited.stderr}\n{err}\n{site.pool.logs()}"
    result = json.loads((run_dir / "probe.json").read_text())  # brought back by HTCondor

    rucio, fts, dav = (result["get"][u] for u in urls)
    assert rucio[0] == 200 and "version" in json.loads(rucio[1]), rucio
    # The FTS service itself (TLS verified), refusing a job that holds no client certificate.
    assert fts[0] == 401 and "client certificate" in json.loads(fts[1])["message"], fts
    assert dav[0] == 200, dav  # the RSE's root collection, TLS verified against the bundle
    assert "CERTIFICATE_VERIFY_FAILED" in result["unverified"], result["unverified"]
    assert ca.stat().st_mode & 0o004 and ca.parent.stat().st_mode & 0o005 == 0o005
    assert result["user"] == htcondor_chroot.EXECUTE_USER[0], result
    sandbox = Path(result["cwd"])
    assert sandbox.parent == site.pool.execute_dir and sandbox.name.startswith("dir_"), result
    assert result["scratch"] == str(sandbox), result
    readable = {p: how for p, how in result["read"].items() if how == "READ"}
    assert readable == {}, f"the job account read secrets: {readable}"
    assert set(result["read"]) == {str(p) for p in secrets}, result["read"]

    held = _submit(site, run_dir, "held")
    deadline = time.monotonic() + 60
    while not (reasons := site.hold_reasons(held)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert list(reasons) == [f"{held}.0"], reasons
    assert "not-there.dat" in reasons[f"{held}.0"], reasons
    assert site.hold_reasons(cluster) == {}  # finished, not held
    subprocess.run([*site.exec_prefix(run_dir), "condor_rm", held], check=True, timeout=30)
    site.pool.wait_idle()
