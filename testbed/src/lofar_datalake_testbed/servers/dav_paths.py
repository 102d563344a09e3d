"""Request paths of the WebDAV server mapped into the directory it serves (stdlib only)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote


def local_path(root: Path, path_info: str) -> Path | None:
    """Map a request path into the served directory; None if it would escape it."""
    relative = unquote(path_info).lstrip("/")
    candidate = (root / relative).resolve()
    if candidate != root and root not in candidate.parents:
        return None
    return candidate
