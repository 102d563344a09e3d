"""The Debian chroot the personal HTCondor pool runs in (`lofar_datalake_testbed.htcondor`).

Debian 12 has no HTCondor package and the PyPI wheels hold only the Python bindings, so the
daemons come from Debian 13 (trixie), unpacked with debootstrap into a chroot. The chroot is the
worker node's operating system: HTCondor, WSClean (the pipeline's imager, a system package as on
this host) and two accounts, one that submits and one that runs the jobs. It is cached between
runs (building it takes about a minute): built in a temporary directory beside the cache and
renamed when complete, so a half-built chroot is never used. Needs root and debootstrap.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psutil

CACHE_ENV = "LOFAR_DATALAKE_HTCONDOR_CHROOT"
DEFAULT_CACHE = Path("/var/cache/lofar-datalake/htcondor-trixie")
MIRROR = "http://deb.debian.org/debian/"
SUITE = "trixie"
# wsclean: the imager (a system package, as on this host); libglib: the dp3 wheel links it.
PACKAGES = ("htcondor", "wsclean", "libglib2.0-0t64")
# Accounts inside the chroot only (the host's /etc/passwd is never touched). The schedd refuses
# jobs owned by root, so a user submits; the jobs run as an execute account of their own that
# cannot enter the submitter's directories, as a worker's slot user cannot read the access point.
SUBMITTER = ("lofarsub", 5001)
EXECUTE_USER = ("lofarjob", 5002)
# Written last: its presence marks a complete chroot (and which packages it holds).
MARKER = ".lofar-datalake-chroot"


def chroot_path() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def _marker_text() -> str:
    return f"{SUITE} {' '.join(PACKAGES)} {SUBMITTER} {EXECUTE_USER}\n"


def is_complete(root: Path) -> bool:
    marker = root / MARKER
    return marker.is_file() and marker.read_text() == _marker_text()


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below `root` (from /proc/mounts, deepest first)."""
    prefix = str(root.resolve()).rstrip("/")
    found = []
    for line in Path("/proc/mounts").read_text().splitlines():
        # /proc/mounts escapes blanks and backslashes in paths as octal (\040).
        target = line.split()[1].encode().decode("unicode_escape")
        if target == prefix or target.startswith(prefix + "/"):
            found.append(target)
    return sorted(found, key=len, reverse=True)


def processes_in(root: Path) -> list[psutil.Process]:
    """Every process whose root directory is `root`: the daemons, shadows, starters, jobs and
    whatever a job left running (found even after their parents died)."""
    target = str(root.resolve())
    found = []
    for proc in psutil.process_iter():
        try:
            if os.readlink(f"/proc/{proc.pid}/root") == target:
                found.append(proc)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return found


def remove_tree(path: Path) -> None:
    """rm -rf that never follows a mount: refuses while anything is mounted below `path`."""
    if mounts_under(path):
        raise RuntimeError(f"not removing {path}: mounts below it: {mounts_under(path)}")
    subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=True)


def _in_chroot(root: Path, *argv: str, log: Path) -> None:
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "DEBIAN_FRONTEND": "noninteractive",
        "LANG": "C.UTF-8",
    }
    with log.open("a") as out:
        subprocess.run(
            ["chroot", str(root), *argv], env=env, stdout=out, stderr=subprocess.STDOUT, check=True
        )


def build(target: Path, log: Path) -> None:
    """debootstrap + packages + accounts into `target` (a fresh directory)."""
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    with log.open("a") as out:
        subprocess.run(
            [debootstrap, "--variant=minbase", SUITE, str(target), MIRROR],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=True,
        )
    shutil.copyfile("/etc/resolv.conf", target / "etc" / "resolv.conf")
    # Packages must not start services on the host's kernel while they install.
    policy = target / "usr" / "sbin" / "policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    _in_chroot(target, *install, log=log)
    _in_chroot(target, "apt-get", "clean", log=log)
    for name, uid in (SUBMITTER, EXECUTE_USER):
        _in_chroot(target, "groupadd", "-g", str(uid), name, log=log)
        home = f"/home/{name}"
        _in_chroot(
            target, "useradd", "-u", str(uid), "-g", str(uid), "-m", "-d", home, name, log=log
        )
    # The host's Python is bind-mounted below /root (pyenv); the accounts must reach it.
    os.chmod(target / "root", 0o755)  # noqa: S103
    (target / MARKER).write_text(_marker_text())


def ensure(root: Path | None = None) -> tuple[Path, float]:
    """The cached chroot, built first if missing or incomplete. Returns it and the seconds spent
    building (0 when cached). The build's log stays beside the cache."""
    root = root or chroot_path()
    if is_complete(root):
        return root, 0.0
    started = time.monotonic()
    root.parent.mkdir(parents=True, exist_ok=True)
    if root.exists():
        remove_tree(root)  # incomplete or from another version
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    os.chmod(tmp, 0o755)  # noqa: S103  it becomes `/`: every account must traverse it
    log = root.parent / f"{root.name}-build.log"
    log.unlink(missing_ok=True)
    try:
        build(tmp, log)
        try:
            tmp.rename(root)
        except OSError:
            if not is_complete(root):  # else another builder won the race: use its chroot
                raise
    finally:
        if tmp.exists():
            remove_tree(tmp)  # a failed build leaves its log, never a partial tree
    return root, time.monotonic() - started


def condor_ids(root: Path) -> tuple[int, int]:
    """uid and gid of the `condor` account inside the chroot (the daemons' own files)."""
    for line in (root / "etc" / "passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == "condor":
            return int(fields[2]), int(fields[3])
    raise RuntimeError(f"no condor account in {root}/etc/passwd")
