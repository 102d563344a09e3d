"""A tape storage area: files are nearline until a pin brings them online (stdlib only).

As on dCache or CTA, the namespace (names, sizes, checksums) of a tape endpoint is always
visible, but a file's bytes can be read only while it is online, i.e. while at least one
unexpired pin holds it on the disk in front of the tape. The testbed's tape RSE keeps its bytes
in its storage root as any RSE does; what makes them nearline are the records here, in a
directory next to that root (`<root>.pins/`), shared by the two processes that need them:

- the storage server (webdav.py with `--nearline`) refuses to read a file that is not online;
- the FTS service (fts/staging.py) recalls files (bring-online) and writes their pins, each
  named by the request that made it and holding its expiry time (seconds since the epoch).

`<root>.pins/<path>.pins` is a JSON object `{pin id: expiry}`, replaced atomically by its one
writer (the FTS service). An operator marks a file whose tape copy is gone with
`<root>.pins/<path>.lost`; recalling it fails with "file lost on tape". Files written to the
tape endpoint are nearline at once (migrated to tape and evicted from its disk immediately).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .dav_paths import local_path

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

ONLINE = "ONLINE"
NEARLINE = "NEARLINE"
LOST = "LOST"
MISSING = "MISSING"

_write_lock = threading.Lock()


def pins_dir(root: Path) -> Path:
    return root.with_name(root.name + ".pins")


def _record(root: Path, relative: str, suffix: str) -> Path:
    return pins_dir(root) / (relative.strip("/") + suffix)


def read_pins(root: Path, relative: str) -> dict[str, float]:
    try:
        data = json.loads(_record(root, relative, ".pins").read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else {}


def state(root: Path, relative: str, now: float | None = None) -> str:
    """ONLINE, NEARLINE, LOST (its tape copy is gone) or MISSING (not in the namespace)."""
    if not (root / relative.strip("/")).is_file():
        return MISSING
    if _record(root, relative, ".lost").exists():
        return LOST
    now = time.time() if now is None else now
    pinned = any(expiry > now for expiry in read_pins(root, relative).values())
    return ONLINE if pinned else NEARLINE


def live_pins(root: Path, now: float | None = None) -> int:
    """How many files of the tape area an unexpired pin holds online."""
    now = time.time() if now is None else now
    base = pins_dir(root)
    held = 0
    for record in base.rglob("*.pins"):
        relative = record.relative_to(base).as_posix().removesuffix(".pins")
        held += any(expiry > now for expiry in read_pins(root, relative).values())
    return held


def pin(root: Path, relative: str, pin_id: str, lifetime: float, now: float | None = None) -> float:
    """Hold the file online for `lifetime` seconds under `pin_id`; returns the expiry. Expired
    pins of the file are dropped at the same time."""
    now = time.time() if now is None else now
    expiry = now + lifetime
    with _write_lock:
        pins = {k: v for k, v in read_pins(root, relative).items() if v > now}
        pins[pin_id] = max(expiry, pins.get(pin_id, 0.0))
        _replace(_record(root, relative, ".pins"), json.dumps(pins, sort_keys=True))
    return expiry


def unpin(root: Path, relative: str, pin_id: str) -> None:
    with _write_lock:
        pins = read_pins(root, relative)
        if pins.pop(pin_id, None) is not None:
            _replace(_record(root, relative, ".pins"), json.dumps(pins, sort_keys=True))


def mark_lost(root: Path, relative: str) -> None:
    """What an operator records when a file's tape copy is found unreadable."""
    path = _record(root, relative, ".lost")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{time.time():.0f}\n")


def _replace(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".pin-")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


REFUSED_STATUS = "503 Service Unavailable"


def refusal(root: Path, path_info: str, method: str) -> str | None:
    """Why a read of `path_info` is refused (the file is not online), or None."""
    if method.upper() != "GET":
        return None  # the namespace (HEAD, PROPFIND, checksums) stays visible
    target = local_path(root, path_info)
    if target is None or not target.is_file():
        return None
    relative = target.relative_to(root).as_posix()
    found = state(root, relative)
    if found == LOST:
        return f"{path_info}: file lost on tape (its tape copy is unreadable)"
    if found == NEARLINE:
        return (
            f"{path_info}: file is nearline (on tape, not online): recall it first "
            "(bring-online, e.g. a Rucio rule on the staging area or an FTS job with "
            "bring_online/copy_pin_lifetime)"
        )
    return None


def nearline_reads(app: WsgiApp, root: Path) -> WsgiApp:
    """WSGI middleware of a tape endpoint: reading a file that is not online is refused."""
    root = root.resolve()

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        reason = refusal(root, environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", ""))
        if reason is None:
            return app(environ, start_response)
        body = (reason + "\n").encode()
        start_response(
            REFUSED_STATUS,
            [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return wrapped
