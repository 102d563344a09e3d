"""Running a researcher's workflow code as a local user of its own.

Parsing a Snakefile runs its Python, so everything a submission brings runs sandboxed: as a
system user made for that researcher (`ldl-<name>`), with a clean environment, in a directory
that user owns and nobody else may read, and with no way to read the service's own files (its
state directory is the service's, mode 0700). Researchers are users of their own, so one's
workflow cannot read another's runs either. Without root the service cannot switch users; then
it runs workflows as itself and `isolated()` says so on every page.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

PREFIX = "ldl-"
GROUP = "ldl-researchers"  # every researcher's user: what they may pass through together
NAME = re.compile(r"^[a-z][a-z0-9_-]{0,23}$")  # a login that is also a valid user name part
# What a workflow's processes get of the service's environment: nothing but where programs are.
KEPT = ("PATH", "LANG", "LC_ALL", "TZ")


def isolated() -> bool:
    return os.geteuid() == 0


def user_for(researcher: str) -> str:
    """The researcher's system user, made on first use (root only)."""
    if not NAME.match(researcher):
        raise ValueError(f"researcher name {researcher!r}: lower-case letters, digits, - and _, "
                         "starting with a letter, at most 24 characters")
    user = PREFIX + researcher
    if isolated():
        try:
            pwd.getpwnam(user)
        except KeyError:
            _ensure_group()
            subprocess.run(["useradd", "--system", "--no-create-home", "--user-group",
                            "--groups", GROUP, "--shell", "/usr/sbin/nologin", user],
                           check=True, capture_output=True)
    return user


def _ensure_group() -> None:
    try:
        grp.getgrnam(GROUP)
    except KeyError:
        subprocess.run(["groupadd", "--system", GROUP], check=True, capture_output=True)


def grant_passage(paths: Iterable[Path]) -> list[Path]:
    """Let the researchers' users reach `paths` (the project's Python and its environment):
    each directory above them that others may not pass through gets search permission for
    the researchers' group only (a POSIX ACL: no read, no listing, nobody else). An
    interpreter under a private home (e.g. pyenv's under /root, mode 0700) needs it, or no
    run can start. Returns the directories it changed, for the service to say so."""
    if not isolated():
        return []
    _ensure_group()
    changed = []
    for directory in sorted({a for p in paths for a in p.resolve().parents}):
        if not directory.stat().st_mode & 0o001:
            subprocess.run(["setfacl", "-m", f"g:{GROUP}:--x", str(directory)], check=True,
                           capture_output=True)
            changed.append(directory)
    return changed


def prefix(user: str) -> list[str]:
    """The command prefix that runs a command as `user` (nothing without root)."""
    if not isolated():
        return []
    return ["setpriv", "--reuid", user, "--regid", user, "--init-groups", "--no-new-privs",
            "--"]


def hand_over(path: Path, user: str) -> None:
    """`path` and everything under it becomes `user`'s own; only they may enter it."""
    path.chmod(0o700)
    if not isolated():
        return
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            os.lchown(Path(root) / name, *_ids(user))
    shutil.chown(path, user, user)


def _ids(user: str) -> tuple[int, int]:
    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def environment(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A clean environment for a workflow's processes: the service's secrets, configuration
    and credentials stay out."""
    env = {k: os.environ[k] for k in KEPT if k in os.environ}
    return {**env, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"),
            "TMPDIR": str(home / "tmp"), **(extra or {})}


def kill_leftovers(user: str) -> None:
    """Stop every process of `user`: when the service starts, none of its runs is running, so
    any such process was left by a service that died without stopping its runs."""
    if isolated():
        try:
            pwd.getpwnam(user)
        except KeyError:
            return
        subprocess.run(["pkill", "-KILL", "-u", user], check=False, capture_output=True)
