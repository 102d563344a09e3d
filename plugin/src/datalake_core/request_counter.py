"""Optional accounting of every HTTP request the Rucio client makes, for tests and benchmarks.

With `LOFAR_DATALAKE_COUNT_REQUESTS=<file>` set, each request (authentication included) appends
one line `METHOD /path` to that file. Appending one short line per request is atomic, so several
processes (Snakemake and its jobs) may share the file.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlparse

ENV_VAR = "LOFAR_DATALAKE_COUNT_REQUESTS"


def install_if_requested() -> None:
    """Make the Rucio client's HTTP sessions count; the client creates its session before it
    authenticates and again after connection errors, so the session class itself is replaced."""
    target = os.environ.get(ENV_VAR)
    if not target:
        return
    from rucio.client import baseclient

    if getattr(baseclient.Session, "_counts_to", None) == target:
        return
    base = baseclient.Session
    while getattr(base, "_counts_to", None) is not None:
        base = base.__mro__[1]

    path: str = target

    class CountingSession(base):  # type: ignore[misc, valid-type]
        _counts_to = path

        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            with open(path, "a") as handle:
                handle.write(f"{method.upper()} {urlparse(url).path}\n")
            return super().request(method, url, *args, **kwargs)

    baseclient.Session = CountingSession


def read_counts(path: str | os.PathLike[str]) -> list[str]:
    try:
        with open(path) as handle:
            return [line.strip() for line in handle if line.strip()]
    except FileNotFoundError:
        return []
