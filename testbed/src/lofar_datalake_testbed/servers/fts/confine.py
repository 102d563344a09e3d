"""Which local files a job may touch: `file://` URLs only under the configured storage roots.

The service runs as the testbed's owner, so a `file://` copy reads and writes with that user's
rights; without this check any caller could read or overwrite any file on the machine. Paths
are compared after resolving symlinks and `..`, so neither can lead out of a root.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import unquote, urlparse

from .jobspec import SubmitError


def resolve_roots(roots: Iterable[Path]) -> tuple[Path, ...]:
    """The roots as canonical absolute paths (symlinks resolved), as the checks compare them."""
    return tuple(Path(os.path.realpath(root)) for root in roots)


def inside(url: str, roots: Sequence[Path]) -> bool:
    """Whether a URL may be used: non-local URLs always, `file://` ones only under a root."""
    parsed = urlparse(url)
    if parsed.scheme.lower() != "file":
        return True
    if parsed.hostname not in (None, "", "localhost"):
        return False
    path = Path(os.path.realpath(unquote(parsed.path)))
    return any(path.is_relative_to(root) for root in roots)


def check(urls: Iterable[str], roots: Sequence[Path]) -> None:
    """SubmitError (400) naming the first URL outside the storage roots."""
    for url in urls:
        if not inside(url, roots):
            allowed = ", ".join(str(r) for r in roots) or "none configured"
            raise SubmitError(400, f"Local path outside the storage roots ({allowed}): {url}")
