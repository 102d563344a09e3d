import json
import sys

import psutil
import pytest

from lofar_datalake_testbed.processes import ManagedProcess


def _proc(tmp_path, argv=None):
    return ManagedProcess(
        "sleeper",
        argv or [sys.executable, "-c", "import time; time.sleep(60)"],
        run_dir=tmp_path,
        log_dir=tmp_path,
    )


def test_start_find_stop(tmp_path):
    proc = _proc(tmp_path)
    assert proc.process() is None
    started = proc.start()
    assert proc.process().pid == started.pid
    assert proc.healthy()
    assert proc.stop(timeout=5) is True
    assert proc.process() is None
    assert not proc.pidfile.exists()
    assert proc.stop() is False


def test_recycled_pid_is_not_ours(tmp_path):
    proc = _proc(tmp_path)
    # A pid file naming a live process (this test) but with another start time: pid reuse.
    proc.pidfile.write_text(json.dumps({"pid": __import__("os").getpid(), "started": 1.0}))
    assert proc.process() is None
    assert not proc.pidfile.exists()


def test_unhealthy_when_probe_fails(tmp_path):
    proc = _proc(tmp_path)
    proc.ready = lambda: False
    proc.start()
    try:
        assert not proc.healthy()
    finally:
        proc.stop(timeout=5)


def test_a_clock_set_forward_leaves_our_process_ours(tmp_path, monkeypatch: pytest.MonkeyPatch):
    # Setting the wall clock moves the boot time the kernel reports, and with it every
    # process's create_time(); the time since boot stays.
    proc = _proc(tmp_path)
    started = proc.start()
    try:
        real = psutil._psplatform.boot_time
        monkeypatch.setattr(psutil._psplatform, "boot_time", lambda: real() + 30.0)
        assert abs(psutil.Process(started.pid).create_time() - started.create_time()) > 29
        assert proc.process() is not None and proc.process().pid == started.pid
    finally:
        monkeypatch.undo()
        proc.stop(timeout=5)
    assert proc.process() is None
