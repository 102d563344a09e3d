"""A one-node Slurm cluster on this machine, for running the workflow through Slurm for real.

Debian's slurm-wlm + munge, started by hand with a private configuration: its own munge socket
and key, its own state/spool/log directory and ports, a job-completion log as Slurm's own record
of every job. Needs root (slurmd) and the Debian packages `slurm-wlm` and `munge`.
`SlurmCluster(DIR)` in tests; the testbed's Slurm site (`site_slurm`) wraps one with its ports,
its munge directory and a relay to the DataLake.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from .layout import free_port
from .processes import ManagedProcess, stop_all

NODE_CPUS = 2
# Where Slurm commands look when SLURM_CONF is unset. Snakemake's Slurm executor deletes every
# SLURM_* variable inside jobs before calling srun, so the job steps only find a cluster whose
# configuration is here, as on any real site.
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
NODE_MEMORY_MB = 20000


def _require(binary: str) -> str:
    sbin = Path("/usr/sbin") / binary
    found = shutil.which(binary) or (str(sbin) if sbin.exists() else None)
    if found is None:
        raise FileNotFoundError(f"{binary} not found: install Debian's slurm-wlm and munge")
    return found


@dataclass(frozen=True)
class SlurmCluster:
    """Slurm binds its ports on every interface (it has no bind-address setting), so the cluster
    runs in a private network namespace whose only interface is loopback; clients (sbatch,
    snakemake) run there too, through `exec_prefix()`."""

    root: Path
    netns: str = "lofar-slurm"
    # munged runs as `munge` and must traverse every parent of its directory; a root below a
    # private (0700) directory needs the munge directory elsewhere.
    munge_dir: Path | None = None
    ports: tuple[int, int] | None = None  # (slurmctld, slurmd) for a new config; default: free

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def munge_home(self) -> Path:
        return self.munge_dir or self.root / "munge"

    @property
    def munge_socket(self) -> Path:
        return self.munge_home / "munge.socket"

    def conf_port(self, key: str) -> int | None:
        """`SlurmctldPort` or `SlurmdPort` of the written config (None before the first up)."""
        if not self.conf.exists():
            return None
        for line in self.conf.read_text().splitlines():
            name, _, value = line.partition("=")
            if name.strip() == key:
                return int(value.strip())
        return None

    @property
    def jobcomp_log(self) -> Path:
        """Slurm's own record of finished jobs (one line per job)."""
        return self.root / "jobcomp.log"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    def exec_prefix(self) -> list[str]:
        """Prefix for any command that must talk to this cluster. `nsenter --net` switches only
        the network namespace (`ip netns exec` also remounts /sys, hiding the cgroup tree slurmd
        probes at start)."""
        return ["nsenter", f"--net=/run/netns/{self.netns}"]

    def _ensure_netns(self) -> None:
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        if self.netns not in names.split():
            subprocess.run(["ip", "netns", "add", self.netns], check=True)
        subprocess.run([*self.exec_prefix(), "ip", "link", "set", "lo", "up"], check=True)
        # Slurm resolves its listening address with AI_ADDRCONFIG, which finds nothing when the
        # only IPv4 address is loopback. A link-local address on a veth pair whose both ends stay
        # inside the namespace satisfies it; nothing connects the namespace to anything else.
        ns = self.exec_prefix()
        links = subprocess.run([*ns, "ip", "-o", "link"], capture_output=True, text=True).stdout
        if "lsl0" not in links:
            for cmd in (
                ["ip", "link", "add", "lsl0", "type", "veth", "peer", "name", "lsl1"],
                ["ip", "addr", "add", "169.254.77.1/32", "dev", "lsl0"],
                ["ip", "link", "set", "lsl0", "up"],
                ["ip", "link", "set", "lsl1", "up"],
            ):
                subprocess.run([*ns, *cmd], check=True)

    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def _write_config(self) -> None:
        (self.root / "state").mkdir(parents=True, exist_ok=True)
        (self.root / "spool").mkdir(parents=True, exist_ok=True)
        if self.conf.exists():
            return
        ctld, slurmd = self.ports or (free_port(), free_port())
        self.conf.write_text(f"""\
# One-node test cluster (written by lofar_datalake_testbed.slurm).
ClusterName=lofartest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld}
SlurmdPort={slurmd}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Keep finished jobs visible to squeue long enough for Snakemake's status checks.
MinJobAge=300
ReturnToService=2
StateSaveLocation={self.root}/state
SlurmdSpoolDir={self.root}/spool
SlurmctldPidFile={self.root}/slurmctld.pid
SlurmdPidFile={self.root}/slurmd.pid
SlurmctldLogFile={self.root}/slurmctld.log
SlurmdLogFile={self.root}/slurmd.log
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={self.jobcomp_log}
DefMemPerCPU=2000
NodeName=localhost NodeAddr=127.0.0.1 CPUs={NODE_CPUS} RealMemory={NODE_MEMORY_MB} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
""")

    def _munge_key(self) -> Path:
        munge_dir = self.munge_home
        munge_dir.mkdir(parents=True, exist_ok=True)
        if munge_dir.is_relative_to(self.root):
            # munged runs as `munge` and must reach its socket directory: a root made by
            # mkdtemp (0700) would stop it at start.
            os.chmod(self.root, self.root.stat().st_mode | 0o111)  # noqa: S103
        key = munge_dir / "munge.key"
        user = pwd.getpwnam("munge")
        if not key.exists():
            fd = os.open(key, os.O_WRONLY | os.O_CREAT, 0o400)
            with os.fdopen(fd, "wb") as handle:
                handle.write(os.urandom(128))
        for path in (munge_dir, key):
            os.chown(path, user.pw_uid, user.pw_gid)
        # munged refuses group/other-writable directories; 0711 lets clients reach the socket.
        os.chmod(munge_dir, 0o711)  # noqa: S103
        return key

    def processes(self) -> list[ManagedProcess]:
        munge_dir = self.munge_home
        ns = self.exec_prefix()

        def managed(name: str, argv: list[str], ready: Callable[[], bool]) -> ManagedProcess:
            return ManagedProcess(
                name, argv, run_dir=self.run_dir, log_dir=self.root, env=self.env(), ready=ready
            )

        return [
            managed(
                "munged",
                [
                    *ns,
                    "runuser",
                    "-u",
                    "munge",
                    "--",
                    _require("munged"),
                    "--foreground",
                    f"--socket={self.munge_socket}",
                    f"--key-file={munge_dir / 'munge.key'}",
                    f"--pid-file={munge_dir / 'munged.pid'}",
                    f"--log-file={munge_dir / 'munged.log'}",
                    f"--seed-file={munge_dir / 'munged.seed'}",
                ],
                self.munge_socket.exists,
            ),
            managed(
                "slurmctld",
                [*ns, _require("slurmctld"), "-D", "-f", str(self.conf)],
                self._scontrol_ping,
            ),
            managed(
                "slurmd", [*ns, _require("slurmd"), "-D", "-f", str(self.conf)], self._node_idle
            ),
        ]

    def _run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.exec_prefix(), *argv],
            capture_output=True,
            text=True,
            timeout=20,
            env={**os.environ, **self.env()},
        )

    def _scontrol_ping(self) -> bool:
        return "UP" in self._run("scontrol", "ping").stdout

    def _node_idle(self) -> bool:
        return "idle" in self._run("sinfo", "-h", "-o", "%T").stdout

    def up(self, timeout: float = 60.0, say: Callable[[str], None] | None = None) -> None:
        # Refuse before touching anything shared (the namespace) if another cluster is up.
        self._check_system_conf()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._ensure_netns()
        self._munge_key()
        self._write_config()
        self._link_system_conf()
        for proc in self.processes():
            if not proc.healthy():
                proc.stop()
                if say:
                    say(f"starting {proc.name}")
                proc.start()
                proc.wait_ready(timeout)

    def _check_system_conf(self) -> None:
        if SYSTEM_CONF.is_symlink() and not SYSTEM_CONF.resolve().exists():
            SYSTEM_CONF.unlink()  # a stale link from an earlier test cluster
        if SYSTEM_CONF.exists() and SYSTEM_CONF.resolve() != self.conf.resolve():
            raise RuntimeError(
                f"{SYSTEM_CONF} belongs to another Slurm cluster ({SYSTEM_CONF.resolve()}); "
                "not replacing it"
            )

    def _link_system_conf(self) -> None:
        self._check_system_conf()
        if not SYSTEM_CONF.exists():
            SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
            SYSTEM_CONF.symlink_to(self.conf)

    def _unlink_system_conf(self) -> None:
        if SYSTEM_CONF.is_symlink() and SYSTEM_CONF.resolve() == self.conf.resolve():
            SYSTEM_CONF.unlink()

    def healthy(self) -> bool:
        return all(p.healthy() for p in self.processes())

    def netns_pids(self) -> list[int]:
        """Every process inside the cluster's network namespace (none once it is deleted)."""
        done = subprocess.run(["ip", "netns", "pids", self.netns], capture_output=True, text=True)
        return [int(pid) for pid in done.stdout.split()] if done.returncode == 0 else []

    def down(self) -> list[str]:
        stopped = stop_all(list(reversed(self.processes())))
        # Job steps outlive slurmd (slurmstepd detaches from it, tasks get their own session):
        # whatever still runs in the namespace belongs to a job of this cluster.
        leftovers = []
        for pid in self.netns_pids():
            try:
                leftovers.append(psutil.Process(pid))
                leftovers[-1].kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(leftovers, timeout=10)
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)
        self._unlink_system_conf()
        return stopped

    def finished_jobs(self) -> list[dict[str, str]]:
        """Slurm's job-completion records: `JobId=.. UserId=.. Name=.. JobState=..` per line."""
        if not self.jobcomp_log.exists():
            return []
        records = []
        for line in self.jobcomp_log.read_text().splitlines():
            fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
            records.append(fields)
        return records

    def wait_idle(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._run("squeue", "-h", "-t", "PD,R,CG").stdout.strip():
                return
            time.sleep(0.5)
        raise TimeoutError("Slurm jobs still queued or running")
