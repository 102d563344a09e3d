"""Running a researcher's workflow code in a container of its own, as a local user of its own.

Parsing a Snakefile runs its Python, so everything a submission brings (git's checkout, the
parse, the comparison, the site-health probes) runs behind two boundaries, with a clean
environment:

- a system user made for that researcher (`ldl-<name>`) owning a run directory nobody else may
  read, so one researcher's workflow cannot read another's runs;
- a bubblewrap (`bwrap`) container: a mount namespace of its own, where the whole file system
  is read-only and the service's private directories are not mounted at all: its state
  directory (database, session key, every other run) and the directories of the Rucio
  configuration, the researchers file, their credentials, the TLS key and the probes' X.509
  proxy (`Walls`, from the service's settings) are empty, read-only tmpfs. Only the run's own
  directory is mounted back, read-write: the run may write there (its HOME, caches and TMPDIR
  are in it) and in its own /dev/shm, nowhere else. What runs need that lies below a hidden
  directory (the project's Python under a hidden /root, say) is mounted back read-only. A PID
  namespace of its own (the run sees only its own processes; when its top process ends, or
  is killed, every process of the run dies with it, those that called setsid too), its own
  IPC and host name, a new session (no keystrokes pushed into the service's terminal), no
  new privileges, no capabilities, no further user namespaces. The network is shared: the
  DataLake's servers are reached as from the service.

The arrangement: the service (root) drops to the researcher's user with `setpriv` (its groups,
no new privileges) and that user runs `bwrap`, unprivileged, in a user namespace of its own
that maps only its own uid and gid. Root never runs inside the container and bwrap needs no
setuid bit; the kernel must allow unprivileged user namespaces (`check` tries it when the
service starts). Files keep their owners and modes inside, so the researchers' group still
needs `grant_passage` to reach a Python under a closed /root.

Without root the service can neither switch users nor make these containers: it runs workflows
as its own user, without containers (`isolated()` is false), and says so when it starts.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

PREFIX = "ldl-"
GROUP = "ldl-researchers"  # every researcher's user: what they may pass through together
NAME = re.compile(r"^[a-z][a-z0-9_-]{0,23}$")  # a login that is also a valid user name part
# What a workflow's processes get of the service's environment: nothing but where programs are.
KEPT = ("PATH", "LANG", "LC_ALL", "TZ")
PROJECT = Path(__file__).resolve().parents[4]  # workflow/lib/lofar_datalake/service -> project
# Directories no container may go without: hiding one of them is refused.
SYSTEM = tuple(Path(p) for p in ("/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32",
                                 "/lib64", "/libx32", "/proc", "/run", "/sbin", "/sys", "/usr",
                                 "/var"))
# The container: namespaces of its own but the network's, no further user namespaces, its
# processes killed with it, and a new session (TIOCSTI cannot reach the service's terminal).
NAMESPACES = ("--unshare-user", "--disable-userns", "--unshare-pid", "--unshare-ipc",
              "--unshare-uts", "--die-with-parent", "--new-session")
PACKAGE = "bubblewrap"  # Debian's package of bwrap


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


@dataclass(frozen=True)
class Walls:
    """What every run's container leaves out, as mounts in the order they are made: ("hide",
    a directory) an empty tmpfs over it, read-only once the run's directory is in place;
    ("keep", a path) what runs need below a hidden directory, mounted back read-only."""

    layers: tuple[tuple[str, Path], ...] = ()

    @property
    def hidden(self) -> tuple[Path, ...]:
        return tuple(path for kind, path in self.layers if kind == "hide")


def walls(private: Iterable[tuple[str, Path]], needed: Iterable[Path] = ()) -> Walls:
    """The walls that keep each `private` directory (with what it holds, for the message) out
    of every run. What runs need below one stays: the project, its Python (prefixes and import
    path) and `needed` (compare's rules, the sites' profiles). A directory that runs need
    (or that the system needs, SYSTEM) cannot be hidden: ValueError, naming what is in it."""
    need = {p.resolve() for p in [PROJECT, *_python(), *needed] if p.exists()}
    system = {p.resolve() for p in SYSTEM}
    hidden: dict[Path, str] = {}
    for what, directory in private:
        if directory.is_dir():
            hidden.setdefault(directory.resolve(), what)
    for path, what in hidden.items():
        if path in need | system:
            whose = "the system's" if path in system else "the project's or its Python's"
            raise ValueError(f"{what} is in {path}, {whose}, which every run needs: the runs' "
                             "containers cannot hide it; keep it in a directory of its own")
    kept = [p for p in need if any(p.is_relative_to(h) for h in hidden)]
    return Walls(_layered([("hide", p) for p in hidden] + [("keep", p) for p in kept]))


def _python() -> list[Path]:
    """The Python the runs use, the service's: its environment, the interpreter that was made
    from, and its import path."""
    return [Path(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix,
                              sys.base_exec_prefix, *sys.path) if os.path.isabs(p)]


def _layered(mounts: list[tuple[str, Path]]) -> tuple[tuple[str, Path], ...]:
    """`mounts` from the root down, each kept only where it changes the view: a hidden
    directory inside another is hidden already, unless something kept between shows it."""
    layers: list[tuple[str, Path]] = []
    for kind, path in sorted(mounts, key=lambda m: (len(m[1].parts), str(m[1]))):
        above = [m for m in layers if path.is_relative_to(m[1])]
        nearest = max(above, key=lambda m: len(m[1].parts))[0] if above else "keep"
        if nearest != kind:
            layers.append((kind, path))
    return tuple(layers)


def prefix(user: str, run: Path, walls: Walls) -> list[str]:
    """The command prefix that runs a command as `user` in a container (the module's
    docstring) where `run`, the run's directory, is the one place it may write and `walls`
    are up; the command's working directory must be inside `run`. Nothing without root."""
    if not isolated():
        return []
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise RuntimeError(f"bwrap is not installed: install the Debian package {PACKAGE}")
    mounts = ["--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"]
    for kind, path in walls.layers:
        mounts += ["--tmpfs", str(path)] if kind == "hide" else ["--ro-bind", str(path), str(path)]
    mounts += ["--bind", str(run.resolve()), str(run.resolve())]
    for path in walls.hidden:
        mounts += ["--remount-ro", str(path)]
    return ["setpriv", "--reuid", user, "--regid", user, "--init-groups", "--no-new-privs",
            "--", bwrap, *NAMESPACES, *mounts, "--"]


def check(user: str, walls: Walls, scratch: Path) -> None:
    """As the service starts (with root): bwrap is installed and makes a run's container as
    `user` (a researcher's) with `walls`, trying it in a directory made under `scratch`;
    RuntimeError saying what to install or allow if not."""
    if not isolated():
        return
    if shutil.which("bwrap") is None:
        raise RuntimeError(f"bwrap is not installed: the researchers' runs are kept in its "
                           f"containers; install the Debian package {PACKAGE} "
                           "(scripts/install-system-deps.sh does)")
    run = Path(tempfile.mkdtemp(prefix="container-check-", dir=scratch))
    try:
        hand_over(run, user)
        done = subprocess.run([*prefix(user, run, walls), "true"], cwd=run, env=environment(run),
                              capture_output=True, text=True, timeout=60, check=False)
    finally:
        shutil.rmtree(run, ignore_errors=True)
    if done.returncode != 0:
        raise RuntimeError(
            f"bwrap cannot make a run's container as {user}: {done.stderr.strip()}; it needs "
            "unprivileged user namespaces (sysctl user.max_user_namespaces above 0, and "
            "kernel.unprivileged_userns_clone = 1 where the kernel has that setting)")


def signal_run(pid: int, sig: int) -> None:
    """Send `sig` to the run whose top process (prefix's) is `pid`; ProcessLookupError once it
    has ended. In a container, SIGKILL ends its PID namespace, so every process of the run; any
    other signal goes to each process in it but its init (bwrap's): Snakemake and its jobs may
    stop cleanly. Without one, to the run's process group."""
    if sig == signal.SIGKILL or not isolated():
        os.killpg(pid, sig)
        return
    os.kill(pid, 0)
    for inner in _in_namespace_below(pid):
        with suppress(ProcessLookupError):
            os.kill(inner, sig)


def _in_namespace_below(pid: int) -> list[int]:
    """The processes in the PID namespace of `pid`'s child (bwrap's init), but that child."""
    processes = {}
    for entry in Path("/proc").iterdir():
        with suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            processes[int(entry.name)] = int(stat[stat.rindex(")") + 2:].split()[1])
    init = next((p for p, parent in processes.items() if parent == pid), None)
    space = _namespace(init) if init is not None else ""
    return [p for p in processes if space and p != init and _namespace(p) == space]


def _namespace(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return ""


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


def kill_leftovers(user: str, state: Path) -> None:
    """Kill what is left of the runs under `state` (the service's state directory) as `user`:
    when the service starts none of its runs is running, so a process of `user` whose command
    line names a run directory there (a run's container, Snakemake) was left by a service that
    died without stopping its runs; what else ran in a container dies with it. Containers die
    with the service that started them anyway; another service's runs are not touched."""
    if not isolated():
        return
    try:
        uid = pwd.getpwnam(user).pw_uid
    except KeyError:
        return
    runs = f"{state.resolve() / 'runs'}/".encode()
    for entry in Path("/proc").iterdir():
        with suppress(OSError, ValueError):
            if entry.stat().st_uid == uid and runs in (entry / "cmdline").read_bytes():
                os.kill(int(entry.name), signal.SIGKILL)
