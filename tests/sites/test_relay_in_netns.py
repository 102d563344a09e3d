"""The namespace relay for real: a throw-away network namespace with a web server inside, one on
the host, and `python -m lofar_datalake_testbed.netns_relay` between them (root only)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import site_run  # shared by the site tests (same test directory)

from lofar_datalake_testbed import netns_relay
from lofar_datalake_testbed.layout import free_port

GET = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read())"


@pytest.fixture()
def netns() -> Iterator[str]:
    site_run.require(("ip", "nsenter"), "the network namespace relay test")
    name = f"lofar-relay-test-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        for pid in subprocess.run(
            ["ip", "netns", "pids", name], capture_output=True, text=True
        ).stdout.split():
            os.kill(int(pid), 9)
        subprocess.run(["ip", "netns", "del", name], check=True)


def _web_server(directory: Path, port: int, prefix: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            *prefix,
            sys.executable,
            "-m",
            "http.server",
            "-b",
            "127.0.0.1",
            "-d",
            str(directory),
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_relay_bridges_host_and_namespace(netns, tmp_path):
    enter = ["nsenter", f"--net=/run/netns/{netns}"]
    (tmp_path / "host").mkdir()
    (tmp_path / "host" / "where").write_text("host")
    (tmp_path / "ns").mkdir()
    (tmp_path / "ns" / "where").write_text("namespace")
    host_port, ns_port = free_port(), free_port()
    servers = [
        _web_server(tmp_path / "host", host_port, []),
        _web_server(tmp_path / "ns", ns_port, enter),
    ]
    ready = tmp_path / "relay.ready"
    relay = subprocess.Popen(
        [
            *(sys.executable, "-m", "lofar_datalake_testbed.netns_relay"),
            *("--netns", f"/run/netns/{netns}", "--into", str(host_port), "--out", str(ns_port)),
            *("--ready-file", str(ready)),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        netns_file = Path(f"/run/netns/{netns}")
        _wait(lambda: netns_relay.is_ready(ready, relay.pid, netns_file, [host_port], [ns_port]))
        # The relay itself stays in the host's namespace (`ip netns pids` does not list it).
        assert os.stat(f"/proc/{relay.pid}/ns/net").st_ino == os.stat("/proc/self/ns/net").st_ino

        def from_namespace() -> str:
            url = f"http://127.0.0.1:{host_port}/where"
            done = subprocess.run([*enter, sys.executable, "-c", GET, url], capture_output=True)
            return done.stdout.decode()

        _wait(lambda: "namespace" in _get(f"http://127.0.0.1:{ns_port}/where"))
        assert from_namespace().strip() == "b'host'"
        # Only the relayed port crosses: a host listener on another port stays unreachable.
        with socket.create_server(("127.0.0.1", 0)) as private:
            port = private.getsockname()[1]
            probe = "import socket, sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])))"
            crossed = subprocess.run(
                [*enter, sys.executable, "-c", probe, str(port)], capture_output=True, text=True
            )
        assert "ConnectionRefusedError" in crossed.stderr
        relay.terminate()
        assert relay.wait(10) == 0, relay.stderr.read() if relay.stderr else ""
        assert not ready.exists()
    finally:
        relay.kill()
        for server in servers:
            server.kill()
            server.wait()


def _get(url: str) -> str:
    try:
        return urllib.request.urlopen(url, timeout=5).read().decode()
    except OSError:
        return ""
