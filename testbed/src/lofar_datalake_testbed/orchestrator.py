"""`lofar-datalake testbed up | status | down | env`: the local DataLake's life cycle.

`up` is idempotent and heals: every component is probed and only what is missing or dead is
(re)started. `down` stops exactly the processes recorded in the testbed's pid files.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from . import broker, components, database, fts_delegation, sites, tokens, xrootd
from .layout import LOOPBACK, SITES, STAGING_RSE, TAPE_RSE, Layout
from .pki import Pki, ensure_pki
from .processes import ManagedProcess, stop_all, tail
from .rucio_config import write_configs
from .server_env import ServerEnv, server_env

START_TIMEOUT = 60.0


@dataclass
class Testbed:
    layout: Layout

    @property
    def pki(self) -> Pki:
        return ensure_pki(self.layout.pki_dir)

    @property
    def server_env(self) -> ServerEnv:
        return server_env(self.layout.root)

    def _ports(self) -> dict[str, int]:
        return self.layout.ports()

    def services(self) -> list[ManagedProcess]:
        ports, pki = self._ports(), self.pki
        return [
            # First: Rucio reads the issuer's discovery and keys to check tokens.
            components.token_issuer(self.server_env, self.layout, ports, pki),
            components.rucio_server(self.server_env, self.layout, ports, pki),
            *components.webdav_servers(self.server_env, self.layout, ports, pki),
            components.tape_storage(self.server_env, self.layout, ports, pki),
            *components.xrootd_servers(self.server_env, self.layout, ports, pki),
            # Before FTS, which publishes its transfers' outcomes there.
            components.message_broker(self.server_env, self.layout, ports),
            components.fts_service(self.server_env, self.layout, ports, pki),
        ]

    def daemons(self) -> list[ManagedProcess]:
        return components.rucio_daemons(self.server_env, self.layout, self.pki)

    def _bootstrap(self, step: str) -> None:
        env = {**os.environ, "RUCIO_CONFIG": str(self.layout.server_config)}
        result = subprocess.run(
            self.server_env.module("bootstrap", step, "--layout", str(self.layout.root)),
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        log = self.layout.logs / "bootstrap.log"
        with open(log, "a") as handle:
            handle.write(result.stdout + result.stderr)
        if result.returncode != 0:
            raise RuntimeError(f"bootstrap step '{step}' failed; see {log}:\n{tail(log)}")

    def _ensure(self, proc: ManagedProcess, say: bool = True) -> None:
        if proc.healthy():
            return
        if proc.process() is not None:  # alive but not answering: restart it
            proc.stop()
        if say:
            print(f"  starting {proc.name}", flush=True)
        proc.start()
        proc.wait_ready(START_TIMEOUT)

    def _forget_dead_daemons(self, alive: set[int]) -> None:
        """Heartbeats of dead daemons make live ones take only part of the work until they
        expire (10 min); drop them so restarted daemons own all of it at once."""
        pids = ",".join(str(p) for p in sorted(alive)) or "-1"
        sql = f"DELETE FROM heartbeats WHERE pid NOT IN ({pids})"  # noqa: S608 (integers only)
        database.psql(self.server_env, self.layout.pgdata, sql)

    def up(self, site_kinds: Sequence[str] = (), auth: str | None = None) -> None:
        """The DataLake, then the compute sites asked for now or started by an earlier `up`.
        `auth` (userpass or token) switches the testbed's clients; None keeps the last one."""
        started = time.monotonic()
        layout = self.layout
        layout.make_dirs()
        print(f"testbed in {layout.root}", flush=True)
        self.pki  # noqa: B018  (creates the CA and certificates on first use)
        env = self.server_env.ensure()
        db_url = database.ensure_running(env, layout.pgdata)
        ports = self._ports()
        if auth is not None:
            tokens.set_auth_mode(layout, auth)
        broker.write_configs(layout, ports)
        write_configs(layout, db_url, ports, env.rucio_migrations,
                      messaging=broker.receiver_section(layout, ports))
        tokens.write_issuer_files(layout, ports)
        # Both bootstrap steps are idempotent; they run until one `up` has completed them.
        if not layout.load_state().get("schema", layout.load_state().get("catalog")):
            print("  creating the Rucio schema", flush=True)
            self._bootstrap("schema")
        issuer, server, *others = self.services()
        self._ensure(issuer)
        self._ensure(server)
        state = layout.load_state()
        # The catalogue step runs again when the testbed gained RSEs or the catalogue's
        # accounts changed (CATALOG_VERSION) since it last ran.
        if state.get("catalog") != _catalog_key():
            print("  registering accounts, scope and RSEs", flush=True)
            self._bootstrap("catalog")
            state = layout.load_state()
            state["schema"] = True
            state["catalog"] = _catalog_key()
            layout.save_state(state)
        for proc in others:
            self._ensure(proc)
        if tokens.auth_mode(layout) == "token":
            path, expires = tokens.refresh_bearer_token(layout, self.pki.ca_cert)
            print(f"  token mode: the pipeline's token is in {path} (until "
                  f"{time.strftime('%H:%M:%S UTC', time.gmtime(expires))}; renew it with "
                  "`lofar-datalake testbed token`)", flush=True)
        fts_delegation.delegate(components.fts_url(ports), self.pki.proxy, self.pki.ca_cert)
        daemons = self.daemons()
        dead = [d for d in daemons if not d.healthy()]
        if dead:
            alive = {p.pid for d in daemons if (p := d.process()) is not None}
            self._forget_dead_daemons(alive)
            for proc in dead:
                self._ensure(proc)
        kinds = [k for k in sites.KINDS if k in {*site_kinds, *sites.started_kinds(layout)}]
        for kind in kinds:
            print(f"  site {kind}", flush=True)
            sites.compute_site(layout, kind).up()
            sites.remember(layout, kinds[: kinds.index(kind) + 1] + sites.started_kinds(layout))
        print(f"testbed up ({time.monotonic() - started:.1f} s)", flush=True)

    def status(self) -> bool:
        rows: list[tuple[str, str, str, str]] = []
        pg_pid = database.pid(self.layout.pgdata)
        rows.append(("postgresql", "up" if pg_pid else "down", str(pg_pid or "-"), "unix socket"))
        ports = self._ports() if self.layout.state_file.exists() else {}
        endpoints = {
            "rucio-server": f"https://{LOOPBACK}:{ports.get('rucio')}",
            "token-issuer": f"https://{LOOPBACK}:{ports.get('issuer')}",
            "fts": f"https://{LOOPBACK}:{ports.get('fts')}",
            "message-broker": f"stomp://{LOOPBACK}:{ports.get('broker')}",
        }
        for site in SITES if ports else ():
            endpoints[f"{site.storage}-{site.rse}"] = " ".join(site.storage_urls(ports))
        if ports:
            endpoints[f"webdav-{TAPE_RSE}"] = (
                f"{components.tape_url(ports)} (tape, nearline; staging area {STAGING_RSE})"
            )
        total_rss = _rss(psutil.Process(pg_pid)) if pg_pid else 0
        all_ok = pg_pid is not None
        for proc in (self.services() + self.daemons()) if ports else []:
            running = proc.process()
            ok = proc.healthy()
            all_ok &= ok
            state = "up" if ok else ("unhealthy" if running else "down")
            if running is not None:
                total_rss += _rss(running)
            rows.append(
                (
                    proc.name,
                    state,
                    str(running.pid) if running else "-",
                    endpoints.get(proc.name, "daemon"),
                )
            )
        for kind in sites.started_kinds(self.layout):
            site_rows = sites.compute_site(self.layout, kind).status_rows()
            all_ok &= all(row[1] == "up" for row in site_rows)
            rows += [(f"{kind}/{name}", state, pid, where) for name, state, pid, where in site_rows]
        width = max(len(r[0]) for r in rows)
        for name, state, pid, where in rows:
            print(f"{name:<{width}}  {state:<9}  pid {pid:<8} {where}")
        print(f"memory (RSS, all components): {total_rss / 1024**2:.0f} MiB")
        print(f"clients authenticate with: {tokens.auth_mode(self.layout)}")
        return all_ok

    def down(self) -> None:
        # Sites first: their jobs talk to the DataLake.
        for kind in sites.started_kinds(self.layout):
            ended = sites.compute_site(self.layout, kind).down()
            print(f"  stopped site {kind}" + (f": {', '.join(ended)}" if ended else ""), flush=True)
        if self.layout.state_file.exists():
            sites.remember(self.layout, [])
            # Daemons first (they talk to the others), then the services, each group in parallel.
            for group in (self.daemons(), self.services()):
                for name in stop_all(group):
                    print(f"  stopped {name}", flush=True)
        if database.stop(self.server_env, self.layout.pgdata):
            print("  stopped postgresql", flush=True)
        xrootd.remove_admin_dirs(self.layout)
        print("testbed down", flush=True)

    def client_env(self) -> dict[str, str]:
        """Where a client of this testbed finds its configuration and credentials (paths only):
        Rucio's configuration in the auth mode, and the bearer token file in token mode or
        else the client certificate FTS and storage take."""
        if tokens.auth_mode(self.layout) == "token":
            return tokens.client_env(self.layout)
        return {**tokens.client_env(self.layout), "X509_USER_PROXY": str(self.pki.proxy)}

    def env(self) -> str:
        ports = self._ports()
        lines = {
            "LOFAR_DATALAKE_TESTBED_DIR": str(self.layout.root),
            **self.client_env(),
            "LOFAR_DATALAKE_CA_BUNDLE": str(self.pki.ca_cert),
            "FTS3_ENDPOINT": components.fts_url(ports),
        }
        out = [f"export {k}={_quote(v)}" for k, v in lines.items()]
        out.append("# rucio whoami; rucio list-rses")
        out.append('# fts-rest-whoami -s "$FTS3_ENDPOINT" --capath "$LOFAR_DATALAKE_CA_BUNDLE"')
        return "\n".join(out)


# 2: the pipeline account lost `admin` (the policy package allows what it needs).
# 3: the RSEs' `fts` attribute names the https endpoint.
# 4: the pipeline account's OIDC identity (the token issuer's `lofar-pipeline` client).
# 5: SITE_D_XRD, served by XRootD (`root` protocol).
# 6: LTA_TAPE (rse_type TAPE) and its staging area LTA_STAGING.
CATALOG_VERSION = 6


def _catalog_key() -> list[str]:
    return [*(site.rse for site in SITES), TAPE_RSE, STAGING_RSE, f"version-{CATALOG_VERSION}"]


def _quote(value: str) -> str:
    import shlex

    return shlex.quote(value)


def _rss(proc: psutil.Process) -> int:
    total = 0
    for member in [proc, *proc.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            pass
    return total


def testbed(root: Path | None = None) -> Testbed:
    from .layout import default_dir

    return Testbed(Layout(root or default_dir()))
