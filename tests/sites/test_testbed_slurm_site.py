"""The testbed's Slurm site as a user meets it: `testbed up --sites slurm` next to the session's
DataLake, a batch job submitted from the host (no nsenter) that reaches the Rucio server, the
FTS service and a WebDAV RSE at the host's URLs with TLS verified against the testbed's CA,
the site's rows in `testbed status`, healing of a dead relay, and a `down` that leaves nothing
behind (processes, namespace, /etc/slurm/slurm.conf). About 20 s on 2 cores."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import site_run  # shared by the site tests (same test directory)

# Modules, not their classes: pytest would try to collect classes named Test*.
from lofar_datalake_testbed import orchestrator, site_slurm, sites
from lofar_datalake_testbed.layout import LOOPBACK
from lofar_datalake_testbed.site_slurm import NETNS
from lofar_datalake_testbed.slurm import SYSTEM_CONF

pytestmark = pytest.mark.timeout(180)

REQUIRED = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "nsenter", "ip")
NETNS_FILE = Path("/run/netns") / NETNS

# What the batch job runs (with this interpreter, which has requests): one request to each kind
# of DataLake service, at the URLs the host uses, and the network namespace it ran in.
PROBE = """
import json, os, sys, requests
ca, rucio, fts, dav, out = sys.argv[1:]
answers = {
    "rucio": requests.get(rucio + "/ping", timeout=10, verify=ca).json(),
    "fts": requests.get(fts + "/", timeout=10, verify=ca).status_code,
    "webdav": requests.get(dav + "/", timeout=10, verify=ca).status_code,
    "netns": os.stat("/proc/self/ns/net").st_ino,
}
with open(out, "w") as handle:
    json.dump(answers, handle)
"""


@pytest.fixture(scope="module")
def site(testbed_session: orchestrator.Testbed) -> Iterator[site_slurm.TestbedSlurm]:
    site_run.require(REQUIRED, "the testbed's Slurm site (Debian's slurm-wlm and munge)")
    if SYSTEM_CONF.exists() and not SYSTEM_CONF.is_symlink():
        pytest.skip(f"{SYSTEM_CONF} is a real Slurm installation's; the test cluster needs it")
    if SYSTEM_CONF.exists():
        pytest.fail(f"another test cluster is up ({SYSTEM_CONF.resolve().parent}); stop it first")
    slurm = sites.compute_site(testbed_session.layout, "slurm")
    assert isinstance(slurm, site_slurm.TestbedSlurm)
    try:
        testbed_session.up(["slurm"])
        yield slurm
    finally:
        # Normally done by test_down_leaves_nothing; here for a failure before it.
        slurm.down()
        sites.remember(testbed_session.layout, [])


def _host_run(
    site: site_slurm.TestbedSlurm, cwd: Path, *argv: str
) -> subprocess.CompletedProcess[str]:
    """A Slurm client on the host, as `testbed exec slurm -- ...` runs it."""
    return subprocess.run(
        [*site.exec_prefix(cwd), *argv],
        env={**os.environ, **site.env()},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_job_from_the_host_reaches_the_datalake(site, testbed_session):
    ports = testbed_session.layout.ports()
    workdir = site.run_area() / "probe"
    workdir.mkdir(parents=True, exist_ok=True)
    site.prepare_run_dir(workdir)
    out = workdir / "answers.json"
    script = workdir / "probe.sh"
    argv = [
        sys.executable,
        "-c",
        PROBE,
        str(testbed_session.pki.ca_cert),
        f"https://{LOOPBACK}:{ports['rucio']}",
        f"https://{LOOPBACK}:{ports['fts']}",
        f"https://{LOOPBACK}:{ports['dav_' + site.rse]}",
        str(out),
    ]
    script.write_text(f"#!/bin/sh\nexec {shlex.join(argv)}\n")
    submitted = _host_run(
        site, workdir, "sbatch", "--wait", "--parsable", "-o", "probe.out", "probe.sh"
    )
    log = (workdir / "probe.out").read_text() if (workdir / "probe.out").exists() else ""
    assert submitted.returncode == 0, submitted.stderr + log
    job_id = submitted.stdout.strip().split(";")[0]
    shown = _host_run(site, workdir, "scontrol", "show", "job", job_id)
    assert "JobState=COMPLETED" in shown.stdout, shown.stdout + shown.stderr
    answers = json.loads(out.read_text())
    assert answers["rucio"]["version"]
    assert answers["fts"] == 401  # the FTS service itself, refusing a caller without a certificate
    assert answers["webdav"] == 200
    assert answers["netns"] == NETNS_FILE.stat().st_ino  # the job did run in the namespace


def test_status_lists_the_site_and_up_heals_the_relay(site, testbed_session, capsys):
    assert testbed_session.status()
    rows = capsys.readouterr().out
    for name in ("munged", "slurmctld", "slurmd", "relay"):
        assert any(line.split()[:2] == [f"slurm/{name}", "up"] for line in rows.splitlines()), rows
    assert f"(netns {NETNS}" in rows
    relay = site.relay()
    running = relay.process()
    assert running is not None
    running.kill()
    running.wait(10)
    assert not site.healthy()
    testbed_session.up()  # the site is remembered: a plain `up` heals it
    assert "starting relay" in capsys.readouterr().out
    assert site.healthy()


def _in_namespace(inode: int) -> list[str]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if os.stat(f"/proc/{proc.pid}/ns/net").st_ino == inode:
                found.append(f"{proc.pid} {' '.join(proc.info['cmdline'] or [])}")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return found


def test_down_leaves_nothing(site, testbed_session):
    inode = NETNS_FILE.stat().st_ino
    relay = site.relay().process()
    assert relay is not None
    ctld = site.cluster().conf_port("SlurmctldPort")
    assert ctld is not None
    stopped = site.down()
    sites.remember(testbed_session.layout, [])
    assert {"relay", "slurmd", "slurmctld", "munged"} <= set(stopped)
    assert not psutil.pid_exists(relay.pid) or relay.status() == psutil.STATUS_ZOMBIE
    assert _in_namespace(inode) == []
    assert not NETNS_FILE.exists()
    assert not SYSTEM_CONF.is_symlink()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((LOOPBACK, ctld), timeout=2).close()
    assert all(row[1] == "down" for row in site.status_rows())
