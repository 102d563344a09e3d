import json
import sys

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
