"""Start, find and stop the testbed's long-running processes through pid files.

A pid file records the pid *and* its start time, so a recycled pid is never mistaken for ours and
`down` stops exactly the processes `up` started. The start time compared is the one since boot:
psutil's `create_time()` adds the boot time, which the kernel derives from the wall clock, so a
clock that is set or slewed by more than a second made every process started before it look
like another's; `up` then started a second copy of each server (which found its port taken)
and `down` left the first running.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil


@dataclass
class ManagedProcess:
    name: str
    argv: Sequence[str]
    run_dir: Path
    log_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    ready: Callable[[], bool] | None = None  # health probe; None means "alive is enough"

    @property
    def pidfile(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def logfile(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def process(self) -> psutil.Process | None:
        """Our process if it is still running, else None (stale pid files are removed)."""
        try:
            record = json.loads(self.pidfile.read_text())
            proc = psutil.Process(int(record["pid"]))
            if "since_boot" in record:  # else a pid file of an earlier version: wall clock
                same = (record.get("boot_id") == _boot_id()
                        and abs(_since_boot(proc) - float(record["since_boot"])) <= 1.0)
            else:
                same = abs(proc.create_time() - float(record["started"])) <= 1.0
            if not same:
                raise psutil.NoSuchProcess(proc.pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                raise psutil.NoSuchProcess(proc.pid)
            return proc
        except (FileNotFoundError, ValueError, KeyError, psutil.Error):
            self.pidfile.unlink(missing_ok=True)
            return None

    def healthy(self) -> bool:
        if self.process() is None:
            return False
        try:
            return self.ready() if self.ready else True
        except Exception:
            return False

    def start(self) -> psutil.Process:
        env = {**os.environ, **self.env}
        with open(self.logfile, "ab") as log:
            popen = subprocess.Popen(
                list(self.argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                # Outlives the CLI; its own process group, so stop() reaches its children too.
                start_new_session=True,
            )
        proc = psutil.Process(popen.pid)
        record = {"pid": popen.pid, "started": proc.create_time(), "since_boot": _since_boot(proc),
                  "boot_id": _boot_id(), "argv": list(self.argv)}
        self.pidfile.write_text(json.dumps(record))
        return proc

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process() is None:
                raise RuntimeError(
                    f"{self.name} exited during start-up; see {self.logfile}:\n{tail(self.logfile)}"
                )
            if self.healthy():
                return
            time.sleep(0.1)
        raise TimeoutError(
            f"{self.name} not ready after {timeout:.0f} s; see {self.logfile}:\n"
            f"{tail(self.logfile)}"
        )

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the process and its session; True if something was running."""
        return bool(stop_all([self], timeout))


def stop_all(procs: Sequence[ManagedProcess], timeout: float = 10.0) -> list[str]:
    """SIGTERM every process group at once, wait for all together, SIGKILL what is left.
    Returns the names of the processes that were running."""
    members: list[psutil.Process] = []
    stopped: list[str] = []
    for managed in procs:
        proc = managed.process()
        if proc is None:
            continue
        stopped.append(managed.name)
        members += [proc, *proc.children(recursive=True)]
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    _, alive = psutil.wait_procs(members, timeout=timeout)
    for leftover in alive:
        try:
            leftover.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)
    for managed in procs:
        managed.pidfile.unlink(missing_ok=True)
    return stopped


def _since_boot(proc: psutil.Process) -> float:
    """When `proc` started, in seconds since boot: unchanged when the wall clock moves."""
    return proc.create_time() - psutil.boot_time()


def _boot_id() -> str:
    """This boot's identity (after a reboot, the same pid and time since boot is another's)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
