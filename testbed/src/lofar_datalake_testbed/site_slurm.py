"""The testbed's Slurm site: the one-node cluster of `slurm.py`, wired to the local DataLake.

The cluster runs in the network namespace `lofar-slurm` (slurmctld and slurmd bind every
interface). A relay (`netns_relay`) offers each DataLake port (Rucio, FTS, every WebDAV RSE)
inside the namespace at the host's address, so jobs use the same URLs and configs as the host,
and offers slurmctld's port on the host, so `sbatch`, `squeue` and Snakemake's Slurm executor
run on the host unchanged. `srun`/`salloc` from the host do not work: the node would have to
connect back to them. The namespace and /etc/slurm/slurm.conf are machine-wide, so there is one
Slurm site per machine; `up` refuses while another cluster owns them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import psutil

from .layout import LOOPBACK, Layout, free_port
from .netns_relay import is_ready
from .processes import ManagedProcess, stop_all
from .site_base import SITE_RSES
from .slurm import SYSTEM_CONF, SlurmCluster

NETNS = "lofar-slurm"
# munged runs as `munge` and must traverse every parent of its socket; the testbed's directory
# is private (0700), so its key and socket live in a root-owned, non-listable directory here,
# machine-wide like the namespace.
MUNGE_PARENT = Path("/run/lofar-slurm")
RELAY_TIMEOUT_S = 30.0
# Snakemake's Slurm executor, on each submission: the job id and (in its log path) the rule.
SUBMITTED = re.compile(r"submitted with SLURM jobid (\d+) \(log: \S*/rule_([^/\s]+)/")


class TestbedSlurm:
    kind = "slurm"

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.root = layout.site_dir("slurm")

    @property
    def rse(self) -> str:
        return SITE_RSES["slurm"]

    @property
    def netns_file(self) -> Path:
        return Path("/run/netns") / NETNS

    def cluster(self) -> SlurmCluster:
        return SlurmCluster(self.root, netns=NETNS, munge_dir=MUNGE_PARENT / "munge")

    def _datalake_ports(self) -> list[int]:
        """The ports `up` gave the DataLake (read only: `down` must not allocate any)."""
        ports = self.layout.load_state().get("ports", {})
        return sorted(int(p) for p in ports.values()) if isinstance(ports, dict) else []

    def _new_ports(self) -> tuple[int, int]:
        """slurmctld's port is also listened on by the relay on the host, and the relay listens
        on the DataLake's ports inside the namespace: all must differ."""
        taken = set(self._datalake_ports())
        chosen: list[int] = []
        while len(chosen) < 2:
            port = free_port()
            if port not in taken and port not in chosen:
                chosen.append(port)
        return chosen[0], chosen[1]

    def relay(self) -> ManagedProcess:
        into = self._datalake_ports()
        ctld = self.cluster().conf_port("SlurmctldPort")
        out = [ctld] if ctld else []
        run_dir = self.root / "run"
        ready_file = run_dir / "relay.ready"
        proc = ManagedProcess(
            "relay",
            [
                sys.executable,
                "-m",
                "lofar_datalake_testbed.netns_relay",
                "--netns",
                str(self.netns_file),
                "--into",
                ",".join(map(str, into)),
                "--out",
                ",".join(map(str, out)),
                "--ready-file",
                str(ready_file),
            ],
            run_dir=run_dir,
            log_dir=self.root,
        )

        def ready() -> bool:
            running = proc.process()
            return running is not None and is_ready(
                ready_file, running.pid, self.netns_file, into, out
            )

        proc.ready = ready
        return proc

    def _other_cluster(self) -> Path | None:
        """The config of another Slurm cluster that owns the machine-wide pieces, if any."""
        if SYSTEM_CONF.is_symlink() and SYSTEM_CONF.resolve().exists():
            target = SYSTEM_CONF.resolve()
            return None if target == self.cluster().conf.resolve() else target
        if SYSTEM_CONF.exists() and not SYSTEM_CONF.is_symlink():
            return SYSTEM_CONF
        return None

    def up(self) -> None:
        other = self._other_cluster()
        if other is not None:
            raise RuntimeError(
                f"another Slurm cluster is configured on this machine ({SYSTEM_CONF} -> {other}); "
                f"there is one Slurm site per machine (network namespace {NETNS}): stop that "
                "cluster (`lofar-datalake testbed down --dir <its testbed>`) first"
            )
        for tool in ("ip", "nsenter"):
            if shutil.which(tool) is None:
                raise FileNotFoundError(f"{tool} not found: install iproute2 and util-linux")
        self.cluster().processes()  # raises early, naming the package, if Slurm is missing
        try:
            self._start()
        except BaseException:
            # Half a site would outlive a failed `up` (only started sites are stopped by
            # `down`): stop what this call started, keep the logs.
            self.down()
            raise

    def _start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.run_area().mkdir(exist_ok=True)
        MUNGE_PARENT.mkdir(mode=0o711, exist_ok=True)
        os.chmod(MUNGE_PARENT, 0o711)  # noqa: S103  (traversable by munge, not listable)
        cluster = self.cluster()
        if not cluster.conf.exists():
            cluster = replace(cluster, ports=self._new_ports())
        cluster.up(say=lambda message: print(f"    {message}", flush=True))
        relay = self.relay()
        if not relay.healthy():
            relay.stop()  # alive but serving a namespace that no longer exists
            print("    starting relay", flush=True)
            relay.start()
            relay.wait_ready(RELAY_TIMEOUT_S)

    def down(self) -> list[str]:
        relay = self.relay()
        killed = stop_all([relay])
        if self._other_cluster() is not None:
            # The namespace and the system config belong to another cluster: leave them.
            return killed
        cluster = self.cluster()
        daemons = set()
        for proc in cluster.processes():
            if (running := proc.process()) is not None:
                with contextlib.suppress(psutil.Error):
                    daemons |= {running.pid, *(c.pid for c in running.children(recursive=True))}
        jobs = [pid for pid in cluster.netns_pids() if pid not in daemons]
        killed += cluster.down()
        if jobs:
            killed.append(f"{len(jobs)} job process(es)")
        shutil.rmtree(MUNGE_PARENT, ignore_errors=True)
        return killed

    def healthy(self) -> bool:
        return all(row[1] == "up" for row in self.status_rows())

    def status_rows(self) -> list[tuple[str, str, str, str]]:
        cluster = self.cluster()
        ctld = cluster.conf_port("SlurmctldPort")
        slurmd = cluster.conf_port("SlurmdPort")
        where = {
            "munged": f"unix socket {cluster.munge_socket}",
            "slurmctld": f"{LOOPBACK}:{ctld} (netns {NETNS}; on the host through the relay)",
            "slurmd": f"{LOOPBACK}:{slurmd} (netns {NETNS}), node localhost",
            "relay": f"host {LOOPBACK}:{ctld} -> netns; "
            f"{len(self._datalake_ports())} DataLake ports -> host",
        }
        rows = []
        for proc in [*cluster.processes(), self.relay()]:
            running = proc.process()
            state = "up" if proc.healthy() else ("unhealthy" if running else "down")
            pid = str(running.pid) if running else "-"
            rows.append((proc.name, state, pid, where[proc.name]))
        return rows

    def exec_prefix(self, cwd: Path, extra_env: dict[str, str] | None = None) -> list[str]:
        # The host is the access point: the relay brings slurmctld's port to it.
        return ["env", "-C", str(cwd), *(f"{k}={v}" for k, v in (extra_env or {}).items())]

    def client_env(self) -> dict[str, str]:
        """A DataLake user on this cluster's access point (the host): the testbed's client
        configuration, the site's storage bound into every container (APPTAINER_BIND), and
        `apptainer` itself where it is not installed (the Podman launcher)."""
        from .pki import ensure_pki

        pki = ensure_pki(self.layout.pki_dir)
        storage = [self.layout.rse_dir(self.rse), self.shared_area()]
        env = {
            **self.env(),
            "RUCIO_CONFIG": str(self.layout.client_config),
            "X509_USER_PROXY": str(pki.proxy),
            "LOFAR_DATALAKE_CA_BUNDLE": str(pki.ca_cert),
            "APPTAINER_BIND": ",".join(f"{p}:{p}:ro" for p in storage),
        }
        if shutil.which("apptainer") is None:
            from . import launchers

            env["PATH"] = f"{Path(launchers.__file__).parent}:{os.environ.get('PATH', '')}"
        return env

    def shared_area(self) -> Path:
        """Site storage on the shared file system (e.g. a comparison's local copy)."""
        area = self.root / "storage"
        area.mkdir(parents=True, exist_ok=True)
        return area

    def hand_to_jobs(self, path: Path) -> None:
        """Jobs run as the submitting user on the shared file system: nothing to hand over."""

    def job_placements(self, workdir: Path) -> list[dict[str, str]]:
        """Slurm's own record (job completion log) of each job that ran in `workdir`: where
        it ran and how it ended, with its rule from Snakemake's log of the submission."""
        rules = {}
        log = workdir / "snakemake.log"
        if log.is_file():
            for job, rule in SUBMITTED.findall(log.read_text(errors="replace")):
                rules[job] = rule
        here = str(workdir.resolve())
        return [{"rule": rules.get(r.get("JobId", ""), "?"), "slurm_job": r.get("JobId", "?"),
                 "node": r.get("NodeList", "?"), "state": r.get("JobState", "?")}
                for r in self.cluster().finished_jobs() if r.get("WorkDir") == here]

    def env(self) -> dict[str, str]:
        return self.cluster().env()

    def run_area(self) -> Path:
        # Jobs see the host's file system (only the network is private), like a shared one.
        return self.root / "runs"

    def prepare_run_dir(self, path: Path) -> None:
        """Jobs run as the submitting user (root) on the same file system: nothing to do."""
