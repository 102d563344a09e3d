"""Running a test's client as an unprivileged local user (`nobody`), as the security tests do:
what a service refuses to root's tests proves little."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

UNPRIVILEGED = "nobody"


def as_unprivileged() -> list[str]:
    """The command prefix that runs a client as `nobody` (nothing when not root already)."""
    if os.geteuid() != 0:
        return []  # already nobody in particular
    return ["setpriv", "--reuid", UNPRIVILEGED, "--regid", "nogroup", "--clear-groups"]


def hand(path: Path) -> None:
    """Make `path` the unprivileged account's own, private file."""
    path.chmod(0o600)
    if os.geteuid() == 0:
        shutil.chown(path, UNPRIVILEGED, "nogroup")
