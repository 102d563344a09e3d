"""`testbed up | status | down | env` behave as operators expect, on the real processes."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys

import psutil
import pytest

pytestmark = pytest.mark.integration


def _cli(testbed, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "lofar_datalake.cli",
            "testbed",
            *args,
            "--dir",
            str(testbed.layout.root),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )


def _pids(testbed) -> dict[str, int]:
    return {
        p.name: proc.pid
        for p in testbed.services() + testbed.daemons()
        if (proc := p.process()) is not None
    }


def test_up_twice_is_harmless(testbed):
    before = _pids(testbed)
    result = _cli(testbed, "up")
    assert result.returncode == 0, result.stderr
    assert "starting" not in result.stdout
    assert _pids(testbed) == before
    assert _cli(testbed, "status").returncode == 0


def test_up_heals_crashed_components(testbed):
    victims = [
        p
        for p in testbed.services() + testbed.daemons()
        if p.name in ("webdav-SITE_B_DISK", "rucio-conveyor-poller")
    ]
    for proc in victims:
        running = proc.process()
        assert running is not None
        os.killpg(running.pid, signal.SIGKILL)
        running.wait(10)
    status = _cli(testbed, "status")
    assert status.returncode == 1
    assert "webdav-SITE_B_DISK" in status.stdout
    healed = _cli(testbed, "up")
    assert healed.returncode == 0, healed.stderr
    assert "starting webdav-SITE_B_DISK" in healed.stdout
    assert "starting rucio-conveyor-poller" in healed.stdout
    assert _cli(testbed, "status").returncode == 0


def test_env_points_clients_at_the_testbed(testbed):
    result = _cli(testbed, "env")
    assert result.returncode == 0
    assert f"RUCIO_CONFIG={testbed.layout.client_config}" in result.stdout
    assert "FTS3_ENDPOINT=https://127.0.0.1:" in result.stdout
    password = (testbed.layout.etc / "credentials.ini").read_text().split("password = ")[-1]
    assert password.strip() not in result.stdout


def test_config_files_are_private(testbed):
    for path in testbed.layout.etc.rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path
    for name in ("ca.key", "server.key", "proxy.pem"):
        assert stat.S_IMODE((testbed.pki.ca_key.parent / name).stat().st_mode) == 0o600


def test_every_socket_listens_on_loopback_only(testbed):
    pids = set(_pids(testbed).values())
    members = set()
    for pid in pids:
        proc = psutil.Process(pid)
        members |= {pid, *(c.pid for c in proc.children(recursive=True))}
    listening = [
        c
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.pid in members
    ]
    assert listening, "no listening sockets found for the testbed"
    assert all(c.laddr.ip == "127.0.0.1" for c in listening), listening


def test_down_stops_everything_and_up_restarts_from_state(testbed):
    pids = set(_pids(testbed).values())
    children = {c.pid for pid in pids for c in psutil.Process(pid).children(recursive=True)}
    result = _cli(testbed, "down")
    assert result.returncode == 0, result.stderr
    leftovers = [
        pid
        for pid in pids | children
        if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    ]
    assert leftovers == []
    assert not any(
        str(testbed.layout.root) in " ".join(p.info["cmdline"] or [])
        for p in psutil.process_iter(["cmdline"])
    )
    assert _cli(testbed, "status").returncode == 1
    # The catalogue survives: a second `up` needs no bootstrap and everything answers again.
    again = _cli(testbed, "up")
    assert again.returncode == 0, again.stderr
    assert "registering" not in again.stdout
    assert _cli(testbed, "status").returncode == 0
