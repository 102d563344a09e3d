"""Running a child process whose output and lifetime are bounded: a researcher's code (parsing
a Snakefile) or git fetching a researcher's repository may print without end, hang, or leave
processes behind."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

OUTPUT_KEPT = 64 * 1024  # bytes of a child's output kept (the end); the rest is read and dropped
GRACE_S = 2.0  # after the command ends, how long what it left behind may still hold its output
WATCH_EVERY_S = 0.5


class Stopped(RuntimeError):
    """The child was killed because its watch found it had gone too far; says why."""


def run_bounded(argv: list[str], *, cwd: Path, env: Mapping[str, str], timeout_s: float,
                watch: Callable[[], str | None] | None = None) -> tuple[int | None, str]:
    """Run `argv` in a process group of its own with its output (stdout and stderr, merged)
    kept to the last OUTPUT_KEPT bytes; whatever of the group is left at the end is killed.
    The exit code, or None if it ran past `timeout_s`. `watch`, asked about twice a second
    while the child runs, returns a reason to kill it (raised as Stopped) or None."""
    deadline = time.monotonic() + timeout_s
    stopped: str | None = None
    next_watch = time.monotonic()
    proc = subprocess.Popen(argv, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    tail = bytearray()
    timed_out, grace_end = False, None
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while True:
                now = time.monotonic()
                if grace_end is None and proc.poll() is not None:
                    grace_end = now + GRACE_S  # ended; its leftovers may still hold the pipe
                limit = deadline if grace_end is None else min(grace_end, deadline)
                if now >= limit:
                    timed_out = grace_end is None
                    break
                if watch is not None and grace_end is None and now >= next_watch:
                    next_watch, stopped = now + WATCH_EVERY_S, watch()
                    if stopped:
                        break
                if sel.select(timeout=min(limit - now, 0.5)):
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        break  # everyone closed it
                    tail += chunk
                    del tail[:-OUTPUT_KEPT]
        if not timed_out and not stopped and proc.poll() is None:  # output closed, still running
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        code = proc.wait()
        proc.stdout.close()
    if stopped:
        raise Stopped(stopped)
    return (None if timed_out else code), tail.decode("utf-8", "replace")
