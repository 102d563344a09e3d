"""A personal HTCondor pool on this machine, for running the workflow through HTCondor for real.

HTCondor 23.9 from Debian 13 runs in a chroot (`htcondor_chroot`): collector, negotiator, schedd
and startd behind one shared port on 127.0.0.1. The pool works like a grid site without a
shared file system: jobs run as their own account in HTCondor's scratch sandbox (below
`<root>/execute`), their data travels by HTCondor file transfer, and only software is shared, as
read-only bind mounts of host directories at their own paths (like CVMFS on a worker node).
The run directory `<root>` is bind-mounted at its own path too, so one condor_config serves the
daemons, the submitter in the chroot and clients on the host. Needs root and debootstrap.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from . import htcondor_chroot as chroot_os
from .layout import free_port
from .processes import ManagedProcess, tail

CHROOT_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class HTCondorPool:
    root: Path  # run directory: config, daemon state and logs, sandboxes, submit directories
    chroot: Path = field(default_factory=chroot_os.chroot_path)
    # Host directories the jobs need read-only (the workflow checkout, its venv, the Python the
    # venv was made from); mounted at their own paths in the chroot.
    software: tuple[Path, ...] = ()
    # Host directories inside the software the workers must not see (a testbed's state below
    # the checkout): each is covered by an empty tmpfs in the chroot. The root may lie below
    # one; its parents in the chroot are then the tmpfs's fresh, traversable directories.
    masked: tuple[Path, ...] = ()

    @property
    def config(self) -> Path:
        return self.root / "condor_config"

    @property
    def execute_dir(self) -> Path:
        """Where the startd makes each job's scratch sandbox (dir_<pid>)."""
        return self.root / "execute"

    @property
    def home(self) -> Path:
        return self.root / "home"

    def port(self) -> int:
        """The pool's one TCP port on 127.0.0.1 (shared port daemon, collector behind it)."""
        for line in self.config.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "SHARED_PORT_PORT":
                return int(value)
        raise RuntimeError(f"no SHARED_PORT_PORT in {self.config}")

    def env(self) -> dict[str, str]:
        """For any HTCondor client (the host's Python bindings, or commands in the chroot)."""
        return {"CONDOR_CONFIG": str(self.config)}

    def exec_prefix(self, cwd: Path, extra_env: dict[str, str] | None = None) -> list[str]:
        """Prefix that runs a command as the pool's submitter on its access point (the chroot),
        in `cwd`, with a clean environment: the HTCondor config and the software's PATH."""
        uid = chroot_os.SUBMITTER[1]
        env = {
            "PATH": ":".join([*(str(p / "bin") for p in self._venvs()), CHROOT_PATH]),
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "USER": chroot_os.SUBMITTER[0],
            **self.env(),
            **(extra_env or {}),
        }
        return [
            "chroot", str(self.chroot),
            "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
            "env", "-i", f"--chdir={cwd}", *(f"{k}={v}" for k, v in env.items()),
        ]  # fmt: skip

    def _venvs(self) -> list[Path]:
        return [p for p in self.software if (p / "pyvenv.cfg").exists()]

    def submit_dir(self, name: str) -> Path:
        """A directory of the submitter's, private (0700): jobs cannot read it, only HTCondor's
        file transfer (the shadow, running as the submitter) moves data in and out."""
        path = self.root / "submit" / name
        path.parent.mkdir(exist_ok=True)
        path.mkdir(mode=0o700, exist_ok=True)
        self.give(path)
        return path

    def give(self, path: Path) -> None:
        """Hand `path` (recursively) to the submitter, e.g. after filling it as root."""
        uid = chroot_os.SUBMITTER[1]
        subprocess.run(["chown", "-R", f"{uid}:{uid}", str(path)], check=True)

    def _write_config(self) -> None:
        condor = chroot_os.condor_ids(self.chroot)
        for name in ("log", "spool", "execute", "lock", "run"):
            (self.root / name).mkdir(exist_ok=True)
            os.chown(self.root / name, *condor)
        self.home.mkdir(exist_ok=True)
        self.give(self.home)
        os.chmod(self.root, 0o755)  # noqa: S103  the daemons and both accounts traverse it
        if self.config.exists():
            return
        port = free_port()
        cpus = max(2, os.cpu_count() or 2)
        self.config.write_text(f"""\
# Personal pool (written by lofar_datalake_testbed.htcondor); self-contained, no includes.
use ROLE : Personal
CONDOR_HOST = 127.0.0.1
COLLECTOR_HOST = 127.0.0.1:{port}
# Loopback only, one TCP port (the shared port daemon), IPv4 only.
NETWORK_INTERFACE = 127.0.0.1
BIND_ALL_INTERFACES = False
NETWORK_HOSTNAME = localhost
ENABLE_IPV6 = False
USE_SHARED_PORT = True
SHARED_PORT_PORT = {port}
LOCAL_DIR = {self.root}
LOG = $(LOCAL_DIR)/log
SPOOL = $(LOCAL_DIR)/spool
EXECUTE = {self.execute_dir}
LOCK = $(LOCAL_DIR)/lock
RUN = $(LOCAL_DIR)/run
RELEASE_DIR = /usr
LIBEXEC = /usr/libexec/condor
# The master would otherwise tune the host's kernel (pid_max, port range, dirty_bytes...).
ENABLE_KERNEL_TUNING = False
LINUX_KERNEL_TUNING_SCRIPT =
RUNBENCHMARKS = False
# Everything is on loopback: file-system or claimed identity is enough.
SEC_DEFAULT_AUTHENTICATION_METHODS = FS, CLAIMTOBE
ALLOW_READ = *
ALLOW_WRITE = *
ALLOW_ADMINISTRATOR = *
# No private /tmp mounts or pid namespaces inside a chroot.
MOUNT_UNDER_SCRATCH =
USE_PID_NAMESPACES = False
# One partitionable slot with all cores (the imager asks for 2 CPUs); a claim ends with its
# job, so the next job of any size matches at once.
NUM_CPUS = {cpus}
SLOT_TYPE_1 = cpus=100%
SLOT_TYPE_1_PARTITIONABLE = True
NUM_SLOTS_TYPE_1 = 1
CLAIM_WORKLIFE = 0
# Jobs run as the execute account, never as their owner: they cannot reach the submit side.
# (Not a DEDICATED_EXECUTE_ACCOUNT: the slots share it, and the end of one job would kill
# every process of the account, the other slot's job too.)
STARTER_ALLOW_RUNAS_OWNER = False
NOBODY_SLOT_USER = {chroot_os.EXECUTE_USER[0]}
UID_DOMAIN = lofar-datalake.test
FILESYSTEM_DOMAIN = submit.lofar-datalake.test
# Seconds-long jobs: negotiate and report often.
NEGOTIATOR_INTERVAL = 2
NEGOTIATOR_MIN_INTERVAL = 1
NEGOTIATOR_CYCLE_DELAY = 1
SCHEDD_INTERVAL = 2
UPDATE_INTERVAL = 2
STARTER_UPDATE_INTERVAL = 2
# A job whose output transfer failed (held) keeps its slot until the job lease expires: make
# that seconds, not 40 minutes, so the run's other jobs still get the slot.
JOB_DEFAULT_LEASE_DURATION = 30
MAIL = /bin/true
""")

    def master(self) -> ManagedProcess:
        """The pool's condor_master (it starts and watches every other daemon)."""
        env = {"PATH": CHROOT_PATH, "LANG": "C.UTF-8", **self.env()}
        argv = [
            "chroot", str(self.chroot), "env", "-i", *(f"{k}={v}" for k, v in env.items()),
            "/usr/sbin/condor_master", "-f",
        ]  # fmt: skip
        return ManagedProcess(
            "condor_master",
            argv,
            run_dir=self.root / "run",
            log_dir=self.root,
            ready=self._slot_ready,
        )

    def _in_chroot(self, path: Path) -> Path:
        return self.chroot / str(path).lstrip("/")

    def mount_targets(self) -> list[tuple[Path | None, Path, bool]]:
        """(source or None for a mask, target in chroot, read-only), in mounting order."""
        # A directory inside another one (the venv in the checkout) comes with it.
        software = [p for p in self.software if not any(o in p.parents for o in self.software)]
        binds: list[tuple[Path | None, Path, bool]] = [(p, p, True) for p in software]
        binds += [(None, m, False) for m in self.masked]
        binds.append((self.root, self.root, False))
        return [(src, self._in_chroot(dst), ro) for src, dst, ro in binds]

    def _mount(self) -> None:
        created: list[str] = []  # mount points made here; down() removes them again
        masks = [self._in_chroot(m) for m in self.masked]
        for _, target, _ in self.mount_targets():
            if any(m in target.parents for m in masks):
                continue  # made inside the mask's tmpfs, once that is mounted
            missing = [d for d in (target, *target.parents) if not d.exists()]
            created += [str(d) for d in missing if str(d) not in created]
            target.mkdir(parents=True, exist_ok=True)
        self._mount_points.write_text(json.dumps(created))
        subprocess.run(["mount", "-t", "proc", "proc", str(self.chroot / "proc")], check=True)
        for src, target, read_only in self.mount_targets():
            target.mkdir(parents=True, exist_ok=True)
            if src is None:
                mask = ["mount", "-t", "tmpfs", "-o", "mode=0755,size=1m,nosuid,nodev"]
                subprocess.run([*mask, "lofar-mask", str(target)], check=True)
                continue
            subprocess.run(["mount", "--bind", str(src), str(target)], check=True)
            if read_only:
                subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=True)

    @property
    def _mount_points(self) -> Path:
        return self.root / "mount-points.json"

    def tool(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """Run an HTCondor command line tool in the chroot, as root (queries, not submits)."""
        env = {"PATH": CHROOT_PATH, **self.env()}
        return subprocess.run(
            ["chroot", str(self.chroot), "env", "-i", *(f"{k}={v}" for k, v in env.items()), *argv],
            capture_output=True,
            text=True,
            timeout=30,
        )

    def _slot_ready(self) -> bool:
        """The startd advertises its slot and the schedd answers."""
        slots = self.tool("condor_status", "-af", "Name", "Cpus").stdout.split()
        return bool(slots) and self.tool("condor_q", "-totals").returncode == 0

    def check_free(self) -> None:
        """Refuse to start while another pool uses the chroot: down() would take it with it."""
        busy = chroot_os.mounts_under(self.chroot) or chroot_os.processes_in(self.chroot)
        if busy:
            raise RuntimeError(
                f"the chroot {self.chroot} is in use (another pool is up, or one was not stopped): "
                f"{busy}; stop it with HTCondorPool(<its root>).down()"
            )

    def up(self, timeout: float = 60.0) -> None:
        self.check_free()
        self.root.mkdir(parents=True, exist_ok=True)
        self._write_config()
        self._mount()
        master = self.master()
        master.start()
        master.wait_ready(timeout)

    def down(self, timeout: float = 20.0) -> list[str]:
        """Stop every process in the chroot, unmount everything below it, remove the mount
        points made for this run. Returns what had to be killed (not merely stopped)."""
        # SIGQUIT: the master's fast shutdown (stops the daemons, which kill their jobs).
        for proc in chroot_os.processes_in(self.chroot):
            if proc.name() == "condor_master":
                proc.send_signal(signal.SIGQUIT)
        psutil.wait_procs(chroot_os.processes_in(self.chroot), timeout=timeout)
        killed: list[str] = []
        # Rounds: a daemon killed in one round may have started a helper (its procd) meanwhile.
        for _ in range(10):
            left = chroot_os.processes_in(self.chroot)
            if not left:
                break
            for proc in left:
                try:
                    killed.append(f"{proc.pid} {proc.name()}")
                    proc.kill()
                except psutil.NoSuchProcess:
                    pass
            psutil.wait_procs(left, timeout=5)
        (self.root / "run" / "condor_master.pid").unlink(missing_ok=True)
        for target in chroot_os.mounts_under(self.chroot):
            if subprocess.run(["umount", target], capture_output=True).returncode != 0:
                time.sleep(1)
                subprocess.run(["umount", "--lazy", target], check=True)
        self._remove_mount_points()
        return killed

    def _remove_mount_points(self) -> None:
        """A cached chroot must not collect a mount point per run: remove the (empty)
        directories up() made."""
        if not self._mount_points.exists():
            return
        for path in sorted(json.loads(self._mount_points.read_text()), key=len, reverse=True):
            try:
                Path(path).rmdir()
            except (FileNotFoundError, OSError):
                pass
        self._mount_points.unlink()

    def finished_jobs(self, attributes: Sequence[str] = ()) -> list[dict[str, object]]:
        """HTCondor's own records of the pool's finished jobs (condor_history), one dict each."""
        attrs = ["ClusterId", "ProcId", "JobStatus", "ExitCode", "ExitBySignal", "Owner", "Iwd"]
        argv = ["condor_history", "-json", "-attributes", ",".join([*attrs, *attributes])]
        done = self.tool(*argv)
        if done.returncode != 0:
            raise RuntimeError(f"condor_history failed: {done.stderr}")
        return list(json.loads(done.stdout or "[]"))

    def hold_reasons(self, cluster: int | str) -> dict[str, str]:
        """HTCondor's HoldReason of every held job of `cluster`, by job id ("12.0"); empty when
        none is held. A held job waits forever unless someone acts: this says why it waits."""
        argv = ["condor_q", "-allusers", str(cluster), "-constraint", "JobStatus == 5"]
        done = self.tool(*argv, "-af", "ClusterId", "ProcId", "HoldReason")
        if done.returncode != 0:
            raise RuntimeError(f"condor_q failed: {done.stderr}")
        reasons = {}
        for line in done.stdout.splitlines():
            cluster_id, proc_id, reason = [*line.split(None, 2), "", ""][:3]
            reasons[f"{cluster_id}.{proc_id}"] = reason
        return reasons

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Until the queue is empty (finished jobs move to the history)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = self.tool("condor_q", "-allusers", "-af", "ClusterId")
            if done.returncode == 0 and not done.stdout.strip():
                return
            time.sleep(0.5)
        raise TimeoutError("HTCondor jobs still queued or running")

    def logs(self, lines: int = 15) -> str:
        return "\n".join(
            f"--- {log.name}:\n{tail(log, lines)}"
            for log in sorted((self.root / "log").glob("*Log"))
        )
