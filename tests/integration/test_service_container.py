"""The container a researcher's code runs in, for real (as root: `setpriv` to
`ldl-containertest`, then bwrap): what it sees of the service's files and processes, where it
may write, and that nothing it starts outlives it: not when it ends, not when it is stopped,
not when the service dies. The service's own use of it is tested end to end in
test_service_end_to_end.py."""

from __future__ import annotations

import json
import pwd
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lofar_datalake.service import sandbox

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not sandbox.isolated(), reason="containers need root")]

USER = "containertest"


@dataclass(frozen=True)
class Service:
    """A service's directories as `lofar-datalake serve` lays them out: its state (its own
    files, two runs) and a directory of private files beside it."""

    root: Path
    run: Path
    walls: sandbox.Walls
    user: str

    @property
    def state(self) -> Path:
        return self.root / "state"

    def start(self, *argv: str) -> subprocess.Popen[str]:
        return subprocess.Popen([*sandbox.prefix(self.user, self.run, self.walls), *argv],
                                cwd=self.run, env=sandbox.environment(self.run / "home"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)

    def python(self, code: str) -> str:
        proc = self.start(sys.executable, "-c", code)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        return out

    def survivors(self) -> list[str]:
        """The user's live processes (zombies aside), once none is left or after 10 s."""
        uid = pwd.getpwnam(self.user).pw_uid
        deadline = time.monotonic() + 10
        while True:
            found = [f"{p.name} {(p / 'cmdline').read_bytes()!r}" for p in _live(uid)]
            if not found or time.monotonic() > deadline:
                return found
            time.sleep(0.2)


def _live(uid: int) -> Iterator[Path]:
    for proc in Path("/proc").iterdir():
        try:
            status = dict(line.split(":", 1) for line in (proc / "status").read_text()
                          .splitlines() if ":" in line)
            if int(status["Uid"].split()[0]) == uid and "Z" not in status["State"]:
                yield proc
        except (OSError, KeyError, ValueError):
            continue


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    root = Path(tempfile.mkdtemp(prefix="ldl-container-test-"))
    root.chmod(0o711)
    user = sandbox.user_for(USER)
    for path in ("state/service", "state/runs/1/home/tmp", "state/runs/2", "etc"):
        (root / path).mkdir(parents=True)
    (root / "state" / "service" / "session.key").write_text("the service's own")
    (root / "etc" / "researchers.yaml").write_text("researchers: {}\n")
    run = root / "state" / "runs" / "1"
    sandbox.hand_over(run, user)
    walls = sandbox.walls([("the state directory", root / "state"),
                           ("--researchers", root / "etc")])
    yield Service(root, run, walls, user)
    subprocess.run(["rm", "-rf", str(root)], check=True)


def test_the_container_starts_as_the_service_checks_it_at_its_start(service):
    sandbox.check(service.user, service.walls, service.state / "runs")


def test_the_services_directories_are_not_there_and_only_the_run_directory_is_writable(
        service):
    seen = json.loads(service.python(f"""
import json, os
def writes(path):
    try:
        open(path, "w").close()
        return True
    except OSError:
        return False
print(json.dumps({{
    "uid": os.getuid(),
    "state": sorted(os.listdir({str(service.state)!r})),
    "runs": sorted(os.listdir({str(service.state / "runs")!r})),
    "etc": sorted(os.listdir({str(service.root / "etc")!r})),
    "there": os.path.exists({str(service.state / "service")!r}),
    "writes": {{p: writes(p) for p in [{str(service.run / "mine")!r},
                                        {str(service.run / "home" / "tmp" / "x")!r},
                                        {str(service.state / "runs" / "x")!r},
                                        {str(service.root / "etc" / "x")!r}, "/tmp/x",
                                        "/usr/x", "/dev/shm/x"]}},
}}))
"""))
    assert seen["uid"] == pwd.getpwnam(service.user).pw_uid
    assert seen["state"] == ["runs"] and seen["runs"] == ["1"] and seen["etc"] == []
    assert seen["there"] is False
    assert seen["writes"] == {
        str(service.run / "mine"): True, str(service.run / "home" / "tmp" / "x"): True,
        str(service.state / "runs" / "x"): False, str(service.root / "etc" / "x"): False,
        "/tmp/x": False, "/usr/x": False, "/dev/shm/x": True}
    assert (service.run / "mine").stat().st_uid == seen["uid"]  # the user's own, outside too


def test_a_run_sees_only_its_own_processes(service):
    seen = json.loads(service.python("""
import json, os
print(json.dumps({pid: open(f"/proc/{pid}/cmdline", "rb").read().split(b"\\0")[0].decode()
                  for pid in os.listdir("/proc") if pid.isdigit()}))
"""))
    assert seen == {"1": seen["1"], "2": sys.executable}, seen  # its init, and itself
    assert Path(seen["1"]).name == "bwrap"


def test_what_a_run_left_behind_in_a_session_of_its_own_ends_with_it(service):
    proc = service.start("sh", "-c", "setsid sleep 3600 </dev/null >/dev/null 2>&1 & exit 0")
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert service.survivors() == []


def test_a_stopped_run_stops_cleanly_and_takes_everything_it_started_with_it(service):
    said = service.run / "stopped"
    proc = service.start("sh", "-c", f"trap 'echo cleanly > {said}; exit 0' TERM; "
                                     "setsid sleep 3600 </dev/null >/dev/null 2>&1 & "
                                     "while :; do sleep 0.1; done")
    while len(list(_live(pwd.getpwnam(service.user).pw_uid))) < 4:  # bwrap twice, sh, sleep
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    sandbox.signal_run(proc.pid, signal.SIGTERM)  # what a worker does first
    proc.communicate(timeout=60)
    assert said.read_text() == "cleanly\n"
    assert service.survivors() == []
    with pytest.raises(ProcessLookupError):
        sandbox.signal_run(proc.pid, signal.SIGTERM)


def test_the_runs_of_a_service_that_dies_die_with_it(service):
    """The service SIGKILLed with a run in progress: nothing of the run is left."""
    started = service.run / "started"
    code = (f"import subprocess, sys, time\n"
            f"subprocess.Popen({[*sandbox.prefix(service.user, service.run, service.walls)]!r}"
            f" + ['sh', '-c', 'setsid sleep 3600 </dev/null >/dev/null 2>&1 & "
            f"touch {started}; sleep 3600'], cwd={str(service.run)!r}, start_new_session=True)\n"
            "time.sleep(3600)\n")
    dying = subprocess.Popen([sys.executable, "-c", code])
    try:
        for _ in range(600):
            if started.exists():
                break
            time.sleep(0.1)
        assert started.exists()
    finally:
        dying.kill()
        dying.wait()
    assert service.survivors() == []


def test_a_starting_service_kills_what_its_own_dead_runs_left_and_nothing_else(service):
    elsewhere = Path(tempfile.mkdtemp(prefix="ldl-another-service-"))
    sandbox.hand_over(elsewhere, service.user)
    other = subprocess.Popen([*sandbox.prefix(service.user, elsewhere, service.walls), "sleep",
                              "3600"], cwd=elsewhere, start_new_session=True)
    started = service.run / "left"
    mine = service.start("sh", "-c", "setsid sleep 3600 </dev/null >/dev/null 2>&1 & "
                                     f"touch {started}; sleep 3600")
    try:
        while not started.exists():  # (its processes are the user's by then)
            assert mine.poll() is None, mine.communicate()
            time.sleep(0.1)
        sandbox.kill_leftovers(service.user, service.state)
        assert mine.wait(60) == -signal.SIGKILL
        assert other.poll() is None  # another service's run (its own state directory)
    finally:
        other.kill()
        other.wait()
        subprocess.run(["rm", "-rf", str(elsewhere)], check=True)
    assert service.survivors() == []
