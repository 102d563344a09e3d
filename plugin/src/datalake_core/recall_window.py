"""The recall window and the recall's progress, as pure functions (no Rucio, no clock).

An archive on tape takes recall requests within limits (the LOFAR LTA: each request under 1,000
files and 5 TB, at most 5,000 files in flight). `next_requests` takes files from the head of
the queue (the order jobs will need them) while the window allows, and cuts them into requests;
`estimate` turns what came online so far into the time left.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TypeVar

Key = TypeVar("Key", bound=Hashable)


@dataclass(frozen=True)
class RecallWindow:
    files_per_request: int
    files_in_flight: int
    bytes_in_flight: int


def next_requests(queue: Sequence[tuple[Key, int]], window: RecallWindow, in_flight_files: int,
                  in_flight_bytes: int) -> list[list[Key]]:
    """The requests to make now: files `(key, bytes)` from the head of `queue`, in order, while
    the files and bytes in flight stay within the window; a file larger than the byte limit
    goes alone, once nothing else is in flight (else it would never go)."""
    taken: list[Key] = []
    files, size = in_flight_files, in_flight_bytes
    for key, nbytes in queue:
        if files + 1 > window.files_in_flight:
            break
        if size + nbytes > window.bytes_in_flight and files > 0:
            break
        taken.append(key)
        files, size = files + 1, size + nbytes
    step = max(1, window.files_per_request)
    return [taken[i:i + step] for i in range(0, len(taken), step)]


@dataclass(frozen=True)
class Progress:
    online: int
    pending: int  # requested or queued, neither online nor failed
    failed: int
    seconds_left: float | None  # None until a file has come online

    def describe(self) -> str:
        left = "" if self.seconds_left is None else f"; about {_duration(self.seconds_left)} left"
        return f"{self.online} online, {self.pending} pending, {self.failed} failed{left}"


def estimate(online: int, pending: int, failed: int, elapsed: float) -> Progress:
    """The time left at the rate observed so far (files online per second since the first
    request)."""
    left = None
    if pending == 0:
        left = 0.0
    elif online > 0 and elapsed > 0:
        left = pending * elapsed / online
    return Progress(online, pending, failed, left)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
