"""The testbed's HTCondor site: a personal pool (`htcondor.HTCondorPool`) next to the local
DataLake, started with `lofar-datalake testbed up --sites htcondor`.

The pool lives in `<testbed>/sites/htcondor`. Its workers see what a grid worker sees: the
software read-only (the checkout, its venv and base Python, as on CVMFS), a CA bundle to verify
the storage's TLS with (as /etc/grid-security/certificates), and the DataLake's services on
127.0.0.1; never the testbed's credentials. The testbed's PKI directory holds private keys, so
it is not mounted: its public CA certificate is copied to `<pool root>/certificates/ca.pem`,
which is inside the pool root and so has the same path on the host and in the chroot. When the
testbed lies inside the checkout (the default `.testbed`), an empty tmpfs covers it in the
chroot, so its secrets stay out of sight whatever their modes.

One chroot serves one pool at a time: `up` refuses, naming the other pool, while another one
uses it, and `down` never stops a pool that is not this testbed's.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil

from . import htcondor_chroot
from .htcondor import HTCondorPool
from .layout import LOOPBACK, PROJECT_ROOT, Layout
from .site_base import SITE_RSES, hand_credentials

START_TIMEOUT = 60.0
# The first line of every job's output (profiles/htcondor-site/job-wrapper.sh).
JOB_LINE = re.compile(r"lofar-datalake job: host=(?P<host>\S+) user=(?P<user>\S+) "
                      r"sandbox=(?P<sandbox>\S+)")
# Daemons the master runs, and the ad type each one advertises to the collector.
DAEMON_ADS = {
    "collector": "Collector",
    "negotiator": "Negotiator",
    "schedd": "Scheduler",
    "startd": "Machine",
    "shared_port": None,  # advertises nothing; alive is enough
}


def _checkout() -> Path:
    return PROJECT_ROOT


class TestbedHTCondor:
    kind = "htcondor"
    __test__ = False  # not a pytest test class despite its name

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        software = (_checkout(), Path(sys.prefix), Path(sys.base_prefix).resolve())
        root = layout.site_dir(self.kind).resolve()
        testbed = layout.root.resolve()
        masked = (testbed,) if any(p in testbed.parents for p in software) else ()
        chroot = htcondor_chroot.chroot_path().resolve()  # as /proc/mounts names it
        self.pool = HTCondorPool(root, chroot, software=software, masked=masked)

    @property
    def rse(self) -> str:
        return SITE_RSES[self.kind]

    # --- the ComputeSite surface ------------------------------------------------------------

    def up(self) -> None:
        self._ensure_chroot()
        self._publish_ca()
        self.run_area()
        self.client_env()
        if self.healthy():
            print(f"    HTCondor pool up (127.0.0.1:{self.pool.port()})", flush=True)
            return
        master = self.pool.master()
        if master.process() is not None:  # just (re)started, or stuck: give it its start time
            try:
                master.wait_ready(START_TIMEOUT)
                print(f"    HTCondor pool up (127.0.0.1:{self.pool.port()})", flush=True)
                return
            except (RuntimeError, TimeoutError):
                print("    HTCondor pool not answering: restarting it", flush=True)
        self._clear_leftovers()
        started = time.monotonic()
        print(f"    starting the HTCondor pool in {self.pool.root}", flush=True)
        try:
            self.pool.up(START_TIMEOUT)
        except Exception as err:
            logs = self.pool.logs()
            self.pool.down()
            raise RuntimeError(f"the HTCondor pool did not start: {err}\n{logs}") from err
        print(
            f"    HTCondor pool up in {time.monotonic() - started:.1f} s: "
            f"127.0.0.1:{self.pool.port()}, CA bundle for jobs {self.ca_bundle()}",
            flush=True,
        )

    def down(self) -> list[str]:
        if not self._ours_present():
            return []  # nothing of this testbed's is running; another pool is left alone
        return self.pool.down()

    def healthy(self) -> bool:
        return self.pool.master().healthy()

    def status_rows(self) -> list[tuple[str, str, str, str]]:
        master = self.pool.master().process()
        endpoint = f"{LOOPBACK}:{self.pool.port()}" if self.pool.config.exists() else "-"
        daemons: dict[str, psutil.Process] = {}
        ads: set[str] = set()
        if master is not None:
            for child in master.children(recursive=True):
                try:
                    name = child.name().removeprefix("condor_")
                except psutil.NoSuchProcess:
                    continue
                if name in DAEMON_ADS:
                    daemons.setdefault(name, child)
            ads = self._advertised()
        rows = [("condor_master", _state(master, master is not None and bool(ads)), master,
                 f"{endpoint} (shared port)")]  # fmt: skip
        roles = {
            "collector": endpoint,
            "negotiator": "matchmaking",
            "schedd": f"access point, submitter {htcondor_chroot.SUBMITTER[0]}",
            "startd": f"worker, jobs as {htcondor_chroot.EXECUTE_USER[0]}",
            "shared_port": endpoint,
        }
        for name, ad in DAEMON_ADS.items():
            proc = daemons.get(name)
            rows.append((name, _state(proc, ad is None or ad in ads), proc, roles[name]))
        return [(n, s, str(p.pid) if p else "-", w) for n, s, p, w in rows]

    def exec_prefix(self, cwd: Path, extra_env: dict[str, str] | None = None) -> list[str]:
        cwd = cwd.resolve()
        visible = [self.pool.root, *self.pool.software]
        if not any(cwd == p or p in cwd.parents for p in visible):
            raise ValueError(
                f"{cwd} is not visible on the HTCondor access point (the chroot); use a "
                f"directory below {self.pool.root / 'submit'} (or the read-only software: "
                f"{', '.join(str(p) for p in self.pool.software)})"
            )
        return self.pool.exec_prefix(cwd, extra_env)

    def env(self) -> dict[str, str]:
        return self.pool.env()

    def client_env(self) -> dict[str, str]:
        """The submitter's DataLake client setup on the access point: its own copies of the
        account's Rucio configuration and proxy (0600, as in a user's home on a real access
        point), the CA bundle, and the software paths the profile names."""
        uid = htcondor_chroot.SUBMITTER[1]
        rucio = hand_credentials(self.layout, self.pool.home / ".rucio", uid, self.ca_bundle())
        return {
            **self.env(),
            **rucio,
            "LOFAR_DATALAKE_CA_BUNDLE": str(self.ca_bundle()),
            "LOFAR_DATALAKE_CHECKOUT": str(_checkout()),
            "LOFAR_DATALAKE_VENV": str(Path(sys.prefix)),
            "LOFAR_DATALAKE_PYTHON": str(Path(sys.base_prefix).resolve()),
        }

    def shared_area(self) -> Path:
        """Storage the pool's jobs can read (as a site's own disk): `<pool root>/storage`."""
        area = self.pool.root / "storage"
        area.mkdir(parents=True, exist_ok=True)
        area.chmod(0o755)  # read by the job account
        return area

    def hand_to_jobs(self, path: Path) -> None:
        """Site storage the job account writes (a local copy takes the run's products)."""
        subprocess.run(["chown", "-R", f"{htcondor_chroot.EXECUTE_USER[1]}:"
                        f"{htcondor_chroot.EXECUTE_USER[1]}", str(path)], check=True)

    def job_placements(self, workdir: Path) -> list[dict[str, str]]:
        """Where each job of a run in `workdir` ran: the line the job wrapper writes first
        into the job's output (host, account, sandbox), with its rule and HTCondor cluster."""
        found = []
        for out in sorted((workdir / ".snakemake" / "htcondor").glob("*/*.out")):
            match = JOB_LINE.search(out.read_text(errors="replace"))
            rule, _, cluster = out.stem.rpartition("_")
            if match:
                found.append({"rule": rule.rsplit("-", 1)[0], "cluster": cluster,
                              "host": match["host"], "user": match["user"],
                              "sandbox": match["sandbox"]})
        return found

    def run_area(self) -> Path:
        """`<pool root>/submit`: the submitter's; others may pass but not list it."""
        area = self.pool.root / "submit"
        area.mkdir(parents=True, exist_ok=True)
        uid = htcondor_chroot.SUBMITTER[1]
        os.chown(area, uid, uid)
        os.chmod(area, 0o711)  # noqa: S103  the daemons and the job account pass through
        return area

    def prepare_run_dir(self, path: Path) -> None:
        """Hand `path` (created if missing, recursively) to the submitter, private (0700):
        jobs cannot read it, only HTCondor's file transfer moves data in and out."""
        path = path.resolve()
        area = self.run_area()
        if area not in path.parents:
            raise ValueError(f"a run directory of the HTCondor site must lie below {area}")
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.chmod(0o700)
        for parent in path.parents:
            if parent == area:
                break
            os.chown(parent, htcondor_chroot.SUBMITTER[1], htcondor_chroot.SUBMITTER[1])
        self.pool.give(path)

    # --- what the pipeline layer uses besides -----------------------------------------------

    def ca_bundle(self) -> Path:
        """The testbed CA's certificate as jobs see it (same path on the host)."""
        return self.pool.root / "certificates" / "ca.pem"

    def hold_reasons(self, cluster: int | str) -> dict[str, str]:
        return self.pool.hold_reasons(cluster)

    # --- internals --------------------------------------------------------------------------

    def _ensure_chroot(self) -> None:
        if os.geteuid() != 0:
            raise RuntimeError("the HTCondor site needs root (a chroot, bind mounts, daemons)")
        chroot = self.pool.chroot
        if not htcondor_chroot.is_complete(chroot):
            if not (shutil.which("debootstrap") or Path("/usr/sbin/debootstrap").exists()):
                raise RuntimeError(
                    f"no HTCondor chroot at {chroot} and no debootstrap to build it: "
                    "apt-get install debootstrap (or scripts/install-system-deps.sh --tests)"
                )
            log = chroot.parent / f"{chroot.name}-build.log"
            print(
                f"    building the HTCondor chroot {chroot} (Debian {htcondor_chroot.SUITE}, "
                f"about a minute, once; log {log})",
                flush=True,
            )
            try:
                _, seconds = htcondor_chroot.ensure(chroot)
            except (OSError, subprocess.CalledProcessError) as err:
                raise RuntimeError(
                    f"building the HTCondor chroot failed ({err}); it needs root, debootstrap "
                    f"and access to {htcondor_chroot.MIRROR}; see {log}"
                ) from err
            print(f"    chroot built in {seconds:.0f} s", flush=True)

    def _publish_ca(self) -> None:
        """Copy the CA certificate, and only it, to a directory every account may read."""
        source = self.layout.pki_dir / "ca.pem"
        if not source.is_file():
            raise RuntimeError(f"no testbed CA at {source}: start the DataLake first (testbed up)")
        pem = source.read_bytes()
        if b"PRIVATE KEY" in pem:
            raise RuntimeError(f"{source} holds a private key: not publishing it to the workers")
        target = self.ca_bundle()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.parent.chmod(0o755)  # public by design: certificates only
        if target.is_file() and target.read_bytes() == pem:
            return
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(pem)
        tmp.chmod(stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IROTH)
        tmp.replace(target)

    def _targets(self) -> set[str]:
        ours = {str(t) for _, t, _ in self.pool.mount_targets()}
        return ours | {str(self.pool.chroot / "proc")}

    def _ours_present(self) -> bool:
        root_target = str(self.pool.mount_targets()[-1][1])
        return (
            self.pool.master().process() is not None
            or root_target in htcondor_chroot.mounts_under(self.pool.chroot)
        )

    def _clear_leftovers(self) -> None:
        """Stop what is left of this pool (a dead master's daemons, its mounts); refuse when
        the chroot belongs to another pool, whose stopping is its testbed's business."""
        chroot = self.pool.chroot
        others = [m for m in htcondor_chroot.mounts_under(chroot) if m not in self._targets()]
        if others:
            roots = [m.removeprefix(str(chroot)) for m in others]
            testbeds = [str(Path(r).parents[1]) for r in roots if r.endswith("/sites/htcondor")]
            how = (
                f"stop it with `lofar-datalake testbed down --dir {testbeds[0]}`"
                if testbeds
                else "stop that pool first"
            )
            raise RuntimeError(
                f"the HTCondor chroot {chroot} is in use by another pool (mounted: "
                f"{', '.join(roots)}); {how}, or give this testbed a chroot of its own with "
                f"{htcondor_chroot.CACHE_ENV}=<dir> (built on first use, about a minute)"
            )
        if self._ours_present() or htcondor_chroot.processes_in(chroot):
            killed = self.pool.down()
            print(f"    cleared a stopped pool's leftovers (killed {killed})", flush=True)

    def _advertised(self) -> set[str]:
        """Ad types the collector holds (one query for all daemons)."""
        try:
            done = self.pool.tool("condor_status", "-any", "-af", "MyType")
        except subprocess.TimeoutExpired:
            return set()
        return set(done.stdout.split()) if done.returncode == 0 else set()


def _state(proc: psutil.Process | None, answering: bool) -> str:
    if proc is None:
        return "down"
    return "up" if answering else "unhealthy"
