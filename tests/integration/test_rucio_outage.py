"""The Rucio server goes away in the middle of a run: killed, or frozen so that it accepts
connections but never answers. The run fails with an error naming the server (within the
configured timeout when it hangs), without a Python traceback, and marks nothing complete that
is not; once the server is back, running again completes.

The workflow waits at a gate job after Snakemake has resolved its inputs (server up); the test
then breaks the real server and opens the gate. Inputs are read from replicas that are local
files, so the first thing that needs Rucio afterwards is storing the output.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from datalake_core.journal import read_events
from datalake_core.rucio_adapter import Did

pytestmark = pytest.mark.integration

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
WORKFLOW = """
PREFIX = config["prefix"]

rule all:
    input: storage.datalake(f"datalake://lofar/{PREFIX}/out/summary.txt")

rule gate:
    output: "gate.txt"
    shell: "touch started; while [ ! -e go ]; do sleep 0.1; done; touch {output}"

rule check:
    input:
        gate="gate.txt",
        data=storage.datalake(f"datalake://lofar/{PREFIX}/SB{{sb}}.dat"),
    output: "checked/{sb}.txt"
    shell: "wc -c < {input.data} > {output}"

rule publish:
    input: expand("checked/{sb}.txt", sb=["000", "001"])
    output: storage.datalake(f"datalake://lofar/{PREFIX}/out/summary.txt")
    shell: "cat {input} > {output}"
"""
TIMEOUT = 5  # --storage-datalake-rucio-timeout for these runs
RUCIO_DEFAULT_TIMEOUT = 600


@pytest.fixture()
def workflow(tmp_path: Path) -> Path:
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text(WORKFLOW)
    return snakefile


def _server(testbed):
    return next(p for p in testbed.services() if p.name == "rucio-server")


def _start(workflow: Path, workdir: Path, testbed, unique: str, env) -> subprocess.Popen[str]:
    args = [SNAKEMAKE, "-s", str(workflow), "-d", str(workdir), "--cores", "2",
            "--storage-datalake-rucio-config", str(testbed.layout.client_config),
            "--storage-datalake-ca-bundle", str(testbed.pki.ca_cert),
            "--storage-datalake-stage-policy", "download",
            "--storage-datalake-output-rse", "SITE_A_DISK",
            "--storage-datalake-rucio-timeout", str(TIMEOUT),
            "--config", f"prefix={unique}"]
    return subprocess.Popen(args, cwd=workdir, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _at_gate(run: subprocess.Popen[str], workdir: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not (workdir / "started").exists():
        if run.poll() is not None:
            pytest.fail(f"Snakemake ended before the gate:\n{run.communicate()[0][-3000:]}")
        assert time.monotonic() < deadline, "the gate job did not start"
        time.sleep(0.2)


def _open_gate(run: subprocess.Popen[str], workdir: Path) -> tuple[int, str, float]:
    opened = time.monotonic()
    (workdir / "go").touch()
    try:
        output, _ = run.communicate(timeout=RUCIO_DEFAULT_TIMEOUT)
    except subprocess.TimeoutExpired:
        run.kill()
        output = run.communicate()[0]
        pytest.fail(f"the run hung after the gate:\n{output[-3000:]}")
    return run.returncode, output, time.monotonic() - opened


def _jobs_run(output: str) -> list[str]:
    return [line.split("rule ", 1)[1].rstrip(":") for line in output.splitlines()
            if line.startswith(("rule ", "localrule "))]


def _failed_cleanly(code: int, output: str, did: Did, workdir: Path) -> None:
    """Failed, said why without a traceback, and left nothing that looks like the output:
    no local copy, no journal entry of a stored output (the DataLake is checked by callers,
    once the server answers again)."""
    assert code != 0, output[-3000:]
    assert "Traceback (most recent call last)" not in output, output[-3000:]
    assert "ServerConnectionException" not in output and "ReadTimeout" not in output
    assert _jobs_run(output) == ["gate", "check", "check", "publish"], output[-3000:]
    local = workdir / ".snakemake" / "storage" / "datalake" / did.scope / did.name
    assert not local.exists() and not local.with_name(local.name + ".part").exists()
    assert not [e for e in read_events(workdir) if e["event"] == "output"]


def test_server_killed_mid_run_fails_cleanly_and_a_rerun_completes(
        testbed, seed, rucio, unique, client_env, workflow, tmp_path):
    files = seed([f"{unique}/SB000.dat", f"{unique}/SB001.dat"], "SITE_B_DISK")
    out = Did("lofar", f"{unique}/out/summary.txt")
    host = rucio.client.host
    run = _start(workflow, tmp_path, testbed, unique, client_env)
    try:
        _at_gate(run, tmp_path)
        assert _server(testbed).stop(), "the Rucio server was not running"
        code, output, _ = _open_gate(run, tmp_path)
    finally:
        if run.poll() is None:
            run.kill()
        testbed.up()
    _failed_cleanly(code, output, out, tmp_path)
    assert f"Rucio server {host} could not be reached" in output, output[-3000:]
    assert "check that it runs and is reachable" in output
    assert rucio.get_metadata(out) is None, "nothing may have been registered"

    again = _start(workflow, tmp_path, testbed, unique, client_env)
    output, _ = again.communicate(timeout=RUCIO_DEFAULT_TIMEOUT)
    assert again.returncode == 0, output[-3000:]
    # What finished before the outage is not run again; the output that was not stored is.
    assert _jobs_run(output) == ["publish", "all"], output[-3000:]
    meta = rucio.get_metadata(out)
    expected = "".join(f"{len(f.data)}\n" for f in files)
    assert meta is not None and meta["bytes"] == len(expected)
    assert [e["did"] for e in read_events(tmp_path) if e["event"] == "output"] == [str(out)]


def test_server_not_answering_fails_within_the_configured_timeout(
        testbed, seed, rucio, unique, client_env, workflow, tmp_path):
    seed([f"{unique}/SB000.dat", f"{unique}/SB001.dat"], "SITE_B_DISK")
    out = Did("lofar", f"{unique}/out/summary.txt")
    run = _start(workflow, tmp_path, testbed, unique, client_env)
    server = _server(testbed).process()
    assert server is not None
    try:
        _at_gate(run, tmp_path)
        os.killpg(server.pid, signal.SIGSTOP)  # the whole gunicorn group: master and workers
        code, output, _ = _open_gate(run, tmp_path)
    finally:
        os.killpg(server.pid, signal.SIGCONT)
        if run.poll() is None:
            run.kill()
    _failed_cleanly(code, output, out, tmp_path)
    assert f"did not answer within {TIMEOUT} s" in output, output[-3000:]
    assert "--storage-datalake-rucio-timeout" in output
    assert rucio.get_metadata(out) is None
